import { batchFromEncoded } from "../../lib/bert/batch.ts";
import assert from "node:assert/strict";
import { join } from "node:path";
import { initBackend } from "../../lib/tf.ts";
import { readConfig } from "../../lib/bert/config.ts";
import { BertClassifier } from "../../lib/bert/model.ts";
import { isLayerNorm, parameterShapes } from "../../lib/bert/names.ts";
import { readSafetensors } from "../../lib/bert/safetensors.ts";
import { chooseGemm } from "../../lib/backend/gemm_choice.ts";
import { createGradientEngine, shardSizes } from "../../lib/parallel/engine.ts";
import { computeGrads } from "../../lib/parallel/replica.ts";

const GOLDEN = join(import.meta.dirname!, "..", "fixtures", "golden");

async function golden() {
  const config = await readConfig(join(GOLDEN, "config.json"));
  const body = await readSafetensors(join(GOLDEN, "model.safetensors"));
  const head = await readSafetensors(join(GOLDEN, "head_cls.safetensors"));
  const data = JSON.parse(await Deno.readTextFile(join(GOLDEN, "golden.json")));
  const rows = data.rows.map((
    r: { input_ids: number[]; token_type_ids: number[]; attention_mask: number[] },
  ) => ({
    inputIds: r.input_ids,
    tokenTypeIds: r.token_type_ids,
    attentionMask: r.attention_mask,
  }));
  const numLabels = data.cls.num_labels as number;
  return {
    config,
    numLabels,
    tensors: new Map([...body, ...head]),
    // Six rows (the golden three twice), so that two workers get three each.
    batch: batchFromEncoded([...rows, ...rows]),
    labels: Int32Array.from([...data.cls.labels, ...data.cls.labels]),
  };
}

function maxDiff(a: Map<string, Float32Array>, b: Map<string, Float32Array>): number {
  let d = 0;
  for (const [name, x] of a) {
    const y = b.get(name)!;
    assert.equal(x.length, y.length, name);
    for (let i = 0; i < x.length; i++) d = Math.max(d, Math.abs(x[i] - y[i]));
  }
  return d;
}

Deno.test("shardSizes splits rows evenly, larger shares first, never empty", () => {
  assert.deepEqual(shardSizes(32, 2), [16, 16]);
  assert.deepEqual(shardSizes(7, 2), [4, 3]);
  assert.deepEqual(shardSizes(10, 3), [4, 3, 3]);
  assert.deepEqual(shardSizes(1, 2), [1]);
});

Deno.test("workers give the in-process gradients (two to rounding, one exactly), deterministically; setParams reaches them", async () => {
  await initBackend("wasm");
  const g = await golden();
  const names = [...parameterShapes(g.config, g.numLabels).keys()].filter((n) =>
    isLayerNorm(n) || n.startsWith("classifier.")
  );
  const local = new BertClassifier(g.config, g.numLabels, g.tensors);
  const two = await createGradientEngine({ ...g, workers: 2, backend: "wasm" });
  try {
    assert.equal(two.workers, 2);
    const a = await computeGrads(local, g.batch, g.labels, names, 1, false);
    const bRes = await two.grads(g.batch, g.labels, names, 1, false);
    const b = { loss: bRes.loss, grads: new Map([...bRes.grads].map(([k, v]) => [k, v.slice()])) };
    assert.ok(Math.abs(a.loss - b.loss) < 1e-6, `loss ${a.loss} vs ${b.loss}`);
    assert.deepEqual([...b.grads.keys()], names);
    assert.ok(maxDiff(a.grads, b.grads) < 1e-6, `max difference ${maxDiff(a.grads, b.grads)}`);
    // One worker runs the same computeGrads on the whole batch: the in-process bits exactly.
    const one = await createGradientEngine({ ...g, workers: 1, backend: "wasm" });
    try {
      const c = await one.grads(g.batch, g.labels, names, 1, false);
      assert.equal(c.loss, a.loss);
      assert.equal(maxDiff(a.grads, c.grads), 0);
    } finally {
      await one.dispose();
    }
    // Training mode (dropout): the same bits for the same seed and worker count.
    // (The engine reuses its gradient buffers: copy before the next call.)
    const copy = (m: Map<string, Float32Array>) => new Map([...m].map(([k, v]) => [k, v.slice()]));
    const c1 = await two.grads(g.batch, g.labels, names, 5, true);
    const c1Grads = copy(c1.grads);
    const c2 = await two.grads(g.batch, g.labels, names, 5, true);
    assert.equal(c1.loss, c2.loss);
    assert.equal(maxDiff(c1Grads, c2.grads), 0);
    assert.ok(maxDiff(c1Grads, b.grads) > 0, "dropout changes the gradients");
    // New parameter values reach every replica: a zero classifier gives uniform logits, loss ln 2 (2 labels).
    const w = g.tensors.get("classifier.weight")!, bias = g.tensors.get("classifier.bias")!;
    await two.setParams(
      new Map([["classifier.weight", new Float32Array(w.data.length)], [
        "classifier.bias",
        new Float32Array(bias.data.length),
      ]]),
    );
    const z = await two.grads(g.batch, g.labels, names, 1, false);
    assert.ok(Math.abs(z.loss - Math.log(g.numLabels)) < 1e-6, `loss after setParams ${z.loss}`);
  } finally {
    local.dispose();
    await two.dispose();
  }
});

Deno.test("workers run the calling thread's product: OpenBLAS on one thread, the wasm product's gradients to rounding", async () => {
  await initBackend("wasm");
  const g = await golden();
  const names = [...parameterShapes(g.config, g.numLabels).keys()];
  const wasmEngine = await createGradientEngine({ ...g, workers: 2, backend: "wasm" });
  let wasm;
  try {
    assert.equal(wasmEngine.identity, "wasm");
    const r = await wasmEngine.grads(g.batch, g.labels, names, 1, false);
    wasm = new Map([...r.grads].map(([k, v]) => [k, v.slice()]));
  } finally {
    await wasmEngine.dispose();
  }
  chooseGemm("wasm", { name: "openblas", threads: 1 });
  try {
    const two = await createGradientEngine({ ...g, workers: 2, backend: "wasm" });
    try {
      assert.equal(two.identity, "wasm+openblas-t1");
      const a = await two.grads(g.batch, g.labels, names, 1, false);
      const aGrads = new Map([...a.grads].map(([k, v]) => [k, v.slice()]));
      const b = await two.grads(g.batch, g.labels, names, 1, false);
      assert.equal(maxDiff(aGrads, b.grads), 0, "repeats bitwise");
      assert.ok(maxDiff(aGrads, wasm) < 1e-5, `max difference to the wasm product ${maxDiff(aGrads, wasm)}`);
    } finally {
      await two.dispose();
    }
    // A product the workers cannot start is the engine's error, naming the worker.
    await assert.rejects(
      createGradientEngine({
        ...g,
        workers: 1,
        backend: "wasm",
        gemm: { name: "openblas", paths: ["/nonexistent/libopenblas.so.0"] },
      }),
      /gradient engine: worker 0: OpenBLAS could not be loaded; tried \/nonexistent\/libopenblas\.so\.0/,
    );
  } finally {
    chooseGemm("wasm", { name: "wasm" });
  }
});

Deno.test("micro-batches accumulate to the whole batch's gradients", async () => {
  await initBackend("wasm");
  const g = await golden();
  const model = new BertClassifier(g.config, g.numLabels, g.tensors);
  try {
    const names = [...model.params.keys()];
    const whole = await computeGrads(model, g.batch, g.labels, names, 1, false);
    const micro = await computeGrads(model, g.batch, g.labels, names, 1, false, 4); // 4 + 2 rows
    assert.ok(Math.abs(whole.loss - micro.loss) < 1e-6);
    assert.ok(
      maxDiff(whole.grads, micro.grads) < 1e-6,
      `max difference ${maxDiff(whole.grads, micro.grads)}`,
    );
  } finally {
    model.dispose();
  }
});

Deno.test("engine errors name the problem", async () => {
  await initBackend("wasm");
  const g = await golden();
  await assert.rejects(
    () => createGradientEngine({ ...g, workers: 0 }),
    /workers must be a positive integer/,
  );
  const two = await createGradientEngine({ ...g, workers: 2, backend: "wasm" });
  try {
    await assert.rejects(
      () => two.grads(g.batch, g.labels, ["no.such.weight"], 1),
      /"no.such.weight" is not a parameter of the model/,
    );
    await assert.rejects(
      () => two.grads(g.batch, g.labels.subarray(0, 2), ["classifier.bias"], 1),
      /2 labels for a batch of 6/,
    );
  } finally {
    await two.dispose();
  }
});
