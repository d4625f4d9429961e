import assert from "node:assert/strict";
import {
  colSum,
  colSumInto,
  gammaGrad,
  gammaGradInto,
  sumRows,
  sumRowsF32Into,
} from "../../lib/backend/col_sums.ts";
import { Io } from "../../lib/backend/kernel_io.ts";
import { initBackend, tf } from "../../lib/tf.ts";
import { assertSameBits as sameBits, cancelling, mixedValues } from "./bits.ts";

const assertSameBits = (got: Float32Array, want: Float32Array, what: string) =>
  sameBits(got, want, what, "the JavaScript loop");
/** Values of mixed magnitudes, some 1e4 times the rest (sums of them round at every step). */
const values = (n: number, seed: number) => mixedValues(n, seed, 1).map((v, i) => i % 5 === 0 ? v * 1e4 : v);

// Rows around the wasm loop's groups of 4, odd widths (a scalar column at the end), groups of rows.
const CASES: [rows: number, w: number, groups: number][] = [
  [1, 1, 1],
  [3, 7, 1],
  [4, 2, 2],
  [9, 129, 1],
  [10, 5, 5],
  [12, 64, 3],
  [16, 9, 2],
  [24, 8, 1],
  [2560, 128, 1],
  [96, 512, 32],
];

Deno.test("column sums on wasm: the JavaScript loops' bits (bias and gamma gradients, with groups)", async () => {
  await initBackend("wasm");
  const io = new Io(tf.backend());
  assert.ok(io.simd(), "the wasm module does not run here");
  for (const [i, [rows, w, groups]] of CASES.entries()) {
    const per = rows / groups, what = `[${rows}, ${w}] in ${groups} groups`;
    tf.tidy(() => {
      // Odd cases: random values; even ones: sums that tell the order of the adds.
      const xs0 = i % 2 ? values(rows * w, 1 + i) : cancelling(rows, w);
      const x = tf.tensor(xs0, [rows, w]), dy = tf.tensor(i % 2 ? values(rows * w, 50 + i) : xs0, [rows, w]);
      const mean = tf.tensor(values(rows, 100 + i), [rows]),
        rstd = tf.abs(tf.tensor(values(rows, 200 + i), [rows]));
      const want = new Float32Array(groups * w), wantG = new Float32Array(groups * w);
      colSumInto(x.dataSync() as Float32Array, want, rows, w, per);
      const [dys, xs, ms, rs] = [dy, x, mean, rstd].map((t) => t.dataSync() as Float32Array);
      gammaGradInto(dys, xs, ms, rs, wantG, rows, w, per);
      const out = tf.zeros([groups, w]), outG = tf.zeros([groups, w]);
      colSum(io, x, out, rows, w, per);
      gammaGrad(io, dy, x, mean, rstd, outG, rows, w, per);
      assertSameBits(out.dataSync() as Float32Array, want, `${what}: column sums`);
      assertSameBits(outG.dataSync() as Float32Array, wantG, `${what}: gamma gradient`);
    });
  }
});

Deno.test("float32 column sums on wasm: tfjs-wasm's ones x g bits, module and JavaScript loop alike", async () => {
  await initBackend("wasm");
  const io = new Io(tf.backend());
  for (const [i, [rows, w]] of CASES.entries()) {
    tf.tidy(() => {
      const xs = i % 2 ? values(rows * w, 300 + i) : cancelling(rows, w);
      const x = tf.tensor(xs, [rows, w]);
      const want = tf.matMul(tf.ones([1, rows]), x).dataSync() as Float32Array;
      const out = tf.zeros([w]);
      sumRows(io, x, out, rows, w);
      assertSameBits(out.dataSync() as Float32Array, want, `[${rows}, ${w}] module`);
      const js = new Float32Array(w);
      sumRowsF32Into(xs, js, rows, w);
      assertSameBits(js, want, `[${rows}, ${w}] JavaScript`);
    });
  }
});

Deno.test("the gradient of a broadcast add sums over the batch with the product's bits", async () => {
  await initBackend("wasm");
  tf.tidy(() => {
    const [b, s, h] = [32, 7, 16];
    const x = tf.tensor(values(b * s * h, 7), [b, s, h]), pos = tf.tensor(values(s * h, 8), [s, h]);
    const dy = tf.tensor(cancelling(b, s * h), [b, s, h]);
    const g = tf.grad((p: tf.Tensor) => tf.sum(tf.mul(tf.add(x, p), dy)) as tf.Scalar)(pos);
    const want = tf.reshape(tf.matMul(tf.ones([1, b]), tf.reshape(dy, [b, s * h])), [s, h]);
    assertSameBits(g.dataSync() as Float32Array, want.dataSync() as Float32Array, "position gradient");
  });
});
