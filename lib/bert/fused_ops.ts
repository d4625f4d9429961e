/**
 * The ops that run the fused kernels (lib/backend/fused_kernels.ts, registered by `initBackend` on wasm
 * and cpu). lib/bert/ops.ts uses them where `fusedKernelsActive()`, else its op-by-op versions.
 *
 * ```ts
 * await initBackend("wasm");
 * const y = fusedKernelsActive() ? denseFast(x, w, b) : dense(x, w, b); // [rows, out]
 * ```
 */
import { FUSED } from "../backend/fused_kernels.ts";
import { tf } from "../tf.ts";

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
  return run(name, inputs, attrs) as unknown as tf.Tensor[];
}

/** True when the active backend has the fused kernels registered (else callers use plain tfjs ops). */
export function fusedKernelsActive(): boolean {
  return tf.getKernel(FUSED.dense, tf.getBackend()) !== undefined;
}

/** x [..., in] W^T + b, W [out, in], b [out] (optional). */
export function denseFast(x: tf.Tensor, w: tf.Tensor, b?: tf.Tensor): tf.Tensor {
  const inputs: Record<string, tf.Tensor> = { x, w };
  if (b) inputs.b = b;
  return run(FUSED.dense, inputs);
}

/** LayerNorm of x over its last axis; gamma/beta [h] or per example [batch, h] (x's rows in batch order). */
export function layerNormFast(x: tf.Tensor, gamma: tf.Tensor, beta: tf.Tensor, eps: number): tf.Tensor {
  return runMany(FUSED.layerNorm, { x, gamma, beta }, { eps })[0];
}

/** Exact (erf) GELU. */
export function geluFast(x: tf.Tensor): tf.Tensor {
  return runMany(FUSED.gelu, { x })[0];
}

/** Inverted dropout with tf.dropout's bits for `seed` (lib/backend/dropout.ts); rate in (0, 1). */
export function dropoutFast(x: tf.Tensor, rate: number, seed: string): tf.Tensor {
  return runMany(FUSED.dropout, { x }, { rate, seed })[0];
}

export interface HeadShape {
  batch: number;
  seq: number;
  heads: number;
}

/** scale Q K^T per head: q, k [batch*seq, heads*d] -> [batch, heads, seq, seq]. */
export function attentionScores(q: tf.Tensor, k: tf.Tensor, shape: HeadShape, scale: number): tf.Tensor4D {
  return run(FUSED.scores, { q, k }, { ...shape, scale }) as tf.Tensor4D;
}

/** P V per head: probs [batch, heads, seq, seq], v [batch*seq, heads*d] -> [batch*seq, heads*d]. */
export function attentionContext(probs: tf.Tensor, v: tf.Tensor, shape: HeadShape): tf.Tensor {
  return run(FUSED.context, { probs, v }, { ...shape });
}
