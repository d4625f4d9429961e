/**
 * The copies the fused kernels (lib/backend/fused_kernels.ts) make in JavaScript: strided transposes in
 * cache-sized blocks, and attention's head permutations between token order [b, s, H, d] and head order
 * [b, H, s, d] (or transposed, [b, H, d, s]).
 */

// 8 x 8 blocks: with power-of-two strides larger blocks map to one cache set and thrash.
const BLOCK = 8;

/**
 * dst[dOff + c * dStride + r] = scale * src[sOff + r * sStride + c] for r < rows, c < cols: a (strided)
 * transpose, in cache-sized blocks.
 */
export function transposeInto(
  src: Float32Array,
  sOff: number,
  sStride: number,
  dst: Float32Array,
  dOff: number,
  dStride: number,
  rows: number,
  cols: number,
  scale = 1,
): void {
  for (let r0 = 0; r0 < rows; r0 += BLOCK) {
    const r1 = Math.min(r0 + BLOCK, rows);
    for (let c0 = 0; c0 < cols; c0 += BLOCK) {
      const c1 = Math.min(c0 + BLOCK, cols);
      for (let r = r0; r < r1; r++) {
        let s = sOff + r * sStride + c0, d = dOff + c0 * dStride + r;
        if (scale === 1) { for (let c = c0; c < c1; c++, s++, d += dStride) dst[d] = src[s]; }
        else for (let c = c0; c < c1; c++, s++, d += dStride) dst[d] = scale * src[s];
      }
    }
  }
}

/** Head layout of attention: tokens [b, s, H, d] <-> per head [b, H, s, d] or transposed [b, H, d, s]. */
export interface Heads {
  b: number;
  s: number;
  h: number;
  d: number;
}

/** [b, s, H, d] -> [b, H, s, d], times `scale`. */
export function toHeads(src: Float32Array, dst: Float32Array, { b, s, h, d }: Heads, scale = 1): void {
  for (let bi = 0; bi < b; bi++) {
    for (let hi = 0; hi < h; hi++) {
      let o = ((bi * h + hi) * s) * d;
      for (let si = 0; si < s; si++, o += d) {
        const i = ((bi * s + si) * h + hi) * d;
        if (scale === 1) dst.set(src.subarray(i, i + d), o);
        else for (let j = 0; j < d; j++) dst[o + j] = scale * src[i + j];
      }
    }
  }
}

/** [b, H, s, d] -> [b, s, H, d], times `scale`. */
export function fromHeads(src: Float32Array, dst: Float32Array, { b, s, h, d }: Heads, scale = 1): void {
  for (let bi = 0; bi < b; bi++) {
    for (let hi = 0; hi < h; hi++) {
      let i = ((bi * h + hi) * s) * d;
      for (let si = 0; si < s; si++, i += d) {
        const o = ((bi * s + si) * h + hi) * d;
        if (scale === 1) dst.set(src.subarray(i, i + d), o);
        else for (let j = 0; j < d; j++) dst[o + j] = scale * src[i + j];
      }
    }
  }
}

/** [b, s, H, d] -> [b, H, d, s], times `scale`. */
export function toHeadsT(src: Float32Array, dst: Float32Array, { b, s, h, d }: Heads, scale = 1): void {
  for (let bi = 0; bi < b; bi++) {
    for (let hi = 0; hi < h; hi++) {
      transposeInto(src, (bi * s * h + hi) * d, h * d, dst, (bi * h + hi) * d * s, s, s, d, scale);
    }
  }
}

/** [b, H, d, s] -> [b, s, H, d], times `scale`. */
export function fromHeadsT(src: Float32Array, dst: Float32Array, { b, s, h, d }: Heads, scale = 1): void {
  for (let bi = 0; bi < b; bi++) {
    for (let hi = 0; hi < h; hi++) {
      transposeInto(src, (bi * h + hi) * d * s, s, dst, (bi * s * h + hi) * d, h * d, d, s, scale);
    }
  }
}
