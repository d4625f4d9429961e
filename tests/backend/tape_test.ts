import assert from "node:assert/strict";
import { geluFast, layerNormFast } from "../../lib/bert/fused_ops.ts";
import { initBackend, tf } from "../../lib/tf.ts";

/** Runs `f`, recording the size of every tensor the engine makes from JavaScript values that are all zero. */
function zeroTensorsMade(f: () => void): number[] {
  // deno-lint-ignore no-explicit-any
  const engine = tf.engine() as any;
  const make = engine.makeTensor;
  const sizes: number[] = [];
  engine.makeTensor = function (values: ArrayLike<number>, ...rest: unknown[]) {
    if (values && values.length > 1 && Array.prototype.every.call(values, (v: number) => v === 0)) {
      sizes.push(values.length);
    }
    return make.call(this, values, ...rest);
  };
  try {
    f();
  } finally {
    engine.makeTensor = make;
  }
  return sizes;
}

Deno.test("the backward pass of GELU and LayerNorm makes no zero gradients for their saved-only outputs", async () => {
  for (const backend of ["wasm", "cpu"] as const) {
    await initBackend(backend);
    tf.tidy(() => {
      const x = tf.randomNormal([64, 48], 0, 1, "float32", 1);
      const gamma = tf.randomNormal([48], 1, 0.1, "float32", 2), beta = tf.zeros([48]);
      const dy = tf.randomNormal([64, 48], 0, 1, "float32", 3);
      const loss = (t: tf.Tensor) =>
        tf.sum(tf.mul(geluFast(layerNormFast(t, gamma, beta, 1e-12)), dy)) as tf.Scalar;
      let grad: tf.Tensor | undefined;
      // Without the tape change: a zero [64, 48] for GELU's derivative, two zero [64]s for LayerNorm's.
      assert.deepEqual(zeroTensorsMade(() => grad = tf.grad(loss)(x)), [], backend);
      // The gradient itself is what the stock tape computes (checked against finite differences of the loss).
      const eps = 1e-2, at = [5, 7];
      const bump = (s: number) => {
        const e = new Float32Array(64 * 48);
        e[at[0] * 48 + at[1]] = s;
        return tf.add(x, tf.tensor(e, [64, 48]));
      };
      const fd = (loss(bump(eps)).dataSync()[0] - loss(bump(-eps)).dataSync()[0]) / (2 * eps);
      const g = grad!.arraySync() as number[][];
      assert.ok(
        Math.abs(g[at[0]][at[1]] - fd) < 2e-2 * Math.max(1, Math.abs(fd)),
        `${backend}: ${g[at[0]][at[1]]} vs ${fd}`,
      );
    });
  }
});
