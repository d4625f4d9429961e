// AssemblyScript source of lib/backend/gemm_wasm.ts (built by tools/build_wasm.ts; excluded from deno's
// fmt, lint and check in deno.json: it is not TypeScript for Deno).
//
// C[m, n] = alpha * A[m, k] B[k, n] (+ bias[n]) in float32, run on TensorFlow.js's own wasm heap (the
// module imports that memory, so operands are the tensors themselves: no copies). A is read through
// element strides (row-major, transposed, or one head's columns of a wider matrix); B is first packed
// by `packB` into panels of 8 columns. Each 6 x 8 tile keeps 12 accumulators in registers (with the two
// B vectors and the broadcast A value, 15 of the 16 xmm registers V8 has on x64; 0.49-0.99x the time of
// 4 x 8 tiles in an interleaved micro-benchmark at BERT's shapes, min of 25) and uses the relaxed-SIMD
// fused multiply-add, which tfjs-wasm's XNNPACK build does not. Leftover rows take 4-row tiles, then
// single rows.

const KC: i32 = 256; // rows of B per pass: a 6 x KC slice of A and a KC x 8 panel of B sit in L1/L2
const MC: i32 = 96; // rows of A per block (16 tiles of 6): a MC x KC block of A stays in L2

/** Bytes of the packed B of a k x n operand (panels of 8 columns, zero-padded). */
export function packedBytes(k: i32, n: i32): i32 {
  return ((n + 7) >> 3) * k * 32;
}

/** Packs B (element (p, j) at b + 4 (p rs + j cs)) into panels: dst[((j / 8) k + p) 8 + j % 8]. */
export function packB(b: usize, rs: i32, cs: i32, k: i32, n: i32, dst: usize): void {
  const panels = (n + 7) >> 3;
  let d = dst;
  for (let jp = 0; jp < panels; jp++) {
    const j0 = jp << 3;
    const nv = min(8, n - j0);
    if (cs == 1 && nv == 8) {
      for (let p = 0; p < k; p++) {
        const s = b + ((<usize>p * <usize>rs + <usize>j0) << 2);
        v128.store(d, v128.load(s));
        v128.store(d, v128.load(s, 16), 16);
        d += 32;
      }
    } else {
      for (let p = 0; p < k; p++) {
        const row = b + (<usize>p * <usize>rs << 2);
        for (let jj = 0; jj < 8; jj++) {
          const x: f32 = jj < nv ? load<f32>(row + ((<usize>(j0 + jj) * <usize>cs) << 2)) : 0;
          store<f32>(d + (<usize>jj << 2), x);
        }
        d += 32;
      }
    }
  }
}

/** One row of a tile: adds what C holds (after the first pass), scales and adds the bias (last pass). */
// @ts-ignore: decorator
@inline function finish(
  v0: v128,
  v1: v128,
  pc: usize,
  nv: i32,
  first: bool,
  last: bool,
  alpha: f32,
  bias: usize,
  scratch: usize,
): void {
  if (nv == 8) {
    if (!first) {
      v0 = f32x4.add(v0, v128.load(pc));
      v1 = f32x4.add(v1, v128.load(pc, 16));
    }
    if (last) {
      const av = f32x4.splat(alpha);
      v0 = f32x4.mul(v0, av);
      v1 = f32x4.mul(v1, av);
      if (bias != 0) {
        v0 = f32x4.add(v0, v128.load(bias));
        v1 = f32x4.add(v1, v128.load(bias, 16));
      }
    }
    v128.store(pc, v0);
    v128.store(pc, v1, 16);
    return;
  }
  v128.store(scratch, v0);
  v128.store(scratch, v1, 16);
  for (let jj = 0; jj < nv; jj++) {
    const o = <usize>jj << 2;
    let x = load<f32>(scratch + o);
    if (!first) x += load<f32>(pc + o);
    if (last) {
      x *= alpha;
      if (bias != 0) x += load<f32>(bias + o);
    }
    store<f32>(pc + o, x);
  }
}

/**
 * C = alpha A B (+ bias): A's element (i, p) at a + 4 (i ars + p acs), B packed by `packB` (k x n),
 * C row-major with row stride ldc, bias (n floats) or 0; scratch: 32 bytes for partial tiles.
 */
export function gemm(
  a: usize,
  ars: i32,
  acs: i32,
  packed: usize,
  c: usize,
  ldc: i32,
  m: i32,
  k: i32,
  n: i32,
  alpha: f32,
  bias: usize,
  scratch: usize,
): void {
  const panels = (n + 7) >> 3;
  const ar = <usize>ars << 2, ac = <usize>acs << 2, lc = <usize>ldc << 2;
  for (let k0 = 0; k0 < k; k0 += KC) {
    const kc = min(KC, k - k0);
    const first = k0 == 0, last = k0 + kc >= k;
    for (let i0 = 0; i0 < m; i0 += MC) {
      const i1 = min(i0 + MC, m);
      for (let jp = 0; jp < panels; jp++) {
        const j = jp << 3;
        const nv = min(8, n - j);
        const pb0 = packed + ((<usize>jp * <usize>k + <usize>k0) << 5);
        const bj = bias != 0 ? bias + (<usize>j << 2) : 0;
        let i = i0;
        for (; i + 6 <= i1; i += 6) {
          const a0 = a + <usize>i * ar + <usize>k0 * ac;
          const a1 = a0 + ar, a2 = a1 + ar, a3 = a2 + ar, a4 = a3 + ar, a5 = a4 + ar;
          let c00 = f32x4.splat(0), c01 = f32x4.splat(0), c10 = f32x4.splat(0), c11 = f32x4.splat(0);
          let c20 = f32x4.splat(0), c21 = f32x4.splat(0), c30 = f32x4.splat(0), c31 = f32x4.splat(0);
          let c40 = f32x4.splat(0), c41 = f32x4.splat(0), c50 = f32x4.splat(0), c51 = f32x4.splat(0);
          let pb = pb0;
          let o: usize = 0;
          for (let p = 0; p < kc; p++) {
            const b0 = v128.load(pb), b1 = v128.load(pb, 16);
            let x = v128.load32_splat(a0 + o);
            c00 = f32x4.relaxed_madd(x, b0, c00);
            c01 = f32x4.relaxed_madd(x, b1, c01);
            x = v128.load32_splat(a1 + o);
            c10 = f32x4.relaxed_madd(x, b0, c10);
            c11 = f32x4.relaxed_madd(x, b1, c11);
            x = v128.load32_splat(a2 + o);
            c20 = f32x4.relaxed_madd(x, b0, c20);
            c21 = f32x4.relaxed_madd(x, b1, c21);
            x = v128.load32_splat(a3 + o);
            c30 = f32x4.relaxed_madd(x, b0, c30);
            c31 = f32x4.relaxed_madd(x, b1, c31);
            x = v128.load32_splat(a4 + o);
            c40 = f32x4.relaxed_madd(x, b0, c40);
            c41 = f32x4.relaxed_madd(x, b1, c41);
            x = v128.load32_splat(a5 + o);
            c50 = f32x4.relaxed_madd(x, b0, c50);
            c51 = f32x4.relaxed_madd(x, b1, c51);
            pb += 32;
            o += ac;
          }
          const pc = c + <usize>i * lc + (<usize>j << 2);
          finish(c00, c01, pc, nv, first, last, alpha, bj, scratch);
          finish(c10, c11, pc + lc, nv, first, last, alpha, bj, scratch);
          finish(c20, c21, pc + 2 * lc, nv, first, last, alpha, bj, scratch);
          finish(c30, c31, pc + 3 * lc, nv, first, last, alpha, bj, scratch);
          finish(c40, c41, pc + 4 * lc, nv, first, last, alpha, bj, scratch);
          finish(c50, c51, pc + 5 * lc, nv, first, last, alpha, bj, scratch);
        }
        for (; i + 4 <= i1; i += 4) {
          const a0 = a + <usize>i * ar + <usize>k0 * ac;
          const a1 = a0 + ar, a2 = a1 + ar, a3 = a2 + ar;
          let c00 = f32x4.splat(0), c01 = f32x4.splat(0), c10 = f32x4.splat(0), c11 = f32x4.splat(0);
          let c20 = f32x4.splat(0), c21 = f32x4.splat(0), c30 = f32x4.splat(0), c31 = f32x4.splat(0);
          let pb = pb0;
          let o: usize = 0;
          for (let p = 0; p < kc; p++) {
            const b0 = v128.load(pb), b1 = v128.load(pb, 16);
            let x = v128.load32_splat(a0 + o);
            c00 = f32x4.relaxed_madd(x, b0, c00);
            c01 = f32x4.relaxed_madd(x, b1, c01);
            x = v128.load32_splat(a1 + o);
            c10 = f32x4.relaxed_madd(x, b0, c10);
            c11 = f32x4.relaxed_madd(x, b1, c11);
            x = v128.load32_splat(a2 + o);
            c20 = f32x4.relaxed_madd(x, b0, c20);
            c21 = f32x4.relaxed_madd(x, b1, c21);
            x = v128.load32_splat(a3 + o);
            c30 = f32x4.relaxed_madd(x, b0, c30);
            c31 = f32x4.relaxed_madd(x, b1, c31);
            pb += 32;
            o += ac;
          }
          const pc = c + <usize>i * lc + (<usize>j << 2);
          finish(c00, c01, pc, nv, first, last, alpha, bj, scratch);
          finish(c10, c11, pc + lc, nv, first, last, alpha, bj, scratch);
          finish(c20, c21, pc + 2 * lc, nv, first, last, alpha, bj, scratch);
          finish(c30, c31, pc + 3 * lc, nv, first, last, alpha, bj, scratch);
        }
        for (; i < i1; i++) {
          const a0 = a + <usize>i * ar + <usize>k0 * ac;
          let c00 = f32x4.splat(0), c01 = f32x4.splat(0);
          let pb = pb0;
          let o: usize = 0;
          for (let p = 0; p < kc; p++) {
            const x = v128.load32_splat(a0 + o);
            c00 = f32x4.relaxed_madd(x, v128.load(pb), c00);
            c01 = f32x4.relaxed_madd(x, v128.load(pb, 16), c01);
            pb += 32;
            o += ac;
          }
          finish(c00, c01, c + <usize>i * lc + (<usize>j << 2), nv, first, last, alpha, bj, scratch);
        }
      }
    }
  }
}
