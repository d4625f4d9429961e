import assert from "node:assert/strict";
import { initBackend, tf } from "../../lib/tf.ts";
import {
  additiveMask,
  attention,
  attentionBatched,
  dense,
  denseNaive,
  dropout,
  embedding,
  gelu,
  installOverrides,
  layerNorm,
  MASK_VALUE,
} from "../../lib/bert/ops.ts";

const BACKENDS = ["cpu", "wasm"] as const;

/** Deterministic pseudo-random values in [-1, 1). */
function values(n: number, seed: number): Float32Array {
  const out = new Float32Array(n);
  let s = seed >>> 0;
  for (let i = 0; i < n; i++) {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    out[i] = s / 2 ** 31 - 1;
  }
  return out;
}

function rand(shape: number[], seed: number): tf.Tensor {
  return tf.tensor(values(shape.reduce((a, b) => a * b, 1), seed), shape);
}

function assertClose(
  got: tf.Tensor | ArrayLike<number>,
  want: tf.Tensor | ArrayLike<number>,
  tol: number,
  what: string,
) {
  const g = got instanceof tf.Tensor ? got.dataSync() : got;
  const w = want instanceof tf.Tensor ? want.dataSync() : want;
  assert.equal(g.length, w.length, `${what}: length`);
  for (let i = 0; i < w.length; i++) {
    const bound = tol * (1 + Math.abs(w[i]));
    assert.ok(Math.abs(g[i] - w[i]) <= bound, `${what}[${i}]: got ${g[i]}, want ${w[i]} (tol ${bound})`);
  }
}

/** Central finite differences of a scalar function of one tensor (float64 arithmetic on the outside). */
function numericGrad(
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

Deno.test("installOverrides is idempotent and keeps the fast gradients", () => {
  const before = tf.getGradient("BatchMatMul").gradFunc;
  installOverrides();
  installOverrides();
  assert.equal(tf.getGradient("BatchMatMul").gradFunc, before);
  for (
    const k of [
      "Add",
      "Multiply",
      "Sum",
      "Mean",
      "Reshape",
      "Transpose",
      "Softmax",
      "Concat",
      "SplitV",
      "Tanh",
    ]
  ) {
    assert.ok(tf.getGradient(k), `gradient for ${k} registered`);
  }
});

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

Deno.test("dense equals the naive product, forward and backward, and takes per-example biases", async () => {
  for (const backend of BACKENDS) {
    await initBackend(backend);
    tf.tidy(() => {
      const x = rand([2, 3, 6], 4), w = rand([5, 6], 5), b = rand([5], 6);
      assertClose(dense(x, w, b), denseNaive(x, w, b), 1e-6, `${backend} forward`);
      const r = rand([2, 3, 5], 7);
      const loss = (f: typeof dense) => (xx: tf.Tensor, ww: tf.Tensor, bb: tf.Tensor) =>
        tf.sum(tf.mul(f(xx, ww, bb), r)) as tf.Scalar;
      const fast = tf.grads(loss(dense))([x, w, b]);
      const naive = tf.grads(loss(denseNaive))([x, w, b]);
      fast.forEach((g, i) => assertClose(g, naive[i], 1e-5, `${backend} grad ${i}`));
      // A per-example bias [batch, out] adds example b's own copy to every position of example b.
      const perExample = tf.stack([b, tf.mul(b, 2)]);
      const y = dense(x, w, perExample);
      assertClose(
        tf.slice(y, [1, 0, 0], [1, 3, 5]),
        dense(tf.slice(x, [1, 0, 0], [1, 3, 6]), w, tf.mul(b, 2)),
        1e-6,
        "row 1",
      );
      assert.throws(() => dense(x, rand([5, 7], 1), b), /does not match weight/);
    });
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

Deno.test("layerNorm matches PyTorch's definition and its gradient matches the op-by-op one", async () => {
  for (const backend of BACKENDS) {
    await initBackend(backend);
    tf.tidy(() => {
      const x = tf.add(tf.mul(rand([2, 3, 8], 10), 3), 1), gamma = rand([8], 11), beta = rand([8], 12);
      const eps = 1e-12;
      const reference = (xx: tf.Tensor, gg: tf.Tensor, bb: tf.Tensor) => {
        const mean = tf.mean(xx, -1, true);
        const variance = tf.mean(tf.square(tf.sub(xx, mean)), -1, true); // biased, as PyTorch
        return tf.add(tf.mul(tf.div(tf.sub(xx, mean), tf.sqrt(tf.add(variance, eps))), gg), bb);
      };
      assertClose(layerNorm(x, gamma, beta, eps), reference(x, gamma, beta), 1e-5, `${backend} forward`);
      const r = rand([2, 3, 8], 13);
      const loss = (f: typeof layerNorm) => (xx: tf.Tensor, gg: tf.Tensor, bb: tf.Tensor) =>
        tf.sum(tf.mul(f(xx, gg, bb, eps), r)) as tf.Scalar;
      const got = tf.grads(loss(layerNorm))([x, gamma, beta]);
      const want = tf.grads(loss(reference))([x, gamma, beta]);
      got.forEach((g, i) => assertClose(g, want[i], 1e-4, `${backend} grad ${i}`));
    });
  }
});

Deno.test("gelu is the exact erf GELU, with the erf-derived gradient", async () => {
  for (const backend of BACKENDS) {
    await initBackend(backend);
    tf.tidy(() => {
      const x = tf.tensor([-3, -1, -0.5, 0, 0.5, 1, 3]);
      // 0.5 x (1 + erf(x / sqrt 2)) at these points (PyTorch's F.gelu, float64)
      const want = [-0.0040496, -0.1586553, -0.1542687, 0, 0.3457313, 0.8413447, 2.9959503];
      assertClose(gelu(x), want, 1e-5, `${backend} value`);
      const viaErf = (t: tf.Tensor) =>
        tf.sum(tf.mul(tf.mul(t, 0.5), tf.add(tf.erf(tf.div(t, Math.SQRT2)), 1))) as tf.Scalar;
      const got = tf.grad((t: tf.Tensor) => tf.sum(gelu(t)) as tf.Scalar)(x);
      assertClose(got, tf.grad(viaErf)(x), 1e-5, `${backend} grad`);
    });
  }
});

Deno.test("sliced attention equals batched attention (values and gradients); padded keys get no weight", async () => {
  for (const backend of BACKENDS) {
    await initBackend(backend);
    tf.tidy(() => {
      const shape = { batch: 2, seq: 5, heads: 2 };
      const q = rand([10, 8], 14), k = rand([10, 8], 15), v = rand([10, 8], 16);
      const mask = additiveMask(Int32Array.from([1, 1, 1, 1, 1, 1, 1, 1, 0, 0]), 2, 5);
      const sliced = attention(q, k, v, mask, shape);
      assertClose(sliced, attentionBatched(q, k, v, mask, shape), 1e-5, `${backend} forward`);
      const r = rand([10, 8], 17);
      const loss = (f: typeof attention) => (qq: tf.Tensor, kk: tf.Tensor, vv: tf.Tensor) =>
        tf.sum(tf.mul(f(qq, kk, vv, mask, shape), r)) as tf.Scalar;
      const got = tf.grads(loss(attention))([q, k, v]);
      const want = tf.grads(loss(attentionBatched))([q, k, v]);
      got.forEach((g, i) => assertClose(g, want[i], 1e-5, `${backend} grad ${i}`));
      // Changing the padded keys/values of example 1 changes nothing.
      const v2 = tf.concat([tf.slice(v, [0, 0], [8, 8]), tf.mul(tf.slice(v, [8, 0], [2, 8]), 100)]);
      const k2 = tf.concat([tf.slice(k, [0, 0], [8, 8]), tf.mul(tf.slice(k, [8, 0], [2, 8]), 100)]);
      assertClose(attention(q, k2, v2, mask, shape), sliced, 1e-6, `${backend} padding`);
      assert.equal(MASK_VALUE, -10000);
    });
  }
});

Deno.test("wasm SplitV replacement splits any axis like the cpu backend", async () => {
  const cases: [number[], number | number[], number][] = [[[6, 4], 3, 0], [[2, 6, 3], [1, 2, 3], 1], [
    [2, 3, 4],
    2,
    -1,
  ]];
  for (const [shape, splits, axis] of cases) {
    const data = values(shape.reduce((a, b) => a * b, 1), 18);
    const run = async (backend: "cpu" | "wasm") => {
      await initBackend(backend);
      return tf.tidy(() =>
        tf.split(tf.tensor(data, shape), splits, axis).map((t) => [t.shape, Array.from(t.dataSync())])
      );
    };
    assert.deepEqual(await run("wasm"), await run("cpu"), `split [${shape}] by ${splits} on axis ${axis}`);
  }
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

Deno.test("dropout is seeded, inverted, and the identity at rate 0", async () => {
  for (const backend of BACKENDS) {
    await initBackend(backend);
    tf.tidy(() => {
      const x = tf.ones([1000]);
      const a = dropout(x, 0.25, "7:1").dataSync(), b = dropout(x, 0.25, "7:1").dataSync();
      assert.deepEqual(Array.from(a), Array.from(b));
      assert.notDeepEqual(Array.from(a), Array.from(dropout(x, 0.25, "7:2").dataSync()));
      const kept = Array.from(a).filter((v) => v !== 0);
      assert.ok(kept.every((v) => Math.abs(v - 1 / 0.75) < 1e-6));
      assert.ok(kept.length > 650 && kept.length < 850, `kept ${kept.length} of 1000`);
      assert.equal(dropout(x, 0, "1"), x);
    });
  }
});
