import assert from "node:assert/strict";
import { initBackend, tf } from "../../lib/tf.ts";
import { embedding } from "../../lib/bert/ops.ts";
import { assertClose, numericGrad, rand, values } from "../tensors.ts";

const BACKENDS = ["cpu", "wasm"] as const;

Deno.test("BatchMatMul gradient with every transpose flag matches finite differences", async () => {
  for (const backend of BACKENDS) {
    await initBackend(backend);
    for (const [ta, tb] of [[false, false], [false, true], [true, false], [true, true]]) {
      tf.tidy(() => {
        const aShape = ta ? [4, 3] : [3, 4], bShape = tb ? [5, 4] : [4, 5];
        const a = values(12, 1), b = values(20, 2);
        const r = rand([3, 5], 3);
        const fa = (x: tf.Tensor) =>
          tf.sum(tf.mul(tf.matMul(x, tf.tensor(b, bShape), ta, tb), r)) as tf.Scalar;
        const fb = (x: tf.Tensor) =>
          tf.sum(tf.mul(tf.matMul(tf.tensor(a, aShape), x, ta, tb), r)) as tf.Scalar;
        const ga = tf.grad(fa)(tf.tensor(a, aShape));
        const gb = tf.grad(fb)(tf.tensor(b, bShape));
        // The loss is linear in each input, so central differences are exact up to rounding.
        assertClose(ga, numericGrad(fa, a, aShape, 0.5), 1e-4, `${backend} dA (${ta},${tb})`);
        assertClose(gb, numericGrad(fb, b, bShape, 0.5), 1e-4, `${backend} dB (${ta},${tb})`);
      });
    }
  }
});

Deno.test("embedding gradient (JS scatter-add) matches finite differences, repeated ids included", async () => {
  await initBackend("cpu");
  tf.tidy(() => {
    const table = values(15, 8), shape = [5, 3];
    const ids = tf.tensor([[0, 2], [2, 4]], [2, 2], "int32");
    const r = rand([2, 2, 3], 9);
    const f = (t: tf.Tensor) => tf.sum(tf.mul(embedding(t, ids), r)) as tf.Scalar;
    const g = tf.grad(f)(tf.tensor(table, shape));
    assertClose(g, numericGrad(f, table, shape, 0.5), 1e-4, "d table");
    // Row 1 and 3 were never picked; row 2 twice.
    assert.deepEqual(Array.from(g.dataSync().slice(3, 6)), [0, 0, 0]);
  });
  await initBackend("wasm");
  tf.tidy(() => {
    const ids = tf.tensor([1, 1, 0], [3], "int32");
    const g = tf.grad((t: tf.Tensor) => tf.sum(embedding(t, ids)) as tf.Scalar)(tf.ones([2, 2]));
    assert.deepEqual(Array.from(g.dataSync()), [1, 1, 2, 2]);
  });
});

Deno.test("basic gradients (reductions, shapes, broadcasting) match finite differences", async () => {
  await initBackend("cpu");
  const x0 = values(24, 19), shape = [2, 3, 4];
  const r = (s: number[]) => rand(s, 20);
  const fns: [string, (x: tf.Tensor) => tf.Tensor][] = [
    ["sum axis 1", (x) => tf.mul(tf.sum(x, 1), r([2, 4]))],
    ["mean axis -1", (x) => tf.mul(tf.mean(x, -1), r([2, 3]))],
    ["max axis 2", (x) => tf.mul(tf.max(x, 2), r([2, 3]))],
    [
      "broadcast add/sub/mul/div",
      (x) => tf.div(tf.mul(tf.sub(tf.add(x, r([4])), r([3, 1])), r([2, 1, 4])), 1.5),
    ],
    ["div by x", (x) => tf.div(r([2, 3, 4]), tf.add(tf.square(x), 1))],
    ["transpose + reshape", (x) => tf.mul(tf.reshape(tf.transpose(x, [2, 0, 1]), [4, 6]), r([4, 6]))],
    ["slice + concat + split", (x) => {
      // Copy before reversing: tfjs shares split's output array with its gradient tape.
      const parts = [...tf.split(tf.slice(x, [0, 1, 0], [2, 2, 4]), [1, 3], 2)].reverse();
      return tf.mul(tf.concat(parts, 2), r([2, 2, 4]));
    }],
    ["stack/unstack", (x) => tf.mul(tf.stack(tf.unstack(x, 1).slice(1), 0), r([2, 2, 4]))],
    ["tile", (x) => tf.mul(tf.tile(x, [1, 2, 1]), r([2, 6, 4]))],
    ["softmax", (x) => tf.mul(tf.softmax(x), r([2, 3, 4]))],
    [
      "tanh, exp, log, sqrt, rsqrt",
      (x) =>
        tf.add(
          tf.add(tf.tanh(x), tf.exp(x)),
          tf.add(tf.log(tf.add(tf.square(x), 1)), tf.rsqrt(tf.add(tf.square(x), 1))),
        ),
    ],
    ["erf, sigmoid, neg", (x) => tf.mul(tf.add(tf.erf(x), tf.neg(tf.sigmoid(x))), r([2, 3, 4]))],
  ];
  for (const [name, fn] of fns) {
    tf.tidy(() => {
      const f = (x: tf.Tensor) => tf.sum(fn(x)) as tf.Scalar;
      const got = tf.grad(f)(tf.tensor(x0, shape));
      assertClose(got, numericGrad(f, x0, shape, 1e-2), 2e-2, name);
    });
  }
});
