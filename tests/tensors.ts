/**
 * Tensor helpers shared by the op, kernel and gradient tests: deterministic values, closeness checks
 * with a relative tolerance, and finite-difference gradients.
 */
import assert from "node:assert/strict";
import { tf } from "../lib/tf.ts";

/** Deterministic pseudo-random values in [-1, 1). */
export function values(n: number, seed: number): Float32Array {
  const out = new Float32Array(n);
  let s = seed >>> 0;
  for (let i = 0; i < n; i++) {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    out[i] = s / 2 ** 31 - 1;
  }
  return out;
}

/** A tensor of `values`. */
export function rand(shape: number[], seed: number): tf.Tensor {
  return tf.tensor(values(shape.reduce((a, b) => a * b, 1), seed), shape);
}

/** |got - want| <= tol (1 + |want|) elementwise; two tensors must also have the same shape. */
export function assertClose(
  got: tf.Tensor | ArrayLike<number>,
  want: tf.Tensor | ArrayLike<number>,
  tol: number,
  what: string,
) {
  if (got instanceof tf.Tensor && want instanceof tf.Tensor) {
    assert.deepEqual(got.shape, want.shape, `${what}: shape`);
  }
  const g = got instanceof tf.Tensor ? got.dataSync() : got;
  const w = want instanceof tf.Tensor ? want.dataSync() : want;
  assert.equal(g.length, w.length, `${what}: length`);
  for (let i = 0; i < w.length; i++) {
    const bound = tol * (1 + Math.abs(w[i]));
    assert.ok(Math.abs(g[i] - w[i]) <= bound, `${what}[${i}]: got ${g[i]}, want ${w[i]} (tol ${bound})`);
  }
}

/** Central finite differences of a scalar function of one tensor (float64 arithmetic on the outside). */
export function numericGrad(
  f: (x: tf.Tensor) => tf.Scalar,
  x: Float32Array,
  shape: number[],
  eps: number,
): Float64Array {
  const out = new Float64Array(x.length);
  for (let i = 0; i < x.length; i++) {
    const eval1 = (delta: number) =>
      tf.tidy(() => {
        const y = Float32Array.from(x);
        y[i] += delta;
        return f(tf.tensor(y, shape)).dataSync()[0];
      });
    out[i] = (eval1(eps) - eval1(-eps)) / (2 * eps);
  }
  return out;
}
