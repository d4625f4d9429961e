import assert from "node:assert/strict";
import { Io } from "../../lib/backend/kernel_io.ts";
import {
  layerNorm,
  layerNormGradX,
  layerNormGradXInto,
  layerNormInto,
  lnShape,
} from "../../lib/backend/layer_norm.ts";
import { layerNormFast } from "../../lib/bert/fused_ops.ts";
import { initBackend, tf } from "../../lib/tf.ts";
import { assertSameBits as sameBits, cancelling, mixedValues as values } from "./bits.ts";

const assertSameBits = (got: Float32Array, want: Float32Array, what: string) =>
  sameBits(got, want, what, "the JavaScript loop");

// Rows around the wasm loops' groups of 4 (forward) and 2 (gradient); widths of BERT-tiny and odd ones
// (not powers of two, where dividing by h and multiplying by 1 / h can differ);
// one gamma row for all rows, or one per example (groups).
const CASES: [rows: number, h: number, groups: number][] = [
  [1, 1, 1],
  [3, 5, 1],
  [5, 128, 1],
  [6, 128, 3],
  [7, 33, 7],
  [12, 65, 1],
  [16, 33, 2],
  [9, 3, 3],
  [64, 128, 1],
  [64, 128, 4],
  [1281, 128, 1],
];

Deno.test("LayerNorm on wasm: the JavaScript loops' bits, forward and input gradient", async () => {
  await initBackend("wasm");
  const io = new Io(tf.backend());
  assert.ok(io.simd(), "the wasm module does not run here");
  for (const [i, [rows, h, groups]] of CASES.entries()) {
    const what = `[${rows}, ${h}] x ${groups} gamma rows`;
    tf.tidy(() => {
      const gShape = groups === 1 ? [h] : [groups, h];
      // Odd cases: random values; even ones: rows whose sums tell the order of the adds.
      const x = tf.tensor(i % 2 ? values(rows * h, 10 + i, 4) : cancelling(rows, h), [rows, h]);
      const gamma = tf.tensor(values(groups * h, 20 + i), gShape),
        beta = tf.tensor(values(groups * h, 30 + i), gShape);
      const dy = tf.tensor(values(rows * h, 40 + i), [rows, h]);
      const s = lnShape(x, gamma);
      // The reference: the JavaScript loops on copies of the same values.
      const [ys, ms, rs, dxs] = [rows * h, rows, rows, rows * h].map((n) => new Float32Array(n));
      const xs = x.dataSync() as Float32Array, gs = gamma.dataSync() as Float32Array;
      layerNormInto(xs, ys, gs, beta.dataSync() as Float32Array, ms, rs, s, 1e-12);
      layerNormGradXInto(dy.dataSync() as Float32Array, xs, gs, ms, rs, dxs, s);
      const [y, mean, rstd, dx] = [[rows, h], [rows], [rows], [rows, h]].map((shape) => tf.zeros(shape));
      layerNorm(io, x, gamma, beta, y, mean, rstd, 1e-12);
      layerNormGradX(io, dy, x, gamma, mean, rstd, dx);
      assertSameBits(y.dataSync() as Float32Array, ys, `${what}: y`);
      assertSameBits(mean.dataSync() as Float32Array, ms, `${what}: mean`);
      assertSameBits(rstd.dataSync() as Float32Array, rs, `${what}: rstd`);
      assertSameBits(dx.dataSync() as Float32Array, dxs, `${what}: dx`);
    });
  }
});

Deno.test("NormtuneLayerNorm: the same bits on wasm and cpu, forward and every gradient", async () => {
  const run = async (backend: "wasm" | "cpu") => {
    await initBackend(backend);
    return tf.tidy(() => {
      const x = tf.tensor(values(96 * 128, 1, 4), [96, 128]);
      const gamma = tf.tensor(values(128, 2), [128]), beta = tf.tensor(values(128, 3), [128]);
      const dy = tf.tensor(values(96 * 128, 4), [96, 128]);
      const f = (a: tf.Tensor, g: tf.Tensor, b: tf.Tensor) =>
        tf.sum(tf.mul(layerNormFast(a, g, b, 1e-12), dy));
      const grads = tf.grads(f as (...t: tf.Tensor[]) => tf.Tensor)([x, gamma, beta]);
      return [layerNormFast(x, gamma, beta, 1e-12), ...grads].map((t) => t.dataSync() as Float32Array);
    });
  };
  const wasm = await run("wasm"), cpu = await run("cpu");
  ["y", "dx", "dgamma", "dbeta"].forEach((name, i) => assertSameBits(wasm[i], cpu[i], name));
});
