import assert from "node:assert/strict";
import { FlatAdamW } from "../../lib/parallel/adamw.ts";
import { initBackend, tf } from "../../lib/tf.ts";
import { AdamW } from "../../lib/tuning/optimizer.ts";

Deno.test("FlatAdamW takes the same steps as the trainer's AdamW (decay skips biases and LayerNorm)", async () => {
  await initBackend("cpu");
  const names = [
    "bert.encoder.layer.0.output.dense.weight",
    "bert.encoder.layer.0.output.dense.bias",
    "bert.embeddings.LayerNorm.weight",
  ];
  const start = names.map((_, k) => Float32Array.from({ length: 6 }, (_, i) => Math.sin(3 * k + i)));
  const flat = new FlatAdamW(new Map(names.map((n, k) => [n, start[k].slice()])), { weightDecay: 0.1 });
  const vars = new Map(names.map((n, k) => [n, tf.variable(tf.tensor(start[k]), true, `v${k}`)]));
  const ref = new AdamW(vars, new Map(names.map((n) => [n, "all" as const])), { weightDecay: 0.1 });
  for (let t = 0; t < 4; t++) {
    const grads = names.map((_, k) => Float32Array.from({ length: 6 }, (_, i) => Math.cos(t + 2 * k + i)));
    flat.apply(new Map(names.map((n, k) => [n, grads[k]])), 0.01);
    const tg = new Map(names.map((n, k) => [n, tf.tensor(grads[k])]));
    ref.apply(tg, 0.01);
    tf.dispose([...tg.values()]);
  }
  names.forEach((n) => {
    const want = vars.get(n)!.dataSync(), got = flat.params.get(n)!;
    for (let i = 0; i < 6; i++) {
      assert.ok(Math.abs(got[i] - want[i]) < 1e-6, `${n}[${i}]: ${got[i]} vs ${want[i]}`);
    }
  });
  ref.dispose();
  for (const v of vars.values()) v.dispose();
});

Deno.test("FlatAdamW: masked elements keep their exact bits; missing gradients are errors", () => {
  const p = Float32Array.from([0.1, 0.2, 0.3]);
  const opt = new FlatAdamW(new Map([["x.weight", p]]), {
    masks: new Map([["x.weight", Float32Array.from([1, 0, 1])]]),
  });
  opt.apply(new Map([["x.weight", Float32Array.from([1, 1, 1])]]), 0.1);
  assert.equal(p[1], Float32Array.from([0.2])[0]);
  assert.notEqual(p[0], Float32Array.from([0.1])[0]);
  assert.throws(() => opt.apply(new Map(), 0.1), /no gradient for trained parameter "x.weight"/);
  assert.throws(
    () => new FlatAdamW(new Map([["y", p]]), { masks: new Map([["y", new Float32Array(2)]]) }),
    /mask of "y" has 2 values/,
  );
});
