/**
 * Fused TensorFlow.js kernels for BERT training on the wasm and cpu backends: dense, LayerNorm, exact
 * GELU, dropout, attention's per-head products and the embedding gradient, each way; a broadcast add's
 * gradient (float32 column sums); and the optimizer's AdamW update, non-finite check and the clipping norm's
 * sums of squares (lib/backend/optimizer_kernels.ts, no gradients). Their gradients are in
 * lib/backend/fused_gradients.ts, the ops that run them in lib/bert/fused_ops.ts; `installBackend`
 * (lib/backend/install.ts) registers them.
 *
 * Why: on wasm, tfjs's own graph for one encoder layer runs ~300 kernels, most of them copies: every
 * transpose is a naive strided loop (~0.3 GB/s), `matMul` with transpose flags or a batch dimension runs a
 * naive loop instead of XNNPACK, and the engine copies every tensor it saves for the backward pass
 * (the wasm `Identity` kernel copies). Here:
 * - every product is the project's relaxed-SIMD product (lib/backend/simd_gemm.ts; or OpenBLAS with
 *   `--gemm openblas`, lib/backend/gemm_choice.ts), which reads strided operands in place: dense layers
 *   forward x W^T (+ bias, fused), input gradient dy W, weight gradient dy^T x, with no transposed copies;
 *   attention per (example, head) straight from the token-order [b*s, H*d] tensors (no split/concat, no
 *   head permutations);
 * - LayerNorm and GELU are one pass forward and one pass backward, saving what the backward needs
 *   (row mean and 1/std; GELU's derivative) instead of recomputing it;
 * - dropout draws its noise and applies it in one pass, with tfjs's bits (lib/backend/dropout.ts), and
 *   saves which elements it kept, a byte each, for its gradient.
 *
 * Memory access and products: lib/backend/kernel_io.ts.
 */
import type { tf } from "../tf.ts";
import { elementCount } from "../util/shape.ts";
import { colSum as colSumRows, gammaGrad, sumRows } from "./col_sums.ts";
import { dropout as dropoutKernel, dropoutGrad as dropoutGradKernel } from "./dropout.ts";
import { gelu as geluKernel } from "./gelu.ts";
import { layerNorm as layerNormRows, layerNormGradX as layerNormGradXRows } from "./layer_norm.ts";
import { type AnyBackend, Io, type Mat, type Out, type TI } from "./kernel_io.ts";
import { adamwKernel, nonFiniteKernel, OPTIMIZER_KERNELS, sumSquaresKernel } from "./optimizer_kernels.ts";

type KernelArgs = { inputs: Record<string, TI>; backend: AnyBackend; attrs: Record<string, unknown> };
type Kernel = (args: KernelArgs) => TI | TI[];

/** The fused kernels' names (every one is registered for each backend that runs them). */
export const FUSED = {
  dense: "NormtuneDense",
  denseGradX: "NormtuneDenseGradX",
  denseGradW: "NormtuneDenseGradW",
  colSum: "NormtuneColSum",
  scatterRows: "NormtuneScatterRows",
  layerNorm: "NormtuneLayerNorm",
  layerNormGradX: "NormtuneLayerNormGradX",
  layerNormGradGamma: "NormtuneLayerNormGradGamma",
  gelu: "NormtuneGelu",
  dropout: "NormtuneDropout",
  dropoutGrad: "NormtuneDropoutGrad",
  sumRows: "NormtuneSumRows",
  scores: "NormtuneAttnScores",
  scoresGradQ: "NormtuneAttnScoresGradQ",
  scoresGradK: "NormtuneAttnScoresGradK",
  context: "NormtuneAttnContext",
  contextGradP: "NormtuneAttnContextGradP",
  contextGradV: "NormtuneAttnContextGradV",
  ...OPTIMIZER_KERNELS,
} as const;

/** Rows and width of a tensor seen as [rows, lastDim]. */
function rowsOf(t: TI): [number, number] {
  const w = t.shape[t.shape.length - 1];
  return [elementCount(t.shape) / w, w];
}

// ---- dense: y = x W^T + b, W in PyTorch layout [out, in] ----

/** A [rows, w] tensor (or the rows of a higher-rank one) as a row-major matrix, or its transpose. */
function whole(t: TI, transposed = false): Mat {
  const w = t.shape[t.shape.length - 1];
  return transposed ? { t, off: 0, rs: 1, cs: w } : { t, off: 0, rs: w, cs: 1 };
}

/** An output tensor as one row-major matrix from its first element. */
function into(t: TI): Out {
  return { t, off: 0, ld: t.shape[t.shape.length - 1] };
}

/** y = x W^T + b: W [out, in] read transposed in place, the bias added by the product. */
const dense: Kernel = ({ inputs: { x, w, b }, backend }) => {
  const io = new Io(backend);
  const [rows, inp] = rowsOf(x);
  const out = w.shape[0];
  const y = io.alloc([...x.shape.slice(0, -1), out]);
  io.product(whole(x), whole(w, true), into(y), rows, inp, out, 1, b);
  return y;
};

/** dx = dy W: [rows, out] x [out, in]. */
const denseGradX: Kernel = ({ inputs: { dy, w }, backend, attrs }) => {
  const io = new Io(backend);
  const [rows, out] = rowsOf(dy);
  const inp = w.shape[1];
  const dx = io.alloc(attrs.shape as number[]);
  io.product(whole(dy), whole(w), into(dx), rows, out, inp);
  return dx;
};

/** dW = dy^T x ([out, rows] x [rows, in]), dy read transposed in place. */
const denseGradW: Kernel = ({ inputs: { dy, x }, backend }) => {
  const io = new Io(backend);
  const [rows, out] = rowsOf(dy);
  const inp = x.shape[x.shape.length - 1];
  const dw = io.alloc([out, inp]);
  io.product(whole(dy, true), whole(x), into(dw), out, rows, inp);
  return dw;
};

/**
 * The gradient of a row lookup (embedding): rows of dy [n, width] added into a zeroed table
 * [rows, width] at `indices`. Allocated on the backend (on wasm the heap is reused step after step;
 * a fresh 16-100 MB JavaScript array every step costs page faults).
 */
const scatterRows: Kernel = ({ inputs: { dy, indices }, backend, attrs }) => {
  const io = new Io(backend);
  const shape = attrs.shape as number[];
  const rows = shape[0], width = elementCount(shape) / rows;
  const out = io.alloc(shape);
  const g = io.data(dy), dst = io.data(out);
  const idx =
    (io.wasm ? backend.typedArrayFromHeap(indices) : backend.readSync(indices.dataId)) as Int32Array;
  dst.fill(0);
  for (let i = 0; i < idx.length; i++) {
    const r = idx[i];
    if (r < 0 || r >= rows) continue; // gather itself rejects these; never write outside the table
    const src = i * width, at = r * width;
    for (let j = 0; j < width; j++) dst[at + j] += g[src + j];
  }
  return out;
};

/** Float32 column sums of x [rows, w] in row order -> [w], as tfjs-wasm's ones[1, rows] x x. */
const sumRowsKernel: Kernel = ({ inputs: { x }, backend }) => {
  const io = new Io(backend);
  const [rows, w] = rowsOf(x);
  const out = io.alloc([w]);
  sumRows(io, x, out, rows, w);
  return out;
};

/**
 * Column sums of x [rows, w] per group of rows (`groups` equal groups, in order) -> `shape`
 * ([w] or [groups, w]): the gradient of a bias or LayerNorm beta, per example when groups = batch.
 */
const colSum: Kernel = ({ inputs: { x }, backend, attrs }) => {
  const io = new Io(backend);
  const [rows, w] = rowsOf(x);
  const out = io.alloc(attrs.shape as number[]);
  colSumRows(io, x, out, rows, w, rows / (attrs.groups as number));
  return out;
};

// ---- LayerNorm over the last axis; gamma/beta [h] or per group of rows [groups, h] ----

const layerNorm: Kernel = ({ inputs: { x, gamma, beta }, backend, attrs }) => {
  const io = new Io(backend);
  const rows = rowsOf(x)[0];
  const y = io.alloc(x.shape.slice());
  const mean = io.alloc([rows]), rstd = io.alloc([rows]);
  layerNormRows(io, x, gamma, beta, y, mean, rstd, attrs.eps as number);
  return [y, mean, rstd];
};

/** dx = rstd (g - mean(g) - xhat mean(g xhat)), g = dy gamma, xhat = (x - mean) rstd. */
const layerNormGradX: Kernel = ({ inputs: { dy, x, gamma, mean, rstd }, backend }) => {
  const io = new Io(backend);
  const dx = io.alloc(x.shape.slice());
  layerNormGradXRows(io, dy, x, gamma, mean, rstd, dx);
  return dx;
};

/** dgamma = sum over rows (per group) of dy xhat -> `shape`. */
const layerNormGradGamma: Kernel = ({ inputs: { dy, x, mean, rstd }, backend, attrs }) => {
  const io = new Io(backend);
  const [rows, h] = rowsOf(x);
  const out = io.alloc(attrs.shape as number[]);
  gammaGrad(io, dy, x, mean, rstd, out, rows, h, rows / (attrs.groups as number));
  return out;
};

// ---- exact GELU: y = x Phi(x); saves dy/dx = Phi(x) + x phi(x) for the backward pass ----

/** GELU and its derivative (lib/backend/gelu.ts: the wasm module's loop on wasm, else JavaScript). */
const gelu: Kernel = ({ inputs: { x }, backend }) => {
  const io = new Io(backend);
  const y = io.alloc(x.shape.slice()), dydx = io.alloc(x.shape.slice());
  geluKernel(io, x, y, dydx);
  return [y, dydx];
};

// ---- dropout: tf.dropout's bits in one pass, and which elements it kept, for the gradient ----

const dropout: Kernel = ({ inputs: { x }, backend, attrs }) => {
  const io = new Io(backend);
  const y = io.alloc(x.shape.slice()), mask = io.alloc(x.shape.slice(), "bool");
  dropoutKernel(io, x, y, mask, attrs.rate as number, attrs.seed as string);
  return [y, mask];
};

/** dx = dy times the multiplier of the elements the forward kept (its mask). */
const dropoutGrad: Kernel = ({ inputs: { dy, mask }, backend, attrs }) => {
  const io = new Io(backend);
  if (mask.dtype !== "bool" || elementCount(mask.shape) !== elementCount(dy.shape)) {
    throw new Error(
      `${FUSED.dropoutGrad}: the mask is ${mask.dtype} [${mask.shape}], not bool [${dy.shape}]`,
    );
  }
  const dx = io.alloc(dy.shape.slice());
  dropoutGradKernel(io, dy, mask, dx, attrs.rate as number);
  return dx;
};

// ---- attention products, per (example, head), on [b*s, H*d] inputs ----

/**
 * The heads of one attention call. Head (e, h) of a token-order [b*s, H*d] tensor is its rows e*s.. and
 * columns h*d..: a strided matrix the product reads in place (no permutation copies); its scores and
 * probabilities are block e*H + h of [b, H, s, s].
 */
class HeadViews {
  readonly b: number;
  readonly s: number;
  readonly h: number;
  readonly d: number;
  constructor(attrs: Record<string, unknown>, hd: number) {
    this.b = attrs.batch as number;
    this.s = attrs.seq as number;
    this.h = attrs.heads as number;
    this.d = hd / this.h;
  }

  /** Calls `f` once per head with its index in [b, H] order. */
  each(f: (e: number, h: number, i: number) => void): void {
    for (let e = 0; e < this.b; e++) for (let h = 0; h < this.h; h++) f(e, h, e * this.h + h);
  }

  /** Head (e, h) of a token-order tensor: [s, d], or its transpose [d, s]. */
  tokens(t: TI, e: number, h: number, transposed = false): Mat {
    const off = e * this.s * this.h * this.d + h * this.d, ld = this.h * this.d;
    return transposed ? { t, off, rs: 1, cs: ld } : { t, off, rs: ld, cs: 1 };
  }

  /** Block i of a [b, H, s, s] tensor: [s, s], or its transpose. */
  block(t: TI, i: number, transposed = false): Mat {
    const s = this.s, off = i * s * s;
    return transposed ? { t, off, rs: 1, cs: s } : { t, off, rs: s, cs: 1 };
  }

  /** Head (e, h) of a token-order output. */
  tokensOut(t: TI, e: number, h: number): Out {
    return { t, off: e * this.s * this.h * this.d + h * this.d, ld: this.h * this.d };
  }

  /** Block i of a [b, H, s, s] output. */
  blockOut(t: TI, i: number): Out {
    return { t, off: i * this.s * this.s, ld: this.s };
  }
}

/**
 * One [m, k] x [k, n] product per head, times `alpha`, into `out` (returned): `operands` gives head
 * (e, h)'s A, B and C (i: its index in [b, H] order). The products share one working buffer.
 */
function perHead(
  io: Io,
  hv: HeadViews,
  out: TI,
  [m, k, n]: number[],
  alpha: number,
  operands: (out: TI, e: number, h: number, i: number) => [Mat, Mat, Out],
): TI {
  const scratch = io.productScratch(k, n);
  try {
    hv.each((e, h, i) => {
      const [a, b, c] = operands(out, e, h, i);
      io.product(a, b, c, m, k, n, alpha, undefined, scratch);
    });
  } finally {
    if (scratch) io.free(scratch);
  }
  return out;
}

/** scores [b, H, s, s] = scale Q K^T per head. */
const scores: Kernel = ({ inputs: { q, k }, backend, attrs }) => {
  const io = new Io(backend), hv = new HeadViews(attrs, q.shape[q.shape.length - 1]);
  const { b, s, h, d } = hv;
  return perHead(io, hv, io.alloc([b, h, s, s]), [s, d, s], attrs.scale as number, (out, e, hh, i) => [
    hv.tokens(q, e, hh),
    hv.tokens(k, e, hh, true),
    hv.blockOut(out, i),
  ]);
};

/** dq = scale dS K per head. */
const scoresGradQ: Kernel = ({ inputs: { dy, k }, backend, attrs }) => {
  const io = new Io(backend), hv = new HeadViews(attrs, k.shape[k.shape.length - 1]);
  const { s, d } = hv;
  return perHead(io, hv, io.alloc(k.shape.slice()), [s, s, d], attrs.scale as number, (dq, e, hh, i) => [
    hv.block(dy, i),
    hv.tokens(k, e, hh),
    hv.tokensOut(dq, e, hh),
  ]);
};

/** dk = scale dS^T Q per head. */
const scoresGradK: Kernel = ({ inputs: { dy, q }, backend, attrs }) => {
  const io = new Io(backend), hv = new HeadViews(attrs, q.shape[q.shape.length - 1]);
  const { s, d } = hv;
  return perHead(io, hv, io.alloc(q.shape.slice()), [s, s, d], attrs.scale as number, (dk, e, hh, i) => [
    hv.block(dy, i, true),
    hv.tokens(q, e, hh),
    hv.tokensOut(dk, e, hh),
  ]);
};

/** context [b*s, H*d] = P V per head. */
const context: Kernel = ({ inputs: { probs, v }, backend, attrs }) => {
  const io = new Io(backend), hv = new HeadViews(attrs, v.shape[v.shape.length - 1]);
  const { s, d } = hv;
  return perHead(io, hv, io.alloc(v.shape.slice()), [s, s, d], 1, (out, e, hh, i) => [
    hv.block(probs, i),
    hv.tokens(v, e, hh),
    hv.tokensOut(out, e, hh),
  ]);
};

/** dP = dC V^T per head. */
const contextGradP: Kernel = ({ inputs: { dy, v }, backend, attrs }) => {
  const io = new Io(backend), hv = new HeadViews(attrs, v.shape[v.shape.length - 1]);
  const { b, s, h, d } = hv;
  return perHead(io, hv, io.alloc([b, h, s, s]), [s, d, s], 1, (dp, e, hh, i) => [
    hv.tokens(dy, e, hh),
    hv.tokens(v, e, hh, true),
    hv.blockOut(dp, i),
  ]);
};

/** dV = P^T dC per head. */
const contextGradV: Kernel = ({ inputs: { dy, probs }, backend, attrs }) => {
  const io = new Io(backend), hv = new HeadViews(attrs, dy.shape[dy.shape.length - 1]);
  const { s, d } = hv;
  return perHead(io, hv, io.alloc(dy.shape.slice()), [s, s, d], 1, (dv, e, hh, i) => [
    hv.block(probs, i, true),
    hv.tokens(dy, e, hh),
    hv.tokensOut(dv, e, hh),
  ]);
};

const KERNELS: [string, Kernel][] = [
  [FUSED.dense, dense],
  [FUSED.denseGradX, denseGradX],
  [FUSED.denseGradW, denseGradW],
  [FUSED.colSum, colSum],
  [FUSED.scatterRows, scatterRows],
  [FUSED.layerNorm, layerNorm],
  [FUSED.layerNormGradX, layerNormGradX],
  [FUSED.layerNormGradGamma, layerNormGradGamma],
  [FUSED.gelu, gelu],
  [FUSED.dropout, dropout],
  [FUSED.dropoutGrad, dropoutGrad],
  [FUSED.sumRows, sumRowsKernel],
  [FUSED.scores, scores],
  [FUSED.scoresGradQ, scoresGradQ],
  [FUSED.scoresGradK, scoresGradK],
  [FUSED.context, context],
  [FUSED.contextGradP, contextGradP],
  [FUSED.contextGradV, contextGradV],
  [FUSED.adamw, adamwKernel],
  [FUSED.nonFinite, nonFiniteKernel],
  [FUSED.sumSquares, sumSquaresKernel],
];

/** The fused kernels as registrations for `backendName` (one whose tensors live in JavaScript-visible memory). */
export function fusedKernels(backendName: string): tf.KernelConfig[] {
  return KERNELS.map(([kernelName, kernelFunc]) => ({
    kernelName,
    backendName,
    kernelFunc: kernelFunc as unknown as tf.KernelFunc,
  }));
}
