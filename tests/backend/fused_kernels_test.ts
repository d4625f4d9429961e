import assert from "node:assert/strict";
import { initBackend, tf } from "../../lib/tf.ts";
import {
  attentionContext,
  attentionScores,
  denseFast,
  fusedKernelsActive,
  geluFast,
  layerNormFast,
} from "../../lib/bert/fused_ops.ts";
import { assertClose, rand } from "../tensors.ts";

const BACKENDS = ["cpu", "wasm"] as const;

/** A scalar loss with a fixed random weight per output element, so every gradient entry matters. */
const weighted = (seed: number) => (y: tf.Tensor) => tf.sum(tf.mul(y, rand(y.shape, seed))) as tf.Scalar;

// Reference implementations from plain tfjs ops.
const refDense = (x: tf.Tensor, w: tf.Tensor, b: tf.Tensor) =>
  tf.add(
    tf.reshape(tf.matMul(tf.reshape(x, [-1, w.shape[1] as number]), w, false, true), [
      ...x.shape.slice(0, -1),
      w.shape[0],
    ]),
    b,
  );
function refLayerNorm(x: tf.Tensor, g: tf.Tensor, b: tf.Tensor, eps: number) {
  const mean = tf.mean(x, -1, true);
  const xc = tf.sub(x, mean);
  const y = tf.div(xc, tf.sqrt(tf.add(tf.mean(tf.square(xc), -1, true), eps)));
  const align = (p: tf.Tensor) => p.rank === 1 ? p : tf.reshape(p, [p.shape[0], 1, p.shape[1] as number]);
  return tf.add(tf.mul(y, align(g)), align(b));
}
const refGelu = (x: tf.Tensor) => tf.mul(tf.mul(x, 0.5), tf.add(tf.erf(tf.div(x, Math.SQRT2)), 1));
function refAttention(q: tf.Tensor, k: tf.Tensor, v: tf.Tensor, b: number, s: number, h: number) {
  const d = (q.shape[1] as number) / h;
  const heads = (t: tf.Tensor) => tf.transpose(tf.reshape(t, [b, s, h, d]), [0, 2, 1, 3]);
  const probs = tf.softmax(tf.mul(tf.matMul(heads(q), heads(k), false, true), 1 / Math.sqrt(d)));
  return tf.reshape(tf.transpose(tf.matMul(probs, heads(v)), [0, 2, 1, 3]), [b * s, h * d]);
}

Deno.test("kernels are active on wasm and cpu", async () => {
  for (const backend of BACKENDS) {
    await initBackend(backend);
    assert.ok(fusedKernelsActive(), backend);
  }
});

Deno.test("dense kernel: forward and the three lazy gradients equal the op-by-op product", async () => {
  for (const backend of BACKENDS) {
    await initBackend(backend);
    tf.tidy(() => {
      const x = rand([2, 5, 6], 1), w = rand([7, 6], 2), b = rand([7], 3);
      assertClose(denseFast(x, w, b), refDense(x, w, b), 1e-5, `${backend} forward`);
      const f = (g: typeof refDense) => (xx: tf.Tensor, ww: tf.Tensor, bb: tf.Tensor) =>
        weighted(4)(g(xx, ww, bb));
      const got = tf.grads(f(denseFast))([x, w, b]), want = tf.grads(f(refDense))([x, w, b]);
      got.forEach((g, i) => assertClose(g, want[i], 1e-5, `${backend} grad ${i}`));
      // No bias input: the product alone.
      assertClose(denseFast(x, w), tf.sub(refDense(x, w, b), b), 1e-5, `${backend} no bias`);
    });
  }
});

Deno.test("layerNorm kernel: shared and per-example gamma/beta, values and gradients", async () => {
  for (const backend of BACKENDS) {
    await initBackend(backend);
    for (const perExample of [false, true]) {
      tf.tidy(() => {
        const x = tf.add(tf.mul(rand([3, 4, 8], 5), 4), 2);
        const g = perExample ? rand([3, 8], 6) : rand([8], 6),
          b = perExample ? rand([3, 8], 7) : rand([8], 7);
        const what = `${backend} ${perExample ? "per-example" : "shared"}`;
        assertClose(layerNormFast(x, g, b, 1e-12), refLayerNorm(x, g, b, 1e-12), 1e-5, `${what} forward`);
        const f = (ln: typeof refLayerNorm) => (xx: tf.Tensor, gg: tf.Tensor, bb: tf.Tensor) =>
          weighted(8)(ln(xx, gg, bb, 1e-12));
        const got = tf.grads(f(layerNormFast))([x, g, b]), want = tf.grads(f(refLayerNorm))([x, g, b]);
        got.forEach((t, i) => assertClose(t, want[i], 1e-4, `${what} grad ${i}`));
      });
    }
  }
});

Deno.test("gelu kernel: exact-erf GELU within 2e-7 and its derivative", async () => {
  for (const backend of BACKENDS) {
    await initBackend(backend);
    tf.tidy(() => {
      const x = tf.mul(rand([4, 64], 9), 6); // [-6, 6): both tails
      assertClose(geluFast(x), refGelu(x), 2e-6, `${backend} forward`);
      const got = tf.grad((t: tf.Tensor) => weighted(10)(geluFast(t)))(x);
      const want = tf.grad((t: tf.Tensor) => weighted(10)(refGelu(t)))(x);
      assertClose(got, want, 1e-5, `${backend} grad`);
      // Known values (PyTorch F.gelu in float64).
      const pts = tf.tensor([-3, -1, 0, 1, 3]);
      assertClose(
        geluFast(pts),
        tf.tensor([-0.0040496, -0.1586553, 0, 0.8413447, 2.9959503]),
        1e-6,
        "points",
      );
    });
  }
});

Deno.test("attention kernels: per-head products equal batched attention, values and gradients", async () => {
  const [b, s, h, d] = [2, 5, 3, 4];
  const shape = { batch: b, seq: s, heads: h };
  const fast = (q: tf.Tensor, k: tf.Tensor, v: tf.Tensor) =>
    attentionContext(tf.softmax(attentionScores(q, k, shape, 1 / Math.sqrt(d))), v, shape);
  const ref = (q: tf.Tensor, k: tf.Tensor, v: tf.Tensor) => refAttention(q, k, v, b, s, h);
  for (const backend of BACKENDS) {
    await initBackend(backend);
    tf.tidy(() => {
      const q = rand([b * s, h * d], 11), k = rand([b * s, h * d], 12), v = rand([b * s, h * d], 13);
      assertClose(fast(q, k, v), ref(q, k, v), 1e-5, `${backend} forward`);
      const f = (a: typeof fast) => (qq: tf.Tensor, kk: tf.Tensor, vv: tf.Tensor) =>
        weighted(14)(a(qq, kk, vv));
      const got = tf.grads(f(fast))([q, k, v]), want = tf.grads(f(ref))([q, k, v]);
      got.forEach((g, i) => assertClose(g, want[i], 1e-5, `${backend} grad ${["q", "k", "v"][i]}`));
    });
  }
});
