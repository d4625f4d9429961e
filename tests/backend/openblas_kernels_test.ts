/**
 * The fused kernels (lib/backend/fused_kernels.ts) with OpenBLAS products: forward values and every
 * gradient match the wasm product's within float32 rounding, repeat bitwise, and go through OpenBLAS.
 */
import assert from "node:assert/strict";
import { chooseGemm } from "../../lib/backend/gemm_choice.ts";
import { attentionContext, attentionScores, denseFast } from "../../lib/bert/fused_ops.ts";
import { initBackend, tf } from "../../lib/tf.ts";
import { assertClose, rand } from "../tensors.ts";

await initBackend("wasm");

/** A scalar loss with a fixed random weight per output element, so every gradient entry matters. */
const weighted = (seed: number) => (y: tf.Tensor) => tf.sum(tf.mul(y, rand(y.shape, seed))) as tf.Scalar;

/** The output and the gradients of `f` at `inputs`, as arrays (tensors disposed). */
function run(f: (...xs: tf.Tensor[]) => tf.Tensor, inputs: tf.Tensor[], seed: number): Float32Array[] {
  return tf.tidy(() => {
    const y = f(...inputs);
    const grads = tf.grads((...xs: tf.Tensor[]) => weighted(seed)(f(...xs)))(inputs);
    return [y, ...grads].map((t) => t.dataSync() as Float32Array);
  });
}

/** `f` on the wasm product, then on OpenBLAS (1 and 2 threads), compared; counts OpenBLAS calls. */
function compare(what: string, f: (...xs: tf.Tensor[]) => tf.Tensor, inputs: tf.Tensor[], seed: number) {
  chooseGemm("wasm", { name: "wasm" });
  const tensorsBefore = tf.memory().numTensors;
  const wasm = run(f, inputs, seed);
  for (const threads of [1, 2]) {
    const s = chooseGemm("wasm", { name: "openblas", threads });
    const sgemm = s.blas!.sgemm;
    let calls = 0;
    s.blas!.sgemm = ((...args: Parameters<typeof sgemm>) => (calls++, sgemm(...args))) as typeof sgemm;
    let blas: Float32Array[], again: Float32Array[];
    try {
      blas = run(f, inputs, seed);
      again = run(f, inputs, seed);
    } finally {
      s.blas!.sgemm = sgemm;
    }
    assert.ok(calls > 0, `${what}: no product went to OpenBLAS`);
    const names = ["forward", ...inputs.map((_, i) => `grad ${i}`)];
    blas.forEach((x, i) => {
      assertClose(x, wasm[i], 1e-5, `${what} t${threads} ${names[i]}`);
      assert.deepEqual(again[i], x, `${what} t${threads} ${names[i]}: not repeatable`);
    });
  }
  chooseGemm("wasm", { name: "wasm" });
  assert.equal(tf.memory().numTensors, tensorsBefore, `${what}: tensors leaked`);
}

Deno.test("dense kernel on OpenBLAS: forward (bias fused) and the three gradients match the wasm product", () => {
  const x = rand([3, 41, 96], 1), w = rand([130, 96], 2), b = rand([130], 3);
  try {
    compare("dense", (xx, ww, bb) => denseFast(xx, ww, bb), [x, w, b], 4);
    compare("dense without bias", (xx, ww) => denseFast(xx, ww), [x, w], 5);
  } finally {
    tf.dispose([x, w, b]);
  }
});

Deno.test("attention kernels on OpenBLAS: per-head scores and context, values and gradients", () => {
  const [batch, seq, heads, d] = [2, 33, 4, 16];
  const shape = { batch, seq, heads };
  const q = rand([batch * seq, heads * d], 11), k = rand([batch * seq, heads * d], 12);
  const v = rand([batch * seq, heads * d], 13);
  const f = (qq: tf.Tensor, kk: tf.Tensor, vv: tf.Tensor) =>
    attentionContext(tf.softmax(attentionScores(qq, kk, shape, 1 / Math.sqrt(d))), vv, shape);
  try {
    compare("attention", f, [q, k, v], 14);
  } finally {
    tf.dispose([q, k, v]);
  }
});
