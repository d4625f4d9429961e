/**
 * Fused TensorFlow.js kernels for BERT training on the wasm and cpu backends, each with a gradient
 * registered as lazy per-input thunks (tfjs runs only the thunks on a path to a requested variable, so a
 * frozen weight costs no gradient work).
 *
 * Why: on wasm, tfjs's own graph for one encoder layer runs ~300 kernels, most of them copies: every
 * transpose is a naive strided loop (~0.3 GB/s), `matMul` with transpose flags or a batch dimension runs a
 * naive loop instead of XNNPACK, and the engine copies every tensor it saves for the backward pass
 * (the wasm `Identity` kernel copies). Here:
 * - dense layers are one XNNPACK product each way: forward x W^T (+ bias, fused), input gradient
 *   dy W (PyTorch's [out, in] layout is already the right operand), weight gradient dy^T x;
 * - attention's per-(example, head) products are XNNPACK products on views into the head-major
 *   buffers (no split/concat), with the head permutations done once in JavaScript;
 * - LayerNorm and GELU are one pass forward and one pass backward, saving what the backward needs
 *   (row mean and 1/std; GELU's derivative) instead of recomputing it;
 * - wasm `Identity` shares the input's buffer (reference counted, as the cpu backend does), so saving a
 *   tensor for the backward pass no longer copies it.
 *
 * The JavaScript parts work on the backend's own memory: on wasm a view of the heap (re-taken after any
 * call that may allocate, since growing the heap detaches earlier views), on cpu the stored array.
 *
 * ```ts
 * installKernels();
 * const y = denseFast(x, w, b); // [rows, out]
 * ```
 */
import { tf } from "../tf.ts";

type TI = tf.TensorInfo;
// deno-lint-ignore no-explicit-any
type AnyBackend = any;

const F32 = "float32";

function sizeOf(shape: readonly number[]): number {
  let n = 1;
  for (const d of shape) n *= d;
  return n;
}

// ---------------------------------------------------------------------------------------------------
// Backend access

interface WasmCalls {
  matMul: (...args: unknown[]) => void;
  fusedMatMul: (...args: unknown[]) => void;
}

const wasmCalls = new WeakMap<object, WasmCalls>();

/** The wasm heap's hard limit: wasm32 addresses 4 GiB (tfjs-wasm is built with that maximum). */
export const WASM_HEAP_LIMIT = 4 * 2 ** 30;

/** An allocation the wasm heap cannot hold. */
export class WasmHeapError extends Error {}

const guarded = new WeakSet<object>();

/**
 * Makes a failed wasm heap allocation an error that says what to do. Without it, tfjs-wasm's malloc
 * returns 0 when the heap cannot grow and the tensor is written over the start of the heap.
 * Idempotent; a no-op until the wasm backend has started.
 */
export function guardWasmHeap(): void {
  // Only the active backend: tf.findBackend would start an uninitialised one (and leave it pending).
  if (tf.getBackend() !== "wasm") return;
  const wasm = (tf.backend() as AnyBackend)?.wasm;
  if (!wasm || guarded.has(wasm)) return;
  guarded.add(wasm);
  const malloc = wasm._malloc.bind(wasm);
  wasm._malloc = (bytes: number) => {
    const ptr = malloc(bytes);
    if (ptr === 0 && bytes > 0) {
      const mib = (n: number) => `${Math.round(n / 2 ** 20)} MiB`;
      throw new WasmHeapError(
        `wasm heap exhausted: cannot allocate ${mib(bytes)} with the heap at ${
          mib(wasm.HEAPU8.length)
        } of its ` +
          `${
            mib(WASM_HEAP_LIMIT)
          } limit (wasm32). Use a smaller batch or micro-batches, a mode that trains fewer ` +
          `parameters (layernorm or bitfit keep no gradients or optimizer state for frozen weights), or the ` +
          `tensorflow backend.`,
      );
    }
    return ptr;
  };
}

/** Reads and allocates float32 data on the wasm or cpu backend, and runs plain products on it. */
class Io {
  readonly wasm: boolean;
  constructor(readonly backend: AnyBackend) {
    this.wasm = typeof backend.typedArrayFromHeap === "function";
    if (this.wasm && !guarded.has(backend.wasm)) guardWasmHeap();
  }

  /** The values of `t`: on wasm a heap view, valid until the next allocation on the heap. */
  data(t: TI): Float32Array {
    if (t.dtype !== F32) throw new Error(`normtune kernels: expected a float32 tensor, got ${t.dtype}`);
    if (this.wasm) return this.backend.typedArrayFromHeap(t);
    const v = this.backend.readSync(t.dataId);
    return v instanceof Float32Array ? v : Float32Array.from(v as ArrayLike<number>);
  }

  alloc(shape: number[]): TI {
    if (this.wasm) return this.backend.makeOutput(shape, F32);
    return this.backend.makeTensorInfo(shape, F32, new Float32Array(sizeOf(shape)));
  }

  free(t: TI): void {
    this.backend.disposeData(t.dataId);
  }

  private calls(): WasmCalls {
    const wasm = this.backend.wasm;
    let c = wasmCalls.get(wasm);
    if (!c) {
      const n = "number", a = "array";
      c = {
        matMul: wasm.cwrap("BatchMatMul", null, [n, a, n, n, a, n, n, n, n]),
        fusedMatMul: wasm.cwrap("_FusedMatMul", null, [n, a, n, n, a, n, n, n, n, n, n, n, n]),
      };
      wasmCalls.set(wasm, c);
    }
    return c;
  }

  /** A tensor registered over `len` floats of `t` from element `off` (no copy; release with `unview`). */
  private view(t: TI, off: number, len: number): { info: TI; id: number } {
    const base = this.backend.dataIdMap.get(t.dataId).memoryOffset as number;
    const info = this.backend.makeOutput([len], F32, base + 4 * off) as TI;
    return { info, id: this.backend.dataIdMap.get(info.dataId).id };
  }

  private unview(v: { info: TI; id: number }): void {
    // Not disposeData: that would free() memory the view does not own.
    this.backend.wasm.tfjs.disposeData(v.id);
    this.backend.dataIdMap.delete(v.info.dataId);
  }

  /**
   * C[m, n] = A[m, k] B[k, n] (+ bias[n]), each operand row-major and contiguous from its element
   * offset. On wasm one XNNPACK product; B and the bias are fresh views, so XNNPACK's per-weight
   * operator cache is dropped right after (no packed copies accumulate: caching the packing of frozen
   * weights saved under 7% of a bert-base step for 1 GB more heap).
   */
  gemm(
    a: TI,
    aOff: number,
    b: TI,
    bOff: number,
    c: TI,
    cOff: number,
    m: number,
    k: number,
    n: number,
    bias?: TI,
  ): void {
    if (!this.wasm) {
      return gemmJs(
        this.data(a),
        aOff,
        this.data(b),
        bOff,
        this.data(c),
        cOff,
        m,
        k,
        n,
        bias && this.data(bias),
      );
    }
    const calls = this.calls();
    const av = this.view(a, aOff, m * k), bv = this.view(b, bOff, k * n), cv = this.view(c, cOff, m * n);
    const aShape = new Uint8Array(new Int32Array([1, m, k]).buffer);
    const bShape = new Uint8Array(new Int32Array([1, k, n]).buffer);
    if (bias) {
      const biasView = this.view(bias, 0, n);
      calls.fusedMatMul(av.id, aShape, 3, bv.id, bShape, 3, 0, 0, 0, /* linear */ biasView.id, 0, 0, cv.id);
      this.unview(biasView);
    } else {
      calls.matMul(av.id, aShape, 3, bv.id, bShape, 3, 0, 0, cv.id);
    }
    this.unview(av);
    this.unview(bv);
    this.unview(cv);
  }
}

/** The cpu backend's product: a plain loop (the cpu backend's own matMul is JavaScript too). */
function gemmJs(
  a: Float32Array,
  aOff: number,
  b: Float32Array,
  bOff: number,
  c: Float32Array,
  cOff: number,
  m: number,
  k: number,
  n: number,
  bias?: Float32Array,
): void {
  for (let i = 0; i < m; i++) {
    const ci = cOff + i * n;
    if (bias) { for (let j = 0; j < n; j++) c[ci + j] = bias[j]; }
    else c.fill(0, ci, ci + n);
    for (let p = 0; p < k; p++) {
      const av = a[aOff + i * k + p];
      if (av === 0) continue;
      const bp = bOff + p * n;
      for (let j = 0; j < n; j++) c[ci + j] += av * b[bp + j];
    }
  }
}

// ---------------------------------------------------------------------------------------------------
// Copies

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
interface Heads {
  b: number;
  s: number;
  h: number;
  d: number;
}

/** [b, s, H, d] -> [b, H, s, d], times `scale`. */
function toHeads(src: Float32Array, dst: Float32Array, { b, s, h, d }: Heads, scale = 1): void {
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
function fromHeads(src: Float32Array, dst: Float32Array, { b, s, h, d }: Heads, scale = 1): void {
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
function toHeadsT(src: Float32Array, dst: Float32Array, { b, s, h, d }: Heads, scale = 1): void {
  for (let bi = 0; bi < b; bi++) {
    for (let hi = 0; hi < h; hi++) {
      transposeInto(src, (bi * s * h + hi) * d, h * d, dst, (bi * h + hi) * d * s, s, s, d, scale);
    }
  }
}

/** [b, H, d, s] -> [b, s, H, d], times `scale`. */
function fromHeadsT(src: Float32Array, dst: Float32Array, { b, s, h, d }: Heads, scale = 1): void {
  for (let bi = 0; bi < b; bi++) {
    for (let hi = 0; hi < h; hi++) {
      transposeInto(src, (bi * h + hi) * d * s, s, dst, (bi * s * h + hi) * d, h * d, d, s, scale);
    }
  }
}

// ---------------------------------------------------------------------------------------------------
// Kernels

type KernelArgs = { inputs: Record<string, TI>; backend: AnyBackend; attrs: Record<string, unknown> };
type Kernel = (args: KernelArgs) => TI | TI[];

const K = {
  dense: "NormtuneDense",
  denseGradX: "NormtuneDenseGradX",
  denseGradW: "NormtuneDenseGradW",
  colSum: "NormtuneColSum",
  scatterRows: "NormtuneScatterRows",
  layerNorm: "NormtuneLayerNorm",
  layerNormGradX: "NormtuneLayerNormGradX",
  layerNormGradGamma: "NormtuneLayerNormGradGamma",
  gelu: "NormtuneGelu",
  scores: "NormtuneAttnScores",
  scoresGradQ: "NormtuneAttnScoresGradQ",
  scoresGradK: "NormtuneAttnScoresGradK",
  context: "NormtuneAttnContext",
  contextGradP: "NormtuneAttnContextGradP",
  contextGradV: "NormtuneAttnContextGradV",
} as const;

/** Rows and width of a tensor seen as [rows, lastDim]. */
function rowsOf(t: TI): [number, number] {
  const w = t.shape[t.shape.length - 1];
  return [sizeOf(t.shape) / w, w];
}

// ---- dense: y = x W^T + b, W in PyTorch layout [out, in] ----

const dense: Kernel = ({ inputs: { x, w, b }, backend }) => {
  const io = new Io(backend);
  const [rows, inp] = rowsOf(x);
  const out = w.shape[0];
  const y = io.alloc([...x.shape.slice(0, -1), out]);
  const wt = io.alloc([inp, out]);
  transposeInto(io.data(w), 0, inp, io.data(wt), 0, out, out, inp);
  io.gemm(x, 0, wt, 0, y, 0, rows, inp, out, b); // bias fused
  io.free(wt);
  return y;
};

/** dx = dy W: [rows, out] x [out, in]. */
const denseGradX: Kernel = ({ inputs: { dy, w }, backend, attrs }) => {
  const io = new Io(backend);
  const [rows, out] = rowsOf(dy);
  const inp = w.shape[1];
  const dx = io.alloc(attrs.shape as number[]);
  io.gemm(dy, 0, w, 0, dx, 0, rows, out, inp);
  return dx;
};

/**
 * dW = dy^T x ([out, rows] x [rows, in]). The contraction runs over rows, so both operands are
 * [rows, .] activations: the wider one is transposed (in JavaScript, ~2 ns per element) into the
 * left operand, the narrower one becomes XNNPACK's packed right operand (packing a tall, wide operand
 * costs up to 30 ns per element). With x the wider one this computes dW^T = x^T dy and transposes the
 * small result back.
 */
const denseGradW: Kernel = ({ inputs: { dy, x }, backend }) => {
  const io = new Io(backend);
  const [rows, out] = rowsOf(dy);
  const inp = x.shape[x.shape.length - 1];
  const dw = io.alloc([out, inp]);
  if (out >= inp) {
    const dyT = io.alloc([out, rows]);
    transposeInto(io.data(dy), 0, out, io.data(dyT), 0, rows, rows, out);
    io.gemm(dyT, 0, x, 0, dw, 0, out, rows, inp);
    io.free(dyT);
  } else {
    const xT = io.alloc([inp, rows]), dwT = io.alloc([inp, out]);
    transposeInto(io.data(x), 0, inp, io.data(xT), 0, rows, rows, inp);
    io.gemm(xT, 0, dy, 0, dwT, 0, inp, rows, out);
    transposeInto(io.data(dwT), 0, out, io.data(dw), 0, inp, inp, out);
    io.free(xT);
    io.free(dwT);
  }
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
  const rows = shape[0], width = sizeOf(shape) / rows;
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

/**
 * Column sums of x [rows, w] per group of rows (`groups` equal groups, in order) -> `shape`
 * ([w] or [groups, w]): the gradient of a bias or LayerNorm beta, per example when groups = batch.
 */
const colSum: Kernel = ({ inputs: { x }, backend, attrs }) => {
  const io = new Io(backend);
  const [rows, w] = rowsOf(x);
  const groups = attrs.groups as number;
  const per = rows / groups;
  const out = io.alloc(attrs.shape as number[]);
  const src = io.data(x), dst = io.data(out);
  const acc = new Float64Array(w);
  for (let g = 0; g < groups; g++) {
    acc.fill(0);
    for (let r = g * per; r < (g + 1) * per; r++) {
      const o = r * w;
      for (let j = 0; j < w; j++) acc[j] += src[o + j];
    }
    for (let j = 0; j < w; j++) dst[g * w + j] = acc[j];
  }
  return out;
};

// ---- LayerNorm over the last axis; gamma/beta [h] or per group of rows [groups, h] ----

const layerNorm: Kernel = ({ inputs: { x, gamma, beta }, backend, attrs }) => {
  const io = new Io(backend);
  const eps = attrs.eps as number;
  const [rows, h] = rowsOf(x);
  const groups = gamma.shape.length === 1 ? 1 : gamma.shape[0];
  const per = rows / groups;
  const y = io.alloc(x.shape.slice());
  const mean = io.alloc([rows]), rstd = io.alloc([rows]);
  const xs = io.data(x), ys = io.data(y), gs = io.data(gamma), bs = io.data(beta);
  const ms = io.data(mean), rs = io.data(rstd);
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
  return [y, mean, rstd];
};

/** dx = rstd (g - mean(g) - xhat mean(g xhat)), g = dy gamma, xhat = (x - mean) rstd. */
const layerNormGradX: Kernel = ({ inputs: { dy, x, gamma, mean, rstd }, backend }) => {
  const io = new Io(backend);
  const [rows, h] = rowsOf(x);
  const groups = gamma.shape.length === 1 ? 1 : gamma.shape[0];
  const per = rows / groups;
  const dx = io.alloc(x.shape.slice());
  const dys = io.data(dy), xs = io.data(x), gs = io.data(gamma), ms = io.data(mean), rs = io.data(rstd);
  const dxs = io.data(dx);
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
  return dx;
};

/** dgamma = sum over rows (per group) of dy xhat -> `shape`. */
const layerNormGradGamma: Kernel = ({ inputs: { dy, x, mean, rstd }, backend, attrs }) => {
  const io = new Io(backend);
  const [rows, h] = rowsOf(x);
  const groups = attrs.groups as number;
  const per = rows / groups;
  const out = io.alloc(attrs.shape as number[]);
  const dys = io.data(dy), xs = io.data(x), ms = io.data(mean), rs = io.data(rstd), dst = io.data(out);
  const acc = new Float64Array(h);
  for (let g = 0; g < groups; g++) {
    acc.fill(0);
    for (let r = g * per; r < (g + 1) * per; r++) {
      const o = r * h, mu = ms[r], inv = rs[r];
      for (let j = 0; j < h; j++) acc[j] += dys[o + j] * (xs[o + j] - mu) * inv;
    }
    for (let j = 0; j < h; j++) dst[g * h + j] = acc[j];
  }
  return out;
};

// ---- exact GELU: y = x Phi(x); saves dy/dx = Phi(x) + x phi(x) for the backward pass ----

// Abramowitz & Stegun 7.1.26 (|error| <= 1.5e-7), as tfjs's cpu backend computes erf.
const ERF_P = 0.3275911,
  A1 = 0.254829592,
  A2 = -0.284496736,
  A3 = 1.421413741,
  A4 = -1.453152027,
  A5 = 1.061405429;
const INV_SQRT2 = Math.SQRT1_2, INV_SQRT_2PI = 1 / Math.sqrt(2 * Math.PI);

// exp(-t) for t in [0, 103]: a table at steps of 1/64 times a degree-4 Taylor term for the remainder
// (relative error < 1e-11). Math.exp costs ~10 ns in V8; this ~2 ns.
const EXP_STEPS = 64, EXP_MAX = 103;
const EXP_TABLE = Float64Array.from({ length: EXP_MAX * EXP_STEPS + 2 }, (_, j) => Math.exp(-j / EXP_STEPS));

/** GELU of `xs` into `ys` and its derivative into `ds`, branch-free in the sign of x. */
function geluInto(xs: Float32Array, ys: Float32Array, ds: Float32Array): void {
  for (let i = 0; i < xs.length; i++) {
    const v = xs[i];
    const z = Math.abs(v) * INV_SQRT2;
    const t = 1 / (1 + ERF_P * z);
    const zz = Math.min(z * z, EXP_MAX);
    const j = (zz * EXP_STEPS) | 0;
    const r = zz - j / EXP_STEPS;
    const e = EXP_TABLE[j] * (1 - r * (1 - r * (0.5 - r * (1 / 6 - r * (1 / 24))))); // exp(-x^2/2)
    const h = 0.5 * ((((A5 * t + A4) * t + A3) * t + A2) * t + A1) * t * e; // (1 - erf(|x|/sqrt2)) / 2
    const pos = +(v >= 0);
    const cdf = pos - (2 * pos - 1) * h; // Phi(x)
    ys[i] = v * cdf;
    ds[i] = cdf + v * e * INV_SQRT_2PI; // Phi(x) + x phi(x)
  }
}

const gelu: Kernel = ({ inputs: { x }, backend }) => {
  const io = new Io(backend);
  const y = io.alloc(x.shape.slice()), dydx = io.alloc(x.shape.slice());
  geluInto(io.data(x), io.data(y), io.data(dydx));
  return [y, dydx];
};

// ---- attention products, per (example, head), on [b*s, H*d] inputs ----

function headsOf(attrs: Record<string, unknown>, hd: number): Heads {
  const b = attrs.batch as number, s = attrs.seq as number, h = attrs.heads as number;
  return { b, s, h, d: hd / h };
}

/** scores [b, H, s, s] = scale Q K^T per head. */
const scores: Kernel = ({ inputs: { q, k }, backend, attrs }) => {
  const io = new Io(backend);
  const hs = headsOf(attrs, q.shape[q.shape.length - 1]);
  const { b, s, h, d } = hs, n = b * h;
  const out = io.alloc([b, h, s, s]);
  const qh = io.alloc([n * s * d]), kt = io.alloc([n * d * s]);
  toHeads(io.data(q), io.data(qh), hs, attrs.scale as number);
  toHeadsT(io.data(k), io.data(kt), hs);
  for (let i = 0; i < n; i++) io.gemm(qh, i * s * d, kt, i * d * s, out, i * s * s, s, d, s);
  io.free(qh);
  io.free(kt);
  return out;
};

/** dq = scale dS K per head. */
const scoresGradQ: Kernel = ({ inputs: { dy, k }, backend, attrs }) => {
  const io = new Io(backend);
  const hs = headsOf(attrs, k.shape[k.shape.length - 1]);
  const { b, s, h, d } = hs, n = b * h;
  const dq = io.alloc(k.shape.slice());
  const kh = io.alloc([n * s * d]), dqh = io.alloc([n * s * d]);
  toHeads(io.data(k), io.data(kh), hs);
  for (let i = 0; i < n; i++) io.gemm(dy, i * s * s, kh, i * s * d, dqh, i * s * d, s, s, d);
  fromHeads(io.data(dqh), io.data(dq), hs, attrs.scale as number);
  io.free(kh);
  io.free(dqh);
  return dq;
};

/** dk = scale dS^T Q per head, computed transposed: dK^T = scale Q^T dS. */
const scoresGradK: Kernel = ({ inputs: { dy, q }, backend, attrs }) => {
  const io = new Io(backend);
  const hs = headsOf(attrs, q.shape[q.shape.length - 1]);
  const { b, s, h, d } = hs, n = b * h;
  const dk = io.alloc(q.shape.slice());
  const qt = io.alloc([n * d * s]), dkt = io.alloc([n * d * s]);
  toHeadsT(io.data(q), io.data(qt), hs);
  for (let i = 0; i < n; i++) io.gemm(qt, i * d * s, dy, i * s * s, dkt, i * d * s, d, s, s);
  fromHeadsT(io.data(dkt), io.data(dk), hs, attrs.scale as number);
  io.free(qt);
  io.free(dkt);
  return dk;
};

/** context [b*s, H*d] = P V per head. */
const context: Kernel = ({ inputs: { probs, v }, backend, attrs }) => {
  const io = new Io(backend);
  const hs = headsOf(attrs, v.shape[v.shape.length - 1]);
  const { b, s, h, d } = hs, n = b * h;
  const out = io.alloc(v.shape.slice());
  const vh = io.alloc([n * s * d]), ch = io.alloc([n * s * d]);
  toHeads(io.data(v), io.data(vh), hs);
  for (let i = 0; i < n; i++) io.gemm(probs, i * s * s, vh, i * s * d, ch, i * s * d, s, s, d);
  fromHeads(io.data(ch), io.data(out), hs);
  io.free(vh);
  io.free(ch);
  return out;
};

/** dP = dC V^T per head. */
const contextGradP: Kernel = ({ inputs: { dy, v }, backend, attrs }) => {
  const io = new Io(backend);
  const hs = headsOf(attrs, v.shape[v.shape.length - 1]);
  const { b, s, h, d } = hs, n = b * h;
  const dp = io.alloc([b, h, s, s]);
  const dch = io.alloc([n * s * d]), vt = io.alloc([n * d * s]);
  toHeads(io.data(dy), io.data(dch), hs);
  toHeadsT(io.data(v), io.data(vt), hs);
  for (let i = 0; i < n; i++) io.gemm(dch, i * s * d, vt, i * d * s, dp, i * s * s, s, d, s);
  io.free(dch);
  io.free(vt);
  return dp;
};

/** dV = P^T dC per head, computed transposed: dV^T = dC^T P. */
const contextGradV: Kernel = ({ inputs: { dy, probs }, backend, attrs }) => {
  const io = new Io(backend);
  const hs = headsOf(attrs, dy.shape[dy.shape.length - 1]);
  const { b, s, h, d } = hs, n = b * h;
  const dv = io.alloc(dy.shape.slice());
  const dct = io.alloc([n * d * s]), dvt = io.alloc([n * d * s]);
  toHeadsT(io.data(dy), io.data(dct), hs);
  for (let i = 0; i < n; i++) io.gemm(dct, i * d * s, probs, i * s * s, dvt, i * d * s, d, s, s);
  fromHeadsT(io.data(dvt), io.data(dv), hs);
  io.free(dct);
  io.free(dvt);
  return dv;
};

/**
 * wasm GatherV2 along axis 0 of a float32 table (embedding lookups) as one row copy per index; the stock
 * kernel computes every element's source index separately (~30 ns per element). Anything else goes to
 * the stock kernel.
 */
function rowGather(stock: tf.KernelFunc): Kernel {
  return (args) => {
    const { x, indices } = args.inputs;
    const { axis, batchDims } = args.attrs as { axis: number; batchDims: number };
    const ax = axis < 0 ? axis + x.shape.length : axis;
    if (x.dtype !== F32 || indices.dtype !== "int32" || ax !== 0 || batchDims !== 0) {
      return stock(args as unknown as Parameters<tf.KernelFunc>[0]) as TI;
    }
    const backend = args.backend;
    const rows = x.shape[0], width = sizeOf(x.shape) / rows;
    const out = backend.makeOutput([...indices.shape, ...x.shape.slice(1)], F32) as TI;
    const table = backend.typedArrayFromHeap(x) as Float32Array;
    const ids = backend.typedArrayFromHeap(indices) as Int32Array;
    const dst = backend.typedArrayFromHeap(out) as Float32Array;
    for (let i = 0; i < ids.length; i++) {
      const r = ids[i];
      if (r < 0 || r >= rows) {
        backend.disposeData(out.dataId);
        throw new Error(`gather: index ${r} at position ${i} is outside the table's ${rows} rows`);
      }
      dst.set(table.subarray(r * width, (r + 1) * width), i * width);
    }
    return out;
  };
}

/** wasm Identity that shares the buffer (reference counted) instead of copying it. */
const sharedIdentity: Kernel = ({ inputs: { x }, backend }) => {
  backend.incRef(x.dataId);
  return { dataId: x.dataId, shape: x.shape.slice(), dtype: x.dtype };
};

// ---------------------------------------------------------------------------------------------------
// Registration and gradients

const KERNELS: [string, Kernel][] = [
  [K.dense, dense],
  [K.denseGradX, denseGradX],
  [K.denseGradW, denseGradW],
  [K.colSum, colSum],
  [K.scatterRows, scatterRows],
  [K.layerNorm, layerNorm],
  [K.layerNormGradX, layerNormGradX],
  [K.layerNormGradGamma, layerNormGradGamma],
  [K.gelu, gelu],
  [K.scores, scores],
  [K.scoresGradQ, scoresGradQ],
  [K.scoresGradK, scoresGradK],
  [K.context, context],
  [K.contextGradP, contextGradP],
  [K.contextGradV, contextGradV],
];

/** The backends the kernels run on (their data lives in JavaScript-visible memory). */
export const KERNEL_BACKENDS = ["wasm", "cpu"] as const;

function run(
  name: string,
  inputs: Record<string, tf.Tensor>,
  attrs: Record<string, unknown> = {},
): tf.Tensor {
  return tf.engine().runKernel(name, inputs as tf.NamedTensorMap, attrs as tf.NamedAttrMap) as tf.Tensor;
}

function runMany(
  name: string,
  inputs: Record<string, tf.Tensor>,
  attrs: Record<string, unknown> = {},
): tf.Tensor[] {
  return tf.engine().runKernel(
    name,
    inputs as tf.NamedTensorMap,
    attrs as tf.NamedAttrMap,
  ) as unknown as tf.Tensor[];
}

type Thunks = Record<string, () => tf.Tensor>;
type GradFn = (dy: tf.Tensor | tf.Tensor[], saved: tf.Tensor[], attrs: tf.NamedAttrMap) => Thunks;
const first = (dy: tf.Tensor | tf.Tensor[]) => Array.isArray(dy) ? dy[0] : dy;

const GRADIENTS: [tf.GradConfig, GradFn][] = [
  [{ kernelName: K.dense, inputsToSave: ["x", "w"] } as tf.GradConfig, (dyIn, [x, w]) => {
    const dy = first(dyIn);
    return {
      x: () => run(K.denseGradX, { dy, w }, { shape: x.shape }),
      w: () => run(K.denseGradW, { dy, x }),
      b: () => run(K.colSum, { x: dy }, { groups: 1, shape: [dy.shape[dy.rank - 1]] }),
    };
  }],
  [
    {
      kernelName: K.layerNorm,
      inputsToSave: ["x", "gamma"],
      outputsToSave: [false, true, true],
    } as tf.GradConfig,
    (
      dyIn,
      [x, gamma, mean, rstd],
    ) => {
      const dy = first(dyIn);
      const groups = gamma.rank === 1 ? 1 : gamma.shape[0];
      return {
        x: () => run(K.layerNormGradX, { dy, x, gamma, mean, rstd }),
        gamma: () => run(K.layerNormGradGamma, { dy, x, mean, rstd }, { groups, shape: gamma.shape }),
        beta: () => run(K.colSum, { x: dy }, { groups, shape: gamma.shape }),
      };
    },
  ],
  [{ kernelName: K.gelu, outputsToSave: [false, true] } as tf.GradConfig, (dyIn, [dydx]) => {
    const dy = first(dyIn);
    return { x: () => tf.mul(dy, dydx) };
  }],
  [{ kernelName: K.scores, inputsToSave: ["q", "k"] } as tf.GradConfig, (dyIn, [q, k], attrs) => {
    const dy = first(dyIn);
    return {
      q: () => run(K.scoresGradQ, { dy, k }, attrs),
      k: () => run(K.scoresGradK, { dy, q }, attrs),
    };
  }],
  [{ kernelName: K.context, inputsToSave: ["probs", "v"] } as tf.GradConfig, (dyIn, [probs, v], attrs) => {
    const dy = first(dyIn);
    return {
      probs: () => run(K.contextGradP, { dy, v }, attrs),
      v: () => run(K.contextGradV, { dy, probs }, attrs),
    };
  }],
];

const INSTALLED = Symbol.for("normtune.bert.kernels.installed");

/** Registers the kernels (wasm and cpu), their gradients and the sharing wasm Identity (idempotent). */
export function installKernels(): void {
  const g = globalThis as Record<symbol, unknown>;
  if (g[INSTALLED]) return;
  g[INSTALLED] = true;
  for (const backendName of KERNEL_BACKENDS) {
    for (const [kernelName, kernelFunc] of KERNELS) {
      tf.registerKernel({ kernelName, backendName, kernelFunc: kernelFunc as unknown as tf.KernelFunc });
    }
  }
  for (const [config, gradFunc] of GRADIENTS) {
    tf.registerGradient({ ...config, gradFunc: gradFunc as tf.GradConfig["gradFunc"] });
  }
  const gather = tf.getKernel("GatherV2", "wasm");
  if (gather) {
    tf.unregisterKernel("GatherV2", "wasm");
    tf.registerKernel({ ...gather, kernelFunc: rowGather(gather.kernelFunc) as unknown as tf.KernelFunc });
  }
  if (tf.getKernel("Identity", "wasm")) {
    tf.unregisterKernel("Identity", "wasm");
    tf.registerKernel({
      kernelName: "Identity",
      backendName: "wasm",
      kernelFunc: sharedIdentity as unknown as tf.KernelFunc,
    });
  }
}

/** True when the active backend runs these kernels (else callers use plain tfjs ops). */
export function kernelsActive(): boolean {
  return (KERNEL_BACKENDS as readonly string[]).includes(tf.getBackend());
}

// ---------------------------------------------------------------------------------------------------
// Ops

/** x [..., in] W^T + b, W [out, in], b [out] (optional). */
export function denseFast(x: tf.Tensor, w: tf.Tensor, b?: tf.Tensor): tf.Tensor {
  const inputs: Record<string, tf.Tensor> = { x, w };
  if (b) inputs.b = b;
  return run(K.dense, inputs);
}

/** LayerNorm of x over its last axis; gamma/beta [h] or per example [batch, h] (x's rows in batch order). */
export function layerNormFast(x: tf.Tensor, gamma: tf.Tensor, beta: tf.Tensor, eps: number): tf.Tensor {
  return runMany(K.layerNorm, { x, gamma, beta }, { eps })[0];
}

/** dy [n, width] scattered (added) into a zeroed [rows, width] table at int32 `indices` (n of them). */
export function scatterRowsFast(dy: tf.Tensor, indices: tf.Tensor, tableShape: number[]): tf.Tensor {
  return run(K.scatterRows, { dy, indices }, { shape: tableShape });
}

/** Exact (erf) GELU. */
export function geluFast(x: tf.Tensor): tf.Tensor {
  return runMany(K.gelu, { x })[0];
}

export interface HeadShape {
  batch: number;
  seq: number;
  heads: number;
}

/** scale Q K^T per head: q, k [batch*seq, heads*d] -> [batch, heads, seq, seq]. */
export function attentionScores(q: tf.Tensor, k: tf.Tensor, shape: HeadShape, scale: number): tf.Tensor4D {
  return run(K.scores, { q, k }, { ...shape, scale }) as tf.Tensor4D;
}

/** P V per head: probs [batch, heads, seq, seq], v [batch*seq, heads*d] -> [batch*seq, heads*d]. */
export function attentionContext(probs: tf.Tensor, v: tf.Tensor, shape: HeadShape): tf.Tensor {
  return run(K.context, { probs, v }, { ...shape });
}
