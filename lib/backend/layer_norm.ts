/**
 * LayerNorm over the last axis for the fused kernels NormtuneLayerNorm and NormtuneLayerNormGradX
 * (lib/backend/fused_kernels.ts): float64 sums per row, results stored as float32. gamma and beta are [h],
 * or one row per group of `per` consecutive rows (per-example copies: row r uses group floor(r / per)).
 *
 * `layerNormInto` and `layerNormGradXInto` are the JavaScript loops (the reference, and what the cpu
 * backend runs). On the wasm backend the project's wasm module runs the same float64 operations in the
 * same order per row (tools/wasm/gemm.as.ts `layerNorm`, `layerNormGradX`), several rows at a time so that
 * one row's chain of dependent adds does not stall the next: the same float32 bits
 * (tests/backend/layer_norm_test.ts), about twice as fast.
 */
import { elementCount } from "../util/shape.ts";
import type { Io, TI } from "./kernel_io.ts";

/** Rows, width and rows per gamma/beta group of a LayerNorm call on x. */
export interface LnShape {
  rows: number;
  h: number;
  per: number;
}

/** The shape of a LayerNorm of x with gamma [h] or [groups, h]. */
export function lnShape(x: TI, gamma: TI): LnShape {
  const h = x.shape[x.shape.length - 1];
  const rows = elementCount(x.shape) / h;
  const groups = gamma.shape.length === 1 ? 1 : gamma.shape[0];
  return { rows, h, per: rows / groups };
}

/** ys = (xs - mean) rstd gamma + beta per row; ms, rs: each row's mean and 1 / std (float32). */
export function layerNormInto(
  xs: Float32Array,
  ys: Float32Array,
  gs: Float32Array,
  bs: Float32Array,
  ms: Float32Array,
  rs: Float32Array,
  { rows, h, per }: LnShape,
  eps: number,
): void {
  for (let r = 0; r < rows; r++) {
    const o = r * h, po = Math.floor(r / per) * h;
    let sum = 0;
    for (let j = 0; j < h; j++) sum += xs[o + j];
    const mu = sum / h;
    let sq = 0;
    for (let j = 0; j < h; j++) {
      const c = xs[o + j] - mu;
      sq += c * c;
    }
    const inv = 1 / Math.sqrt(sq / h + eps);
    ms[r] = mu;
    rs[r] = inv;
    for (let j = 0; j < h; j++) ys[o + j] = (xs[o + j] - mu) * inv * gs[po + j] + bs[po + j];
  }
}

/** dx = rstd (g - mean(g) - xhat mean(g xhat)), g = dy gamma, xhat = (x - mean) rstd. */
export function layerNormGradXInto(
  dys: Float32Array,
  xs: Float32Array,
  gs: Float32Array,
  ms: Float32Array,
  rs: Float32Array,
  dxs: Float32Array,
  { rows, h, per }: LnShape,
): void {
  for (let r = 0; r < rows; r++) {
    const o = r * h, po = Math.floor(r / per) * h;
    const mu = ms[r], inv = rs[r];
    let sg = 0, sgx = 0;
    for (let j = 0; j < h; j++) {
      const g = dys[o + j] * gs[po + j];
      sg += g;
      sgx += g * (xs[o + j] - mu) * inv;
    }
    const a = sg / h, c = sgx / h;
    for (let j = 0; j < h; j++) {
      const xhat = (xs[o + j] - mu) * inv;
      dxs[o + j] = inv * (dys[o + j] * gs[po + j] - a - xhat * c);
    }
  }
}

/** LayerNorm of x into y, mean and rstd (allocated by the caller): the wasm module where it runs. */
export function layerNorm(io: Io, x: TI, gamma: TI, beta: TI, y: TI, mean: TI, rstd: TI, eps: number): void {
  const s = lnShape(x, gamma);
  const simd = io.simd();
  if (simd) {
    const a = io.address.bind(io);
    simd.layerNorm(a(x), a(y), a(mean), a(rstd), a(gamma), a(beta), s.rows, s.h, s.per, eps);
    return;
  }
  layerNormInto(io.data(x), io.data(y), io.data(gamma), io.data(beta), io.data(mean), io.data(rstd), s, eps);
}

/** The input gradient of a LayerNorm into dx (allocated by the caller): the wasm module where it runs. */
export function layerNormGradX(io: Io, dy: TI, x: TI, gamma: TI, mean: TI, rstd: TI, dx: TI): void {
  const s = lnShape(x, gamma);
  const simd = io.simd();
  if (simd) {
    const a = io.address.bind(io);
    simd.layerNormGradX(a(dy), a(x), a(gamma), a(mean), a(rstd), a(dx), s.rows, s.h, s.per);
    return;
  }
  layerNormGradXInto(io.data(dy), io.data(x), io.data(gamma), io.data(mean), io.data(rstd), io.data(dx), s);
}
