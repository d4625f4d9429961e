/**
 * The copies the fused kernels (lib/backend/fused_kernels.ts) make in JavaScript: strided transposes in
 * cache-sized blocks (the dense layers' operands for XNNPACK). Attention needs none: its products read
 * heads in place (lib/backend/simd_gemm.ts).
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
