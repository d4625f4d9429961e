import assert from "node:assert/strict";
import { initBackend, tf } from "../../lib/tf.ts";
import {
  additiveMask,
  attention,
  type AttentionShape,
  dense,
  dropout,
  gelu,
  layerNorm,
  MASK_VALUE,
} from "../../lib/bert/ops.ts";
import { assertClose, rand } from "../tensors.ts";

const BACKENDS = ["cpu", "wasm"] as const;

// References: the textbook forms, which the model's ops must equal.

/** The naive dense: one matMul with transposeB. */
function denseNaive(x: tf.Tensor, w: tf.Tensor, b?: tf.Tensor): tf.Tensor {
  const inp = w.shape[1] as number;
  const y = tf.matMul(tf.reshape(x, [-1, inp]), w, false, true);
  const r = tf.reshape(y, [...x.shape.slice(0, -1), w.shape[0]]);
  return b ? tf.add(r, b) : r;
}

/** Attention with batched 3-D products. */
function attentionBatched(
  q: tf.Tensor,
  k: tf.Tensor,
  v: tf.Tensor,
  mask: tf.Tensor,
  shape: AttentionShape,
): tf.Tensor {
  const { batch, seq, heads } = shape;
  const hidden = q.shape[q.rank - 1];
  const d = hidden / heads;
  const toHeads = (t: tf.Tensor) => tf.transpose(tf.reshape(t, [batch, seq, heads, d]), [0, 2, 1, 3]);
  const scores = tf.matMul(toHeads(tf.mul(q, 1 / Math.sqrt(d))), tf.transpose(toHeads(k), [0, 1, 3, 2]));
  const probs = tf.softmax(tf.add(scores, mask));
  const ctx = tf.matMul(probs, toHeads(v)); // [b, h, s, d]
  return tf.reshape(tf.transpose(ctx, [0, 2, 1, 3]), [batch * seq, hidden]);
}

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
