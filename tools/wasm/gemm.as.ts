// AssemblyScript source of lib/backend/gemm_wasm.ts (built by tools/build_wasm.ts; excluded from deno's
// fmt, lint and check in deno.json: it is not TypeScript for Deno).
//
// The float32 product below, then the element-wise and row-wise loops of the other fused kernels: exact
// GELU, dropout, LayerNorm and column sums (lib/backend/gelu.ts, dropout.ts, layer_norm.ts, col_sums.ts).
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

// ---- exact GELU (lib/backend/gelu.ts `geluInto`, bit for bit) ----
//
// The same IEEE float64 operations as the JavaScript loop, in the same order (no fused multiply-add, no
// relaxed ops, no rewrites), two elements at a time in f64x2 lanes. Every constant and the exp table come
// from the JavaScript, through the heap (`GELU_BLOCK` in lib/backend/gelu.ts): the same doubles by
// construction. Constants are read once into locals, not written as literals: V8 materialises a v128
// literal with three instructions at every use, which made this loop no faster than the JavaScript.
// Two forms differ from the JavaScript's text and give the same double for every input:
// - `j / EXP_STEPS` is `j * (1 / EXP_STEPS)`: EXP_STEPS is 64, and scaling by a power of two is exact
//   (j <= 6593: no underflow, no overflow). Binaryen makes this change itself.
// - `Math.min(z * z, EXP_MAX)` is `pmin` (b < a ? b : a): z * z is +0 or more, or NaN, so only NaN could
//   tell them apart, and NaN inputs are the caller's: the loop says whether it saw one, and the caller
//   then runs the JavaScript loop, since the NaN bits V8 produces depend on its tier and code generation.
// - `(zz * EXP_STEPS) | 0` is `floor` (zz >= 0), its integer read from the double's low bits after adding
//   2^52, which costs fewer instructions than a saturating conversion of f64x2 lanes (4.8 against 5.3 ns
//   an element at 2560 x 512 x 2; the j the remainder subtracts is the same double).
// - `pos - (2 * pos - 1) * h` is a lane select of `1 - h` and `h`, its value for pos = 1 and pos = +0
//   (1 * h and 0 - (-1 * h) are exact; h >= 0).

// Offsets of the constants in the block (each a pair of equal doubles, 16 bytes), then the table.
const K_INV_SQRT2 = 0;
const K_ERF_P = 1;
const K_ONE = 2;
const K_EXP_MAX = 3;
const K_EXP_STEPS = 4;
const K_INV_STEPS = 5;
const K_SIXTH = 6;
const K_TWENTY_FOURTH = 7;
const K_HALF = 8;
const K_A5 = 9;
const K_A4 = 10;
const K_A3 = 11;
const K_A2 = 12;
const K_A1 = 13;
const K_TWO = 14;
const K_INV_SQRT_2PI = 15;
const K_TABLE: usize = 16 * 16; // byte offset of the exp table

// @ts-ignore: decorator
@inline function kv(block: usize, i: i32): v128 {
  return v128.load(block + (<usize>i << 4));
}

// @ts-ignore: decorator
@inline function ks(block: usize, i: i32): f64 {
  return load<f64>(block + (<usize>i << 4));
}

/** One element, scalar (the tail): `geluInto`'s body. Returns 1 for a NaN input (its outputs: the caller's). */
// @ts-ignore: decorator
@inline function gelu1(px: usize, py: usize, pd: usize, block: usize): i32 {
  const one = ks(block, K_ONE);
  const v = <f64>load<f32>(px);
  const z = abs(v) * ks(block, K_INV_SQRT2);
  const t = one / (one + ks(block, K_ERF_P) * z);
  const zz = min(z * z, ks(block, K_EXP_MAX));
  const j = <i32>(zz * ks(block, K_EXP_STEPS)); // i32.trunc_sat_f64_s (non-trapping conversions are on)
  const r = zz - <f64>j * ks(block, K_INV_STEPS);
  const q = one - r * (one - r * (ks(block, K_HALF) - r * (ks(block, K_SIXTH) - r * ks(block, K_TWENTY_FOURTH))));
  const e = load<f64>(block + K_TABLE + (<usize>j << 3)) * q;
  const p = (((ks(block, K_A5) * t + ks(block, K_A4)) * t + ks(block, K_A3)) * t + ks(block, K_A2)) * t +
    ks(block, K_A1);
  const h = ks(block, K_HALF) * p * t * e;
  const pos = <f64>(v >= 0);
  const cdf = pos - (ks(block, K_TWO) * pos - one) * h;
  store<f32>(py, <f32>(v * cdf));
  store<f32>(pd, <f32>(cdf + v * e * ks(block, K_INV_SQRT_2PI)));
  return i32(v != v);
}

/** Two elements in f64x2 lanes, the constants in locals; returns a lane mask of NaN inputs. */
// @ts-ignore: decorator
@inline function gelu2(
  px: usize,
  py: usize,
  pd: usize,
  table: usize,
  invSqrt2: v128,
  erfP: v128,
  one: v128,
  expMax: v128,
  expSteps: v128,
  invSteps: v128,
  sixth: v128,
  twentyFourth: v128,
  half: v128,
  a5: v128,
  a4: v128,
  a3: v128,
  a2: v128,
  a1: v128,
  magic: v128,
  last: v128,
  invSqrt2Pi: v128,
): v128 {
  const v = f64x2.promote_low_f32x4(v128.load64_zero(px));
  const z = f64x2.mul(f64x2.abs(v), invSqrt2); // Math.abs(v) * INV_SQRT2
  const t = f64x2.div(one, f64x2.add(one, f64x2.mul(erfP, z))); // 1 / (1 + ERF_P * z)
  const zz = f64x2.pmin(f64x2.mul(z, z), expMax); // Math.min(z * z, EXP_MAX)
  // (zz * EXP_STEPS) | 0 is its floor (zz >= 0), a whole double below 2^32: plus 2^52 its low 32 bits are
  // the integer (lanes 0 and 2 of an i32x4), clamped to the table (a NaN's bits, whose outputs the caller
  // discards, must not address memory outside it).
  const jf = f64x2.floor(f64x2.mul(zz, expSteps));
  const r = f64x2.sub(zz, f64x2.mul(jf, invSteps)); // zz - j / EXP_STEPS
  const j = i32x4.min_u(f64x2.add(jf, magic), last);
  // EXP_TABLE[j] * (1 - r * (1 - r * (0.5 - r * (1 / 6 - r * (1 / 24)))))
  let ex = v128.load64_zero(table + (<usize>i32x4.extract_lane(j, 0) << 3));
  ex = v128.load64_lane(table + (<usize>i32x4.extract_lane(j, 2) << 3), ex, 1);
  let q = f64x2.sub(sixth, f64x2.mul(r, twentyFourth));
  q = f64x2.sub(half, f64x2.mul(r, q));
  q = f64x2.sub(one, f64x2.mul(r, q));
  q = f64x2.sub(one, f64x2.mul(r, q));
  const e = f64x2.mul(ex, q);
  // 0.5 * ((((A5 * t + A4) * t + A3) * t + A2) * t + A1) * t * e
  let p = f64x2.add(f64x2.mul(a5, t), a4);
  p = f64x2.add(f64x2.mul(p, t), a3);
  p = f64x2.add(f64x2.mul(p, t), a2);
  p = f64x2.add(f64x2.mul(p, t), a1);
  const h = f64x2.mul(f64x2.mul(f64x2.mul(half, p), t), e);
  // pos - (2 * pos - 1) * h with pos = +(v >= 0): 1 - 1 * h = 1 - h, or 0 - (-1 * h) = h (h >= 0; NaN: h).
  const cdf = v128.bitselect(f64x2.sub(one, h), h, f64x2.ge(v, f64x2.splat(0)));
  v128.store64_lane(py, f32x4.demote_f64x2_zero(f64x2.mul(v, cdf)), 0); // v * cdf
  const d = f64x2.add(cdf, f64x2.mul(f64x2.mul(v, e), invSqrt2Pi)); // cdf + v * e * INV_SQRT_2PI
  v128.store64_lane(pd, f32x4.demote_f64x2_zero(d), 0);
  return f64x2.ne(v, v);
}

/**
 * Exact GELU of n float32s at x into y and its derivative into d (float32s), as `geluInto`; block: the
 * constants and exp table of lib/backend/gelu.ts `GELU_BLOCK`. Returns 0 where no input was NaN, else
 * non-zero: a NaN's outputs need not be `geluInto`'s to the bit, so the caller then runs `geluInto`.
 */
export function gelu(x: usize, y: usize, d: usize, n: i32, block: usize): i32 {
  const invSqrt2 = kv(block, K_INV_SQRT2), erfP = kv(block, K_ERF_P), one = kv(block, K_ONE);
  const expMax = kv(block, K_EXP_MAX), expSteps = kv(block, K_EXP_STEPS), invSteps = kv(block, K_INV_STEPS);
  const sixth = kv(block, K_SIXTH), twentyFourth = kv(block, K_TWENTY_FOURTH), half = kv(block, K_HALF);
  const a5 = kv(block, K_A5), a4 = kv(block, K_A4), a3 = kv(block, K_A3), a2 = kv(block, K_A2);
  const a1 = kv(block, K_A1), invSqrt2Pi = kv(block, K_INV_SQRT_2PI);
  const magic = f64x2.splat(4503599627370496.0); // 2^52
  const last = i32x4.splat(<i32>(ks(block, K_EXP_MAX) * ks(block, K_EXP_STEPS))); // zz <= EXP_MAX's top j
  const table = block + K_TABLE;
  let nan = v128.splat<i64>(0);
  let i = 0;
  for (; i + 4 <= n; i += 4) {
    const o = <usize>i << 2;
    nan = v128.or(nan, gelu2(x + o, y + o, d + o, table, invSqrt2, erfP, one, expMax, expSteps, invSteps,
      sixth, twentyFourth, half, a5, a4, a3, a2, a1, magic, last, invSqrt2Pi));
    nan = v128.or(nan, gelu2(x + o + 8, y + o + 8, d + o + 8, table, invSqrt2, erfP, one, expMax, expSteps,
      invSteps, sixth, twentyFourth, half, a5, a4, a3, a2, a1, magic, last, invSqrt2Pi));
  }
  let seen = v128.any_true(nan) ? 1 : 0;
  for (; i < n; i++) {
    const o = <usize>i << 2;
    seen |= gelu1(x + o, y + o, d + o, block);
  }
  return seen;
}

// ---- dropout (lib/backend/dropout.ts `dropoutInto`, bit for bit) ----
//
// tfjs's `tf.dropout(x, rate, undefined, seed)` draws u from seedrandom's alea generator (in JavaScript,
// ~8 ns a value: its recurrence runs through two float-int conversions), rounds it to float32, and keeps
// x where float32(u + keep) >= 1, times float32(1 / keep). Alea is a lag-3 multiply-with-carry generator
// written in doubles: with its state as integers (s = k / 2^32, every value a multiple of 2^-32),
// t = 2091639 k0 + c is below 2^53, so the doubles are exact, and c = t >> 32, k = t mod 2^32 give the
// same numbers, the carry's chain now one add and one shift per value. Whether u is kept is monotonic in
// its integer k, so the caller finds the least kept k once (`keptFrom` in lib/backend/dropout.ts) and the
// loop compares integers. The multiplier, scale or +0 without a branch (one draw in ten is 0), times x is
// a float32 multiply, as tfjs's Mul.

/**
 * y[i] = x[i] * (kept ? scale : 0) for n float32s, alea's next value (from state k0..k2, c) deciding each;
 * mask[i] (a byte) = kept, for the gradient (`dropoutGrad`), which then need not draw the stream again.
 */
export function dropout(
  x: usize, y: usize, mask: usize, n: i32, s0: u32, s1: u32, s2: u32, c0: u32, keptFrom: u32, scale: f32,
): void {
  let k0 = <u64>s0, k1 = <u64>s1, k2 = <u64>s2, c = <u64>c0;
  const from = <u64>keptFrom;
  for (let i = 0; i < n; i++) {
    const t = 2091639 * k0 + c;
    k0 = k1;
    k1 = k2;
    c = t >> 32;
    k2 = t & 0xffffffff;
    const kept = k2 >= from;
    const o = <usize>i << 2;
    store<f32>(y + o, load<f32>(x + o) * (scale * <f32>kept));
    store<u8>(mask + <usize>i, <u8>kept);
  }
}

/**
 * dx[i] = dy[i] * (scale * mask[i]) for n float32s and their mask bytes (0 or 1) from `dropout`: the
 * forward's own float32 operations on dy, so the bits of drawing the same stream again.
 */
export function dropoutGrad(dy: usize, mask: usize, dx: usize, n: i32, scale: f32): void {
  const sc = f32x4.splat(scale);
  const vec = n & ~3;
  for (let i = 0; i < vec; i += 4) {
    const m = i32x4.extend_low_i16x8_u(i16x8.extend_low_i8x16_u(v128.load32_zero(mask + <usize>i)));
    const o = <usize>i << 2;
    v128.store(dx + o, f32x4.mul(v128.load(dy + o), f32x4.mul(sc, f32x4.convert_i32x4_u(m))));
  }
  for (let i = vec; i < n; i++) {
    const o = <usize>i << 2;
    store<f32>(dx + o, load<f32>(dy + o) * (scale * <f32>load<u8>(mask + <usize>i)));
  }
}

// ---- LayerNorm over the last axis (lib/backend/layer_norm.ts `layerNormInto`, `layerNormGradXInto`) ----
//
// The JavaScript loops' float64 operations in their order, per element and row, four rows at a time (two
// in the gradient, where four measured no faster): each row's sums still run j = 0, 1, ... in one
// accumulator (the same bits), but the rows' accumulators are independent, so the adds no longer wait on
// each other (a row's sum alone is a chain of dependent float64 adds); the element-wise output loops run
// two elements at a time in f64x2 lanes. Measured at 2560 x 128: forward 0.54 ms against the JavaScript
// loop's 1.20, input gradient 0.74 against 1.14 (best of 50).
// gamma and beta are [h], or one row of them per group of `per` rows (row r uses group r / per).

/** Two float32s at p as an f64x2. */
// @ts-ignore: decorator
@inline function f32pair(p: usize): v128 {
  return f64x2.promote_low_f32x4(v128.load64_zero(p));
}

/** y = (x - mean) rstd gamma + beta for x [rows, h]; mean, rstd [rows] written (float32). */
export function layerNorm(
  x: usize, y: usize, mean: usize, rstd: usize, gamma: usize, beta: usize, rows: i32, h: i32, per: i32, eps: f64,
): void {
  const hf = <f64>h;
  let r = 0;
  for (; r + 4 <= rows; r += 4) {
    const o0 = x + (<usize>r * <usize>h << 2), o1 = o0 + (<usize>h << 2), o2 = o1 + (<usize>h << 2);
    const o3 = o2 + (<usize>h << 2);
    let s0: f64 = 0, s1: f64 = 0, s2: f64 = 0, s3: f64 = 0;
    for (let j = 0; j < h; j++) {
      const b = <usize>j << 2;
      s0 += <f64>load<f32>(o0 + b);
      s1 += <f64>load<f32>(o1 + b);
      s2 += <f64>load<f32>(o2 + b);
      s3 += <f64>load<f32>(o3 + b);
    }
    const m0 = s0 / hf, m1 = s1 / hf, m2 = s2 / hf, m3 = s3 / hf;
    let q0: f64 = 0, q1: f64 = 0, q2: f64 = 0, q3: f64 = 0;
    for (let j = 0; j < h; j++) {
      const b = <usize>j << 2;
      const c0 = <f64>load<f32>(o0 + b) - m0, c1 = <f64>load<f32>(o1 + b) - m1;
      const c2 = <f64>load<f32>(o2 + b) - m2, c3 = <f64>load<f32>(o3 + b) - m3;
      q0 += c0 * c0;
      q1 += c1 * c1;
      q2 += c2 * c2;
      q3 += c3 * c3;
    }
    normRow(x, y, gamma, beta, r, h, per, m0, 1 / Math.sqrt(q0 / hf + eps), mean, rstd);
    normRow(x, y, gamma, beta, r + 1, h, per, m1, 1 / Math.sqrt(q1 / hf + eps), mean, rstd);
    normRow(x, y, gamma, beta, r + 2, h, per, m2, 1 / Math.sqrt(q2 / hf + eps), mean, rstd);
    normRow(x, y, gamma, beta, r + 3, h, per, m3, 1 / Math.sqrt(q3 / hf + eps), mean, rstd);
  }
  for (; r < rows; r++) {
    const o = x + (<usize>r * <usize>h << 2);
    let sum: f64 = 0;
    for (let j = 0; j < h; j++) sum += <f64>load<f32>(o + (<usize>j << 2));
    const mu = sum / hf;
    let sq: f64 = 0;
    for (let j = 0; j < h; j++) {
      const c = <f64>load<f32>(o + (<usize>j << 2)) - mu;
      sq += c * c;
    }
    normRow(x, y, gamma, beta, r, h, per, mu, 1 / Math.sqrt(sq / hf + eps), mean, rstd);
  }
}

/** Row r of the output from its mean (float64, as computed) and 1 / std; stores both as float32. */
// @ts-ignore: decorator
@inline function normRow(
  x: usize, y: usize, gamma: usize, beta: usize, r: i32, h: i32, per: i32, mu: f64, inv: f64, mean: usize,
  rstd: usize,
): void {
  const o = <usize>r * <usize>h << 2, po = <usize>(r / per) * <usize>h << 2;
  store<f32>(mean + (<usize>r << 2), <f32>mu);
  store<f32>(rstd + (<usize>r << 2), <f32>inv);
  // Element-wise, so two at a time in f64x2 lanes: the same operations per element.
  const mu2 = f64x2.splat(mu), inv2 = f64x2.splat(inv);
  let j = 0;
  for (; j + 2 <= h; j += 2) {
    const b = <usize>j << 2;
    const xv = f32pair(x + o + b);
    const gv = f32pair(gamma + po + b);
    const bv = f32pair(beta + po + b);
    const v = f64x2.add(f64x2.mul(f64x2.mul(f64x2.sub(xv, mu2), inv2), gv), bv);
    v128.store64_lane(y + o + b, f32x4.demote_f64x2_zero(v), 0);
  }
  for (; j < h; j++) {
    const b = <usize>j << 2;
    const v = (<f64>load<f32>(x + o + b) - mu) * inv * <f64>load<f32>(gamma + po + b) +
      <f64>load<f32>(beta + po + b);
    store<f32>(y + o + b, <f32>v);
  }
}

/** dx = rstd (g - mean(g) - xhat mean(g xhat)), g = dy gamma, xhat = (x - mean) rstd; mean, rstd float32. */
export function layerNormGradX(
  dy: usize, x: usize, gamma: usize, mean: usize, rstd: usize, dx: usize, rows: i32, h: i32, per: i32,
): void {
  const hf = <f64>h;
  let r = 0;
  for (; r + 2 <= rows; r += 2) {
    const o0 = <usize>r * <usize>h << 2, o1 = o0 + (<usize>h << 2);
    const p0 = <usize>(r / per) * <usize>h << 2, p1 = <usize>((r + 1) / per) * <usize>h << 2;
    const mu0 = <f64>load<f32>(mean + (<usize>r << 2)), inv0 = <f64>load<f32>(rstd + (<usize>r << 2));
    const mu1 = <f64>load<f32>(mean + (<usize>(r + 1) << 2)), inv1 = <f64>load<f32>(rstd + (<usize>(r + 1) << 2));
    let sg0: f64 = 0, sgx0: f64 = 0, sg1: f64 = 0, sgx1: f64 = 0;
    for (let j = 0; j < h; j++) {
      const b = <usize>j << 2;
      const g0 = <f64>load<f32>(dy + o0 + b) * <f64>load<f32>(gamma + p0 + b);
      const g1 = <f64>load<f32>(dy + o1 + b) * <f64>load<f32>(gamma + p1 + b);
      sg0 += g0;
      sgx0 += g0 * (<f64>load<f32>(x + o0 + b) - mu0) * inv0;
      sg1 += g1;
      sgx1 += g1 * (<f64>load<f32>(x + o1 + b) - mu1) * inv1;
    }
    gradRow(dy, x, gamma, dx, o0, p0, h, mu0, inv0, sg0 / hf, sgx0 / hf);
    gradRow(dy, x, gamma, dx, o1, p1, h, mu1, inv1, sg1 / hf, sgx1 / hf);
  }
  for (; r < rows; r++) {
    const o = <usize>r * <usize>h << 2, p = <usize>(r / per) * <usize>h << 2;
    const mu = <f64>load<f32>(mean + (<usize>r << 2)), inv = <f64>load<f32>(rstd + (<usize>r << 2));
    let sg: f64 = 0, sgx: f64 = 0;
    for (let j = 0; j < h; j++) {
      const b = <usize>j << 2;
      const g = <f64>load<f32>(dy + o + b) * <f64>load<f32>(gamma + p + b);
      sg += g;
      sgx += g * (<f64>load<f32>(x + o + b) - mu) * inv;
    }
    gradRow(dy, x, gamma, dx, o, p, h, mu, inv, sg / hf, sgx / hf);
  }
}

/** One row of dx from its sums' means a = mean(g), c = mean(g xhat). */
// @ts-ignore: decorator
@inline function gradRow(
  dy: usize, x: usize, gamma: usize, dx: usize, o: usize, p: usize, h: i32, mu: f64, inv: f64, a: f64, c: f64,
): void {
  const mu2 = f64x2.splat(mu), inv2 = f64x2.splat(inv), a2 = f64x2.splat(a), c2 = f64x2.splat(c);
  let j = 0;
  for (; j + 2 <= h; j += 2) {
    const b = <usize>j << 2;
    const xv = f32pair(x + o + b);
    const dv = f32pair(dy + o + b);
    const gv = f32pair(gamma + p + b);
    const xhat = f64x2.mul(f64x2.sub(xv, mu2), inv2);
    const v = f64x2.mul(inv2, f64x2.sub(f64x2.sub(f64x2.mul(dv, gv), a2), f64x2.mul(xhat, c2)));
    v128.store64_lane(dx + o + b, f32x4.demote_f64x2_zero(v), 0);
  }
  for (; j < h; j++) {
    const b = <usize>j << 2;
    const xhat = (<f64>load<f32>(x + o + b) - mu) * inv;
    const v = inv * (<f64>load<f32>(dy + o + b) * <f64>load<f32>(gamma + p + b) - a - xhat * c);
    store<f32>(dx + o + b, <f32>v);
  }
}

// ---- Column sums (lib/backend/col_sums.ts `colSumInto`, `gammaGradInto`) ----
//
// Per column, a float64 sum over the rows in order, as the JavaScript loops run it, but two columns at a
// time in f64x2 lanes (columns are independent) and four rows per pass over the accumulators, added in row
// order: the same bits. `acc` is scratch for w doubles; each group of `per` rows is summed on its own into
// its row of dst (float32).

/** Stores the w sums of acc into dst (float32) and zeroes acc for the next group. */
// @ts-ignore: decorator
@inline function flushSums(acc: usize, dst: usize, w: i32): void {
  for (let j = 0; j < w; j++) {
    const a = acc + (<usize>j << 3);
    store<f32>(dst + (<usize>j << 2), <f32>load<f64>(a));
    store<f64>(a, 0);
  }
}

/** dst[g, j] = sum over rows r of group g of src[r, j] (src [rows, w], groups of `per` rows). */
export function colSum(src: usize, dst: usize, rows: i32, w: i32, per: i32, acc: usize): void {
  for (let j = 0; j < w; j++) store<f64>(acc + (<usize>j << 3), 0);
  const rb = <usize>w << 2;
  for (let r0 = 0; r0 < rows; r0 += per) {
    const end = r0 + per;
    let r = r0;
    for (; r + 4 <= end; r += 4) {
      const o = src + <usize>r * rb;
      let j = 0;
      for (; j + 2 <= w; j += 2) {
        const a = acc + (<usize>j << 3), b = o + (<usize>j << 2);
        const s = f64x2.add(f64x2.add(v128.load(a), f32pair(b)), f32pair(b + rb));
        v128.store(a, f64x2.add(f64x2.add(s, f32pair(b + 2 * rb)), f32pair(b + 3 * rb)));
      }
      for (; j < w; j++) {
        const a = acc + (<usize>j << 3), b = o + (<usize>j << 2);
        const s = load<f64>(a) + <f64>load<f32>(b) + <f64>load<f32>(b + rb);
        store<f64>(a, s + <f64>load<f32>(b + 2 * rb) + <f64>load<f32>(b + 3 * rb));
      }
    }
    for (; r < end; r++) {
      const o = src + <usize>r * rb;
      for (let j = 0; j < w; j++) {
        const a = acc + (<usize>j << 3);
        store<f64>(a, load<f64>(a) + <f64>load<f32>(o + (<usize>j << 2)));
      }
    }
    flushSums(acc, dst + <usize>(r0 / per) * rb, w);
  }
}

/** dgamma[g, j] = sum over rows r of group g of dy[r, j] (x[r, j] - mean[r]) rstd[r] (mean, rstd float32). */
export function layerNormGradGamma(
  dy: usize, x: usize, mean: usize, rstd: usize, dst: usize, rows: i32, h: i32, per: i32, acc: usize,
): void {
  for (let j = 0; j < h; j++) store<f64>(acc + (<usize>j << 3), 0);
  const rb = <usize>h << 2;
  for (let r0 = 0; r0 < rows; r0 += per) {
    for (let r = r0; r < r0 + per; r++) {
      const o = <usize>r * rb;
      const mu = <f64>load<f32>(mean + (<usize>r << 2)), inv = <f64>load<f32>(rstd + (<usize>r << 2));
      const mu2 = f64x2.splat(mu), inv2 = f64x2.splat(inv);
      let j = 0;
      for (; j + 2 <= h; j += 2) {
        const a = acc + (<usize>j << 3), b = o + (<usize>j << 2);
        const t = f64x2.mul(f64x2.mul(f32pair(dy + b), f64x2.sub(f32pair(x + b), mu2)), inv2);
        v128.store(a, f64x2.add(v128.load(a), t));
      }
      for (; j < h; j++) {
        const a = acc + (<usize>j << 3), b = o + (<usize>j << 2);
        store<f64>(a, load<f64>(a) + <f64>load<f32>(dy + b) * (<f64>load<f32>(x + b) - mu) * inv);
      }
    }
    flushSums(acc, dst + <usize>(r0 / per) * rb, h);
  }
}

// ---- Column sums in float32 (lib/backend/col_sums.ts `sumRowsF32Into`) ----
//
// tfjs-wasm's product ones[1, rows] x src[rows, w] (XNNPACK's) adds each column's rows in order into a
// float32 accumulator that starts at +0 (1 * x is exact): the stock gradient of a broadcast add sums so,
// and this is that sum without the product's packing, four columns at a time.

/** dst[j] = float32 sum of src[r, j] over r = 0, 1, ... (src [rows, w]). */
export function sumRowsF32(src: usize, dst: usize, rows: i32, w: i32): void {
  const vec = w & ~3;
  for (let j = 0; j < w; j++) store<f32>(dst + (<usize>j << 2), 0);
  for (let r = 0; r < rows; r++) {
    const row = src + ((<usize>r * <usize>w) << 2);
    for (let j = 0; j < vec; j += 4) {
      const o = <usize>j << 2;
      v128.store(dst + o, f32x4.add(v128.load(dst + o), v128.load(row + o)));
    }
    for (let j = vec; j < w; j++) {
      const o = <usize>j << 2;
      store<f32>(dst + o, load<f32>(dst + o) + load<f32>(row + o));
    }
  }
}
