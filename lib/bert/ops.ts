/**
 * The tensor operations BERT is built from (dense, embedding lookup, LayerNorm, exact GELU, attention,
 * dropout), written so that training is fast on the wasm backend.
 *
 * On wasm and cpu, dense, LayerNorm, GELU and attention's products run as fused kernels with lazy
 * per-input gradients (lib/bert/fused_ops.ts, kernels in lib/backend/: ~20 kernels per encoder layer
 * instead of ~300, no transposes through tfjs, no copies of saved tensors); the op-by-op versions below
 * serve the other backends (tensorflow). The gradients they rely on (BatchMatMul with explicit
 * transposes, GatherV2 as a scatter-add) and the wasm kernel fixes are installed by `initBackend`
 * (lib/backend/install.ts): call it before using these.
 *
 * Linear weights stay in PyTorch layout `[out, in]`. Element-wise parameters (biases, LayerNorm
 * gamma/beta) may carry a leading batch dimension (one copy per example): the gradient with respect to
 * such a copy is that example's own gradient, which Fisher scores need.
 */
import { tf } from "../tf.ts";
import {
  attentionContext,
  attentionScores,
  denseFast,
  dropoutFast,
  fusedKernelsActive,
  geluFast,
  layerNormFast,
} from "./fused_ops.ts";

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
  if (fusedKernelsActive()) {
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
  if (fusedKernelsActive()) {
    // One fused kernel each way (lib/backend/fused_kernels.ts); alignPerExample only validates the shapes.
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
 * cpu one fused kernel that saves the derivative in the forward pass (lib/backend/fused_kernels.ts); elsewhere a
 * customGrad (its only input is an activation, which always needs its gradient).
 */
export function gelu(x: tf.Tensor): tf.Tensor {
  return fusedKernelsActive() ? geluFast(x) : geluOps(x);
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

/**
 * Inverted dropout, deterministic for a given seed (backend-independent: the noise is tfjs's alea stream).
 * On wasm and cpu one fused kernel with tf.dropout's bits (lib/backend/dropout.ts), else tf.dropout.
 */
export function dropout(x: tf.Tensor, rate: number, seed: string): tf.Tensor {
  if (!(rate > 0)) return x;
  return fusedKernelsActive() ? dropoutFast(x, rate, seed) : tf.dropout(x, rate, undefined, seed);
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
  if (fusedKernelsActive()) {
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
