/**
 * The tensor operations BERT is built from (dense, embedding lookup, LayerNorm, exact GELU, attention,
 * dropout), written so that training is fast on the wasm backend, plus the gradient overrides that make
 * it so. Importing this module installs the overrides once, for every backend.
 *
 * Why overrides: on wasm, `matMul` is fast only as a plain 2-D product without transpose flags
 * (xnnpack); with `transposeA`/`transposeB` (what tfjs's own BatchMatMul gradient uses) it is 5-20x
 * slower, and batched 3-D products are slow too. So:
 * - BatchMatMul's gradient is replaced by explicit `tf.transpose` + plain products. It keeps one lazy
 *   thunk per input: tfjs calls only the thunks on the path to the requested variables, so frozen
 *   weights get no gradient computed at all (which `tf.customGrad` would not give us).
 * - GatherV2's gradient (axis 0) is a scatter-add in JS: wasm has no `UnsortedSegmentSum` kernel.
 * - wasm's SplitV kernel copies its whole input once per piece (readSync); it is replaced by one that
 *   reads the input in place, which makes per-(batch, head) attention products cheap.
 *
 * On wasm and cpu, dense, LayerNorm, GELU, attention's products and the embedding gradient run as
 * fused kernels with lazy per-input gradients (lib/bert/kernels.ts: ~20 kernels per encoder layer
 * instead of ~300, no transposes through tfjs, no copies of saved tensors); the op-by-op versions below
 * remain for other backends (tensorflow) and as references in the tests.
 *
 * Linear weights stay in PyTorch layout `[out, in]`. Element-wise parameters (biases, LayerNorm
 * gamma/beta) may carry a leading batch dimension (one copy per example): the gradient with respect to
 * such a copy is that example's own gradient, which Fisher scores need.
 */
import { tf } from "../tf.ts";
import { registerBasicGradients } from "./gradients.ts";
import {
  attentionContext,
  attentionScores,
  denseFast,
  geluFast,
  installKernels,
  kernelsActive,
  layerNormFast,
  scatterRowsFast,
} from "./kernels.ts";

type GradThunks = Record<string, () => tf.Tensor>;

/** Transposes the last two axes (explicitly, so that the following product is a plain one). */
function swapLast(x: tf.Tensor): tf.Tensor {
  if (x.rank === 2) return tf.transpose(x);
  const perm = [...Array(x.rank).keys()];
  perm[x.rank - 2] = x.rank - 1;
  perm[x.rank - 1] = x.rank - 2;
  return tf.transpose(x, perm);
}

/** y = op(a) op(b); every case becomes explicit transposes followed by a plain product. */
function batchMatMulGrad(
  dy: tf.Tensor | tf.Tensor[],
  saved: tf.Tensor[],
  attrs: tf.NamedAttrMap,
): GradThunks {
  const g = dy as tf.Tensor;
  const [a, b] = saved;
  const { transposeA, transposeB } = attrs as unknown as { transposeA: boolean; transposeB: boolean };
  const mm = (x: tf.Tensor, y: tf.Tensor) => tf.matMul(x, y);
  if (!transposeA && !transposeB) {
    // y = a b: da = dy b^T, db = a^T dy
    return { a: () => mm(g, swapLast(b)), b: () => mm(swapLast(a), g) };
  }
  if (!transposeA && transposeB) {
    // y = a b^T: da = dy b, db = dy^T a
    return { a: () => mm(g, b), b: () => mm(swapLast(g), a) };
  }
  if (transposeA && !transposeB) {
    // y = a^T b: da = b dy^T, db = a dy
    return { a: () => mm(b, swapLast(g)), b: () => mm(a, g) };
  }
  // y = a^T b^T: da = b^T dy^T, db = dy^T a^T
  return { a: () => mm(swapLast(b), swapLast(g)), b: () => mm(swapLast(g), swapLast(a)) };
}

/** Sums rows of `dy` into the rows of the table that `indices` picked (the gradient of a lookup). */
export function scatterAddRows(dy: tf.Tensor, indices: tf.Tensor, tableShape: number[]): tf.Tensor {
  const rows = tableShape[0];
  const width = tableShape.slice(1).reduce((p, q) => p * q, 1);
  if (kernelsActive()) return scatterRowsFast(tf.reshape(dy, [indices.size, width]), indices, tableShape);
  const idx = indices.dataSync();
  const g = dy.dataSync() as Float32Array;
  const out = new Float32Array(rows * width);
  for (let i = 0; i < idx.length; i++) {
    const r = idx[i];
    if (r < 0 || r >= rows) continue; // gather itself rejects these; never write outside the table
    const src = i * width, dst = r * width;
    for (let j = 0; j < width; j++) out[dst + j] += g[src + j];
  }
  return tf.tensor(out, tableShape, "float32");
}

type GradFunc = tf.GradConfig["gradFunc"];

/** Gradient of gather along axis 0 (what embedding lookups use); other gathers are not differentiated. */
const gatherGrad: GradFunc = (dy, saved, attrs) => {
  const [x, indices] = saved;
  const { axis, batchDims } = attrs as unknown as { axis: number; batchDims: number };
  const parsedAxis = axis < 0 ? axis + x.rank : axis;
  if (parsedAxis !== 0 || batchDims !== 0) {
    throw new Error(
      `gradient of tf.gather is implemented only for axis 0 without batchDims (got axis ${axis}, ` +
        `batchDims ${batchDims}): transpose the gathered axis to the front first`,
    );
  }
  return {
    x: () => scatterAddRows(dy as tf.Tensor, indices, x.shape),
    indices: () => tf.zeros(indices.shape), // integer input: never on a gradient path
  };
};

// deno-lint-ignore no-explicit-any
type WasmBackendLike = any;

/**
 * SplitV for wasm that reads the input in place (the stock kernel copies the whole input once per
 * piece). Falls back to the stock kernel for strings.
 */
function fastSplitV(stock: tf.KernelFunc): tf.KernelFunc {
  return (args) => {
    const x = args.inputs.x as tf.TensorInfo;
    const backend = args.backend as WasmBackendLike;
    const { numOrSizeSplits, axis } = args.attrs as unknown as {
      numOrSizeSplits: number | number[];
      axis: number;
    };
    if (x.dtype === "string" || typeof backend.typedArrayFromHeap !== "function") return stock(args);
    const ax = tf.util.parseAxisParam(axis, x.shape)[0];
    const sizes = tf.backend_util.prepareSplitSize(
      x as unknown as tf.Tensor,
      numOrSizeSplits,
      ax,
    ) as number[];
    const outer = x.shape.slice(0, ax).reduce((p, q) => p * q, 1);
    const inner = x.shape.slice(ax + 1).reduce((p, q) => p * q, 1);
    const dim = x.shape[ax];
    // Allocate every output first: an allocation may grow the heap, which invalidates earlier views.
    const outs: tf.TensorInfo[] = sizes.map((s) => {
      const shape = x.shape.slice();
      shape[ax] = s;
      return backend.makeOutput(shape, x.dtype);
    });
    const xv = backend.typedArrayFromHeap(x);
    let begin = 0;
    outs.forEach((out, k) => {
      const s = sizes[k];
      const ov = backend.typedArrayFromHeap(out);
      const chunk = s * inner;
      for (let o = 0; o < outer; o++) {
        const src = (o * dim + begin) * inner;
        ov.set(xv.subarray(src, src + chunk), o * chunk);
      }
      begin += s;
    });
    return outs;
  };
}

const INSTALLED = Symbol.for("normtune.bert.ops.installed");

/** Installs the gradients (gradients.ts plus the two above) and the wasm SplitV kernel (idempotent; runs on import). */
export function installOverrides(): void {
  const g = globalThis as Record<symbol, unknown>;
  if (g[INSTALLED]) return;
  g[INSTALLED] = true;
  registerBasicGradients();
  installKernels();
  tf.registerGradient({ kernelName: "BatchMatMul", inputsToSave: ["a", "b"], gradFunc: batchMatMulGrad });
  tf.registerGradient({ kernelName: "GatherV2", inputsToSave: ["x", "indices"], gradFunc: gatherGrad });
  const split = tf.getKernel("SplitV", "wasm");
  if (split) {
    tf.unregisterKernel("SplitV", "wasm");
    tf.registerKernel({ ...split, kernelFunc: fastSplitV(split.kernelFunc) });
  }
}

installOverrides();

/**
 * Reshapes an element-wise parameter so that it broadcasts against `x`. A parameter of `paramRank`
 * dims broadcasts as is; one with an extra leading batch dim ([batch, ...param]) gets singleton axes
 * inserted after the batch axis, so example b of x meets copy b.
 */
function alignPerExample(p: tf.Tensor, x: tf.Tensor, paramRank: number): tf.Tensor {
  if (p.rank === paramRank) return p;
  if (p.rank !== paramRank + 1 || p.shape[0] !== x.shape[0]) {
    throw new Error(
      `per-example parameter of shape [${p.shape}] does not fit input [${x.shape}]: ` +
        `expected [${x.shape[0]}, ...${paramRank}-dim shape]`,
    );
  }
  const shape = [p.shape[0], ...Array(x.rank - 1 - paramRank).fill(1), ...p.shape.slice(1)];
  return tf.reshape(p, shape);
}

/**
 * x [..., in] times w^T (w in PyTorch layout [out, in]) plus b ([out] or per-example [batch, out]).
 * One plain 2-D product: the fast path on wasm.
 */
export function dense(x: tf.Tensor, w: tf.Tensor, b?: tf.Tensor): tf.Tensor {
  const [out, inp] = w.shape;
  if (x.shape[x.rank - 1] !== inp) {
    throw new Error(`dense: input [${x.shape}] does not match weight [${w.shape}] ([out, in])`);
  }
  if (kernelsActive()) {
    // One fused kernel (product + bias); a per-example bias is added separately.
    if (!b || b.rank === 1) return denseFast(x, w, b);
    const y = denseFast(x, w);
    return tf.add(y, alignPerExample(b, y, 1));
  }
  const x2 = x.rank === 2 ? x : tf.reshape(x, [-1, inp]); // [rows, in]
  let y: tf.Tensor = tf.matMul(x2, tf.transpose(w)); // [rows, out]
  if (x.rank !== 2) y = tf.reshape(y, [...x.shape.slice(0, -1), out]);
  return b ? tf.add(y, alignPerExample(b, y, 1)) : y;
}

/** The naive dense (matMul with transposeB): kept for the speed comparison in the tests and report. */
export function denseNaive(x: tf.Tensor, w: tf.Tensor, b?: tf.Tensor): tf.Tensor {
  const inp = w.shape[1] as number;
  const y = tf.matMul(tf.reshape(x, [-1, inp]), w, false, true);
  const r = tf.reshape(y, [...x.shape.slice(0, -1), w.shape[0]]);
  return b ? tf.add(r, b) : r;
}

/** Rows of `table` [rows, width] picked by integer `ids` (any shape) -> [...ids.shape, width]. */
export function embedding(table: tf.Tensor, ids: tf.Tensor): tf.Tensor {
  return tf.gather(table, ids);
}

/**
 * (x - mean) / sqrt(var + eps) over the last axis (biased variance, as PyTorch), with the closed-form
 * gradient dx = rstd * (g - mean(g) - xhat * mean(g * xhat)): cheaper on wasm than differentiating
 * through the two means, whose stock gradients broadcast through full-size constants.
 */
function normalizeLastAxis(x: tf.Tensor, eps: number): tf.Tensor {
  const f = tf.customGrad((input, saveArg) => {
    const xt = input as tf.Tensor;
    const save = saveArg as tf.GradSaveFunc;
    const xc = tf.sub(xt, tf.mean(xt, -1, true));
    const rstd = tf.rsqrt(tf.add(tf.mean(tf.square(xc), -1, true), eps)); // [..., 1]
    const xhat = tf.mul(xc, rstd);
    save([xhat, rstd]);
    return {
      value: xhat,
      gradFunc: (dy, saved) => {
        const [sx, sr] = saved;
        const g = dy as tf.Tensor;
        const inner = tf.add(tf.mean(g, -1, true), tf.mul(sx, tf.mean(tf.mul(g, sx), -1, true)));
        return tf.mul(tf.sub(g, inner), sr);
      },
    };
  });
  return f(x) as tf.Tensor;
}

/**
 * LayerNorm over the last axis: normalize(x) * gamma + beta, gamma and beta [h] or per-example
 * [batch, h]. The affine part uses the stock lazy gradients, so frozen gamma/beta cost nothing.
 */
export function layerNorm(x: tf.Tensor, gamma: tf.Tensor, beta: tf.Tensor, eps: number): tf.Tensor {
  if (kernelsActive()) {
    // One fused kernel each way (lib/bert/kernels.ts); alignPerExample only validates the shapes.
    alignPerExample(gamma, x, 1);
    alignPerExample(beta, x, 1);
    return layerNormFast(x, gamma, beta, eps);
  }
  const xhat = normalizeLastAxis(x, eps);
  return tf.add(tf.mul(xhat, alignPerExample(gamma, x, 1)), alignPerExample(beta, x, 1));
}

const INV_SQRT2 = Math.SQRT1_2;
const INV_SQRT_2PI = 1 / Math.sqrt(2 * Math.PI);

/**
 * Exact GELU, 0.5 x (1 + erf(x / sqrt 2)), with a hand-written gradient Phi(x) + x phi(x). On wasm and
 * cpu one fused kernel that saves the derivative in the forward pass (lib/bert/kernels.ts); elsewhere a
 * customGrad (its only input is an activation, which always needs its gradient).
 */
export function gelu(x: tf.Tensor): tf.Tensor {
  return kernelsActive() ? geluFast(x) : geluOps(x);
}

const geluOps: (x: tf.Tensor) => tf.Tensor = tf.customGrad((x, saveArg) => {
  const xt = x as tf.Tensor;
  const save = saveArg as tf.GradSaveFunc;
  const cdf = tf.mul(tf.add(tf.erf(tf.mul(xt, INV_SQRT2)), 1), 0.5); // Phi(x)
  save([xt, cdf]);
  return {
    value: tf.mul(xt, cdf),
    gradFunc: (dy, saved) => {
      const [sx, scdf] = saved;
      const pdf = tf.mul(tf.exp(tf.mul(tf.square(sx), -0.5)), INV_SQRT_2PI); // phi(x)
      return tf.mul(dy, tf.add(scdf, tf.mul(sx, pdf)));
    },
  };
}) as (x: tf.Tensor) => tf.Tensor;

/** Inverted dropout, deterministic for a given seed (backend-independent: the noise is drawn in JS). */
export function dropout(x: tf.Tensor, rate: number, seed: string): tf.Tensor {
  return rate > 0 ? tf.dropout(x, rate, undefined, seed) : x;
}

/** The additive attention mask: 0 where a key is real, MASK_VALUE where it is padding. */
export const MASK_VALUE = -10000;

/** mask [batch, seq] of 0/1 -> additive [batch, 1, 1, seq] (padded keys get ~0 weight after softmax). */
export function additiveMask(mask: Int32Array, batch: number, seq: number): tf.Tensor4D {
  const add = new Float32Array(batch * seq);
  for (let i = 0; i < add.length; i++) add[i] = mask[i] ? 0 : MASK_VALUE;
  return tf.tensor4d(add, [batch, 1, 1, seq]);
}

export interface AttentionShape {
  batch: number;
  seq: number;
  heads: number;
}

/**
 * Multi-head scaled dot-product attention. q, k, v: [batch * seq, heads * d] (outputs of dense);
 * mask: additive [batch, 1, 1, seq]; `dropProbs` applies dropout to the probabilities (identity when
 * not training). Returns the context [batch * seq, heads * d].
 *
 * The products run as one plain 2-D product per (example, head), the fast path on wasm; the
 * element-wise parts (mask, softmax, dropout) run once on the whole [batch, heads, seq, seq] tensor.
 */
export function attention(
  q: tf.Tensor,
  k: tf.Tensor,
  v: tf.Tensor,
  mask: tf.Tensor,
  shape: AttentionShape,
  dropProbs: (p: tf.Tensor) => tf.Tensor = (p) => p,
): tf.Tensor {
  const { batch, seq, heads } = shape;
  const hidden = q.shape[q.rank - 1];
  const d = hidden / heads;
  if (kernelsActive()) {
    // Per-head products inside two fused kernels (views into head-major buffers, no split/concat).
    const scores = attentionScores(q, k, shape, 1 / Math.sqrt(d)); // [b, h, s, s]
    const probs = dropProbs(tf.softmax(tf.add(scores, mask)));
    return tf.reshape(attentionContext(probs, v, shape), [batch * seq, hidden]);
  }
  const n = batch * heads;
  const toHeads = (t: tf.Tensor) => tf.transpose(tf.reshape(t, [batch, seq, heads, d]), [0, 2, 1, 3]); // [b, h, s, d]
  const qs = tf.split(tf.reshape(toHeads(tf.mul(q, 1 / Math.sqrt(d))), [n * seq, d]), n, 0); // n x [s, d]
  const kts = tf.split(tf.reshape(tf.transpose(toHeads(k), [0, 1, 3, 2]), [n * d, seq]), n, 0); // n x [d, s]
  const vs = tf.split(tf.reshape(toHeads(v), [n * seq, d]), n, 0); // n x [s, d]
  const scores = tf.reshape(tf.concat(qs.map((qi, i) => tf.matMul(qi, kts[i])), 0), [batch, heads, seq, seq]);
  const probs = dropProbs(tf.softmax(tf.add(scores, mask))); // [b, h, s, s]
  const ps = tf.split(tf.reshape(probs, [n * seq, seq]), n, 0); // n x [s, s]
  const ctx = tf.reshape(tf.concat(ps.map((pi, i) => tf.matMul(pi, vs[i])), 0), [batch, heads, seq, d]);
  return tf.reshape(tf.transpose(ctx, [0, 2, 1, 3]), [batch * seq, hidden]); // [b * s, h * d]
}

/** The same attention with batched 3-D products (for comparison and as a reference in tests). */
export function attentionBatched(
  q: tf.Tensor,
  k: tf.Tensor,
  v: tf.Tensor,
  mask: tf.Tensor,
  shape: AttentionShape,
  dropProbs: (p: tf.Tensor) => tf.Tensor = (p) => p,
): tf.Tensor {
  const { batch, seq, heads } = shape;
  const hidden = q.shape[q.rank - 1];
  const d = hidden / heads;
  const toHeads = (t: tf.Tensor) => tf.transpose(tf.reshape(t, [batch, seq, heads, d]), [0, 2, 1, 3]);
  const scores = tf.matMul(toHeads(tf.mul(q, 1 / Math.sqrt(d))), tf.transpose(toHeads(k), [0, 1, 3, 2]));
  const probs = dropProbs(tf.softmax(tf.add(scores, mask)));
  const ctx = tf.matMul(probs, toHeads(v)); // [b, h, s, d]
  return tf.reshape(tf.transpose(ctx, [0, 2, 1, 3]), [batch * seq, hidden]);
}
