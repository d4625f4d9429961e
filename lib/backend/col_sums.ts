/**
 * Column sums for the fused kernels NormtuneColSum (a bias's or LayerNorm beta's gradient: dy summed over
 * rows) and NormtuneLayerNormGradGamma (gamma's: dy xhat summed over rows), per group of `per` consecutive
 * rows when the parameters have one copy per example (lib/backend/fused_kernels.ts). Each column's sum is a
 * float64 sum over its rows in order, stored as float32.
 *
 * `colSumInto` and `gammaGradInto` are the JavaScript loops (the reference, and the cpu backend's). On the
 * wasm backend the project's wasm module (tools/wasm/gemm.as.ts `colSum`, `layerNormGradGamma`) adds two
 * columns at a time in f64x2 lanes, each column still in row order: the same bits
 * (tests/backend/col_sums_test.ts). In a BERT-tiny full fine-tuning step the JavaScript column sums took
 * ~8% of the time (3.7 ns an element).
 *
 * `sumRows` is the other order: each column's float32 sum over the rows, as tfjs-wasm's product
 * ones[1, rows] x x sums it (the stock gradient of a broadcast add, lib/backend/gradients.ts), without
 * that product's packing of x (1.7 ms a BERT-tiny step for the position embeddings' gradient).
 */
import type { Io, TI } from "./kernel_io.ts";

/** dst[g, j] = sum of src[r, j] over the rows r of group g (groups of `per` rows, in order). */
export function colSumInto(src: Float32Array, dst: Float32Array, rows: number, w: number, per: number): void {
  const acc = new Float64Array(w);
  for (let r0 = 0; r0 < rows; r0 += per) {
    acc.fill(0);
    for (let r = r0; r < r0 + per; r++) {
      const o = r * w;
      for (let j = 0; j < w; j++) acc[j] += src[o + j];
    }
    const d = (r0 / per) * w;
    for (let j = 0; j < w; j++) dst[d + j] = acc[j];
  }
}

/** dgamma[g, j] = sum over group g's rows of dy (x - mean) rstd: LayerNorm gamma's gradient. */
export function gammaGradInto(
  dys: Float32Array,
  xs: Float32Array,
  ms: Float32Array,
  rs: Float32Array,
  dst: Float32Array,
  rows: number,
  h: number,
  per: number,
): void {
  const acc = new Float64Array(h);
  for (let r0 = 0; r0 < rows; r0 += per) {
    acc.fill(0);
    for (let r = r0; r < r0 + per; r++) {
      const o = r * h, mu = ms[r], inv = rs[r];
      for (let j = 0; j < h; j++) acc[j] += dys[o + j] * (xs[o + j] - mu) * inv;
    }
    const d = (r0 / per) * h;
    for (let j = 0; j < h; j++) dst[d + j] = acc[j];
  }
}

/**
 * Scratch for w float64 accumulators on the wasm heap (2w float32s; the heap's allocations come from
 * malloc, 8-byte aligned, and wasm loads need no alignment anyway), freed after `f`.
 */
function withAcc(io: Io, w: number, f: (acc: number) => void): void {
  const acc = io.alloc([2 * w]);
  try {
    f(io.address(acc));
  } finally {
    io.free(acc);
  }
}

/** Column sums of x [rows, w] per group of `per` rows into out: the wasm module where it runs. */
export function colSum(io: Io, x: TI, out: TI, rows: number, w: number, per: number): void {
  const simd = io.simd();
  if (simd) return withAcc(io, w, (acc) => simd.colSum(io.address(x), io.address(out), rows, w, per, acc));
  colSumInto(io.data(x), io.data(out), rows, w, per);
}

/** LayerNorm gamma's gradient into out: the wasm module where it runs. */
export function gammaGrad(
  io: Io,
  dy: TI,
  x: TI,
  mean: TI,
  rstd: TI,
  out: TI,
  rows: number,
  h: number,
  per: number,
) {
  const simd = io.simd();
  if (simd) {
    const a = io.address.bind(io);
    return withAcc(
      io,
      h,
      (acc) => simd.layerNormGradGamma(a(dy), a(x), a(mean), a(rstd), a(out), rows, h, per, acc),
    );
  }
  gammaGradInto(io.data(dy), io.data(x), io.data(mean), io.data(rstd), io.data(out), rows, h, per);
}

/** dst[j] = float32 sum of src[r, j] over the rows r in order, from +0 (tfjs-wasm's ones x src). */
export function sumRowsF32Into(src: Float32Array, dst: Float32Array, rows: number, w: number): void {
  dst.fill(0, 0, w);
  for (let r = 0; r < rows; r++) {
    const o = r * w;
    for (let j = 0; j < w; j++) dst[j] = Math.fround(dst[j] + src[o + j]);
  }
}

/** Float32 column sums of x [rows, w] into out [w]: the wasm module where it runs. */
export function sumRows(io: Io, x: TI, out: TI, rows: number, w: number): void {
  const simd = io.simd();
  if (simd) return simd.sumRowsF32(io.address(x), io.address(out), rows, w);
  sumRowsF32Into(io.data(x), io.data(out), rows, w);
}
