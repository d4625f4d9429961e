/**
 * No zero gradients for outputs that are only saved. The fused LayerNorm, GELU and dropout kernels
 * (lib/backend/fused_kernels.ts) return, beside their result, what their backward pass needs (row mean
 * and 1/std; GELU's derivative; the elements dropout kept) as extra outputs; nothing downstream uses those. tfjs's tape then hands
 * the gradient function a zero tensor for each of them: a fresh JavaScript array of the output's size,
 * copied onto the backend. For GELU that is a hidden x intermediate array (5 MB at BERT-tiny's 32 x 80)
 * made and copied twice a step: ~10% of a BERT-tiny LayerNorm step's time went to it. The fused gradients
 * read only the first output's gradient (lib/backend/fused_gradients.ts), so for these kernels the tape
 * node now passes the missing ones on as null.
 *
 * This wraps `Engine.addTapeNode` (tfjs-core 4.22, pinned in deno.json): the node it has just pushed gets
 * a gradient that skips the zero-filling when the first output has its gradient. Installed once, by
 * `installBackend` (lib/backend/install.ts).
 */
import type { tf } from "../tf.ts";

type Tfjs = typeof tf;
type Dys = (tf.Tensor | null)[];

interface TapeNode {
  kernelName: string;
  gradient?: (dys: Dys) => unknown;
}

/** The engine internals this touches, as tfjs-core 4.22 has them. */
interface TapeEngine {
  addTapeNode(
    kernelName: string,
    inputs: unknown,
    outputs: unknown,
    gradientsFunc: unknown,
    saved: tf.Tensor[],
    attrs: tf.NamedAttrMap,
  ): void;
  /** activeTape: the tape being recorded (set while a gradient is taken). */
  state: { activeTape: TapeNode[] };
}

const patched = new WeakSet<object>();

/**
 * Makes the tape pass null, not zeros, as the gradient of the unused outputs of `kernelNames` (kernels
 * whose registered gradient reads only the first output's). Idempotent per engine.
 */
export function skipUnusedOutputZeros(tf: Tfjs, kernelNames: readonly string[]): void {
  const engine = tf.engine() as unknown as TapeEngine;
  if (patched.has(engine)) return;
  if (typeof engine.addTapeNode !== "function" || typeof engine.state !== "object") {
    throw new Error("skipUnusedOutputZeros: tfjs-core's engine is not the 4.22 layout this was written for");
  }
  patched.add(engine);
  const names = new Set(kernelNames);
  const add = engine.addTapeNode;
  engine.addTapeNode = function (kernelName, inputs, outputs, gradientsFunc, saved, attrs) {
    add.call(this, kernelName, inputs, outputs, gradientsFunc, saved, attrs);
    if (!names.has(kernelName)) return; // every other kernel: nothing more on this hot path
    const config = tf.getGradient(kernelName);
    const tape = this.state.activeTape;
    const node = tape[tape.length - 1];
    const zeroFilling = node?.gradient;
    if (!config || !zeroFilling || node.kernelName !== kernelName) return;
    // Without the first output's gradient the registered function could not run: the stock path then.
    node.gradient = (dys) =>
      dys[0] == null ? zeroFilling(dys) : config.gradFunc(dys as tf.Tensor[], saved, attrs);
  };
}
