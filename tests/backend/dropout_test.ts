import assert from "node:assert/strict";
import {
  aleaState,
  dropoutGradInto,
  dropoutInto,
  dropoutScale,
  keptFrom,
} from "../../lib/backend/dropout.ts";
import { Io } from "../../lib/backend/kernel_io.ts";
import { dropoutFast } from "../../lib/bert/fused_ops.ts";
import { initBackend, tf } from "../../lib/tf.ts";
import { assertSameBits as sameBits } from "./bits.ts";

const assertSameBits = (got: Float32Array, want: Float32Array, what: string) =>
  sameBits(got, want, what, "tf.dropout");

const RATES = [0.1, 0.5, 0.3, 0.01, 0.9];
// Sizes around the loops' ends, and BERT-tiny's hidden states and attention probabilities at 32 x 128.
const SHAPES = [[1], [7], [3, 333], [4096, 128], [32, 2, 128, 128]];

Deno.test("NormtuneDropout on wasm and cpu: tf.dropout's bits forward and backward", async () => {
  for (const backend of ["wasm", "cpu"] as const) {
    await initBackend(backend);
    if (backend === "wasm") assert.ok(new Io(tf.backend()).simd(), "the wasm module does not run here");
    for (const [i, shape] of SHAPES.entries()) {
      const rate = RATES[i % RATES.length];
      // The model's seeds look like "7:3" (step seed, dropout site); any string works.
      for (const seed of [`${i}:0`, `${i + 100}:17`, "x"]) {
        tf.tidy(() => {
          const x = tf.randomNormal(shape, 0, 1, "float32", i);
          const dy = tf.randomNormal(shape, 0, 1, "float32", i + 1);
          const what = `${backend} [${shape}] rate ${rate} seed "${seed}"`;
          const want = tf.dropout(x, rate, undefined, seed);
          assertSameBits(
            dropoutFast(x, rate, seed).dataSync() as Float32Array,
            want.dataSync() as Float32Array,
            what,
          );
          const loss = (f: (t: tf.Tensor) => tf.Tensor) => (t: tf.Tensor) =>
            tf.sum(tf.mul(f(t), dy)) as tf.Scalar;
          const gWant = tf.grad(loss((t) => tf.dropout(t, rate, undefined, seed)))(x);
          const gGot = tf.grad(loss((t) => dropoutFast(t, rate, seed)))(x);
          assertSameBits(
            gGot.dataSync() as Float32Array,
            gWant.dataSync() as Float32Array,
            `${what} gradient`,
          );
        });
      }
    }
  }
});

Deno.test("NormtuneDropout: the kept fraction and scale are the rate's, and the draws change with the seed", async () => {
  await initBackend("wasm");
  tf.tidy(() => {
    const x = tf.ones([100000]);
    const a = dropoutFast(x, 0.25, "a").dataSync(), b = dropoutFast(x, 0.25, "b").dataSync();
    const kept = a.filter((v) => v !== 0);
    assert.ok(Math.abs(kept.length / a.length - 0.75) < 0.01, `kept ${kept.length / a.length}`);
    assert.ok(kept.every((v) => v === Math.fround(1 / 0.75)));
    assert.ok(a.some((v, i) => v !== b[i]), "two seeds drew the same noise");
  });
});

Deno.test("dropoutInto is alea as seedrandom writes it: the JavaScript loop and tf.dropout agree", async () => {
  await initBackend("cpu");
  const xs = Float32Array.from({ length: 5000 }, (_, i) => Math.sin(i) * 3);
  const ys = new Float32Array(xs.length), kept = new Uint8Array(xs.length);
  dropoutInto(xs, ys, kept, aleaState("seed:5"), 0.2);
  const want = tf.tidy(() => tf.dropout(tf.tensor(xs), 0.2, undefined, "seed:5").dataSync() as Float32Array);
  assertSameBits(ys, want, "dropoutInto");
  const keptOnes = tf.tidy(() => tf.dropout(tf.ones([xs.length]), 0.2, undefined, "seed:5").dataSync());
  assert.deepEqual(
    [...kept],
    [...keptOnes].map((y) => +(y !== 0)),
    "the kept bytes are not the kept elements",
  );
  // The gradient from the kept bytes: tf.dropout's gradient, which multiplies by the multiplier again.
  const dys = Float32Array.from(xs, (x, i) => Math.cos(i) - x);
  const dxs = new Float32Array(xs.length);
  dropoutGradInto(dys, kept, dxs, 0.2);
  const wantGrad = tf.tidy(() => {
    const dy = tf.tensor(dys);
    const f = (t: tf.Tensor) => tf.sum(tf.mul(tf.dropout(t, 0.2, undefined, "seed:5"), dy)) as tf.Scalar;
    return tf.grad(f)(tf.tensor(xs)).dataSync() as Float32Array;
  });
  assertSameBits(dxs, wantGrad, "dropoutGradInto");
});

Deno.test("NormtuneDropout: a kept element whose input is 0 still passes its gradient on", async () => {
  for (const backend of ["wasm", "cpu"] as const) {
    await initBackend(backend);
    tf.tidy(() => {
      const x = tf.zeros([3, 37]), dy = tf.randomNormal([3, 37], 0, 1, "float32", 3);
      const loss = (f: (t: tf.Tensor) => tf.Tensor) => (t: tf.Tensor) =>
        tf.sum(tf.mul(f(t), dy)) as tf.Scalar;
      const got = tf.grad(loss((t) => dropoutFast(t, 0.3, "z")))(x).dataSync() as Float32Array;
      const want = tf.grad(loss((t) => tf.dropout(t, 0.3, undefined, "z")))(x).dataSync() as Float32Array;
      assertSameBits(got, want, `${backend} gradient at zeros`);
      assert.ok(got.some((v) => v !== 0), "no gradient passed");
    });
  }
});

Deno.test("keptFrom: the least kept alea integer, for rates across (0, 1)", () => {
  const kept = (k: number, keep: number) => Math.fround(Math.fround(k * 2 ** -32) + keep) >= 1;
  for (const rate of [1e-6, 0.01, 0.1, 0.2, 1 / 3, 0.5, 0.7, 0.9, 0.999999]) {
    const { keep } = dropoutScale(rate);
    const k = keptFrom(keep);
    assert.ok(kept(k, keep) && !kept(k - 1, keep), `rate ${rate}: ${k}`);
    // Monotonic: a sample on either side agrees.
    for (let j = 1; j < 2 ** 32; j *= 3) {
      assert.equal(kept(j, keep), j >= k, `rate ${rate}, k ${j}`);
    }
  }
});

Deno.test("dropout: a rate outside (0, 1) is refused with its value", () => {
  for (const rate of [0, 1, -0.1, 1.5, NaN]) {
    assert.throws(() => dropoutScale(rate), new RegExp(`dropout rate must be in \\(0, 1\\), got ${rate}`));
  }
});
