import { batchFromEncoded } from "../../lib/bert/batch.ts";
import assert from "node:assert/strict";
import { join } from "node:path";
import { initBackend, tf } from "../../lib/tf.ts";
import { BertClassifier } from "../../lib/bert/model.ts";
import { parseConfig } from "../../lib/bert/config.ts";
import { randomWeights } from "../../lib/bert/init.ts";
import { readSafetensors, type TensorMap } from "../../lib/bert/safetensors.ts";
import { loadCheckpoint } from "../../lib/bert/checkpoint.ts";
import { sharedModel } from "../env.ts";
import {
  allGrads,
  assertClose,
  assertFrozenWeightsGetNoGradient,
  assertPerExampleGradients,
  GOLDEN,
  golden,
  goldenBatch,
  goldenModel,
} from "./golden.ts";

const BACKENDS = ["cpu", "wasm"] as const;

for (const tag of ["cls", "reg"] as const) {
  Deno.test(`golden ${tag}: logits, loss and every gradient equal PyTorch's on cpu and wasm`, async () => {
    const want = await readSafetensors(join(GOLDEN, `grads_${tag}.safetensors`));
    for (const backend of BACKENDS) {
      await initBackend(backend);
      const { model, batch, g } = await goldenModel(tag);
      const logits = model.logits(batch);
      assert.deepEqual(logits.shape, [3, g.num_labels]);
      assertClose(logits.dataSync(), g.logits.flat(), `${backend} logits`);
      logits.dispose();
      const { loss, grads } = await allGrads(model, batch, g.labels);
      assertClose([loss], [g.loss], `${backend} loss`);
      assert.equal(grads.size, want.size);
      for (const [name, t] of want) {
        assert.ok(grads.has(name), `${backend}: no gradient for ${name}`);
        assertClose(grads.get(name)!, t.data, `${backend} grad ${name}`);
      }
      model.dispose();
    }
  });
}

Deno.test("per-example gradients from one backward pass equal one-example passes", async () => {
  for (const backend of BACKENDS) {
    await initBackend(backend);
    await assertPerExampleGradients(backend);
  }
});

Deno.test("overrides replace parameters for one pass only, and are checked", async () => {
  await initBackend("cpu");
  const { model, batch } = await goldenModel("cls");
  const base = model.logits(batch);
  const zeroHead = tf.zeros([3, 16]);
  const bias = model.params.get("classifier.bias")!;
  const overridden = model.logits(batch, { overrides: new Map([["classifier.weight", zeroHead]]) });
  // With a zero classifier weight every row's logits are the bias.
  assertClose(
    overridden.dataSync(),
    [...bias.dataSync(), ...bias.dataSync(), ...bias.dataSync()],
    "zero head",
  );
  assertClose(model.logits(batch).dataSync(), base.dataSync(), "unchanged after");
  assert.throws(
    () => model.logits(batch, { overrides: new Map([["classifier.wieght", zeroHead]]) }),
    /not a parameter/,
  );
  assert.throws(
    () => model.logits(batch, { overrides: new Map([["classifier.bias", tf.zeros([2, 3])]]) }),
    /per-example parameter/,
  );
  tf.dispose([base, zeroHead, overridden]);
  model.dispose();
});

Deno.test("no tensors leak across repeated forward and backward passes, training or not", async () => {
  for (const backend of BACKENDS) {
    await initBackend(backend);
    const { model, batch, g } = await goldenModel("cls");
    const vars = [...model.params.values()];
    const step = (training: boolean) => {
      const { value, grads } = tf.variableGrads(
        () => model.loss(model.logits(batch, { training, seed: 1 }), g.labels),
        vars,
      );
      tf.dispose([value, ...Object.values(grads)]);
    };
    step(true); // warm-up: first calls may create lasting backend state
    const before = tf.memory().numTensors;
    for (let i = 0; i < 3; i++) {
      step(true);
      step(false);
      tf.tidy(() => model.logits(batch).dataSync());
    }
    assert.equal(tf.memory().numTensors, before, `${backend}: tensors leaked`);
    model.dispose();
    assert.equal(tf.memory().numTensors, before - vars.length);
  }
});

Deno.test("dropout: training passes are deterministic per seed and differ from eval", async () => {
  await initBackend("cpu");
  const { model, batch } = await goldenModel("cls");
  const run = (opts: { training?: boolean; seed?: number }) =>
    tf.tidy(() => Array.from(model.logits(batch, opts).dataSync()));
  const evalA = run({}), evalB = run({ seed: 5 });
  assert.deepEqual(evalA, evalB, "eval ignores the seed");
  const t1 = run({ training: true, seed: 1 });
  assert.deepEqual(run({ training: true, seed: 1 }), t1);
  assert.notDeepEqual(run({ training: true, seed: 2 }), t1);
  assert.notDeepEqual(t1, evalA);
  model.dispose();
});

Deno.test("frozen weights get no gradient computed (lazy per-input gradients)", async () => {
  await initBackend("wasm");
  // A weight gradient is tfjs's BatchMatMul or the fused dense kernel's weight-gradient kernel
  // (lib/backend/fused_kernels.ts).
  await assertFrozenWeightsGetNoGradient(["BatchMatMul", "NormtuneDenseGradW"]);
});

Deno.test("loss: cross-entropy and MSE by hand; bad labels are errors", async () => {
  await initBackend("cpu");
  const { config, body } = await golden();
  const head: TensorMap = new Map([
    ["classifier.weight", { shape: [3, 16], data: new Float32Array(48) }],
    ["classifier.bias", { shape: [3], data: new Float32Array(3) }],
  ]);
  const model = new BertClassifier(config, 3, new Map([...body, ...head]));
  const logits = tf.tensor2d([[1, 2, 3], [0, 0, 0]]);
  const ce = (row: number[], y: number) => -(row[y] - Math.log(row.reduce((a, v) => a + Math.exp(v), 0)));
  assertClose(model.loss(logits, [2, 0]).dataSync(), [(ce([1, 2, 3], 2) + ce([0, 0, 0], 0)) / 2], "ce");
  assert.throws(() => model.loss(logits, [3, 0]), /not a class index/);
  assert.throws(() => model.loss(logits, [1.5, 0]), /not a class index/);
  assert.throws(() => model.loss(logits, [1]), /1 labels for 2/);
  model.dispose();
  const reg = new BertClassifier(
    config,
    1,
    new Map([...body, ["classifier.weight", { shape: [1, 16], data: new Float32Array(16) }], [
      "classifier.bias",
      { shape: [1], data: new Float32Array(1) },
    ]]),
  );
  assertClose(reg.loss(tf.tensor2d([[1], [3]]), [0.5, 1]).dataSync(), [(0.25 + 4) / 2], "mse");
  reg.dispose();
  logits.dispose();
});

Deno.test("constructor and inputs are validated with messages that name the problem", async () => {
  await initBackend("cpu");
  const { config, body, data } = await golden();
  assert.throws(() => new BertClassifier(config, 3, body), /"classifier.weight" \[3,16\] is missing/);
  const bad = new Map(body);
  bad.set("classifier.weight", { shape: [2, 16], data: new Float32Array(32) });
  bad.set("classifier.bias", { shape: [3], data: new Float32Array(3) });
  assert.throws(() => new BertClassifier(config, 3, bad), /"classifier.weight" has shape \[2,16\]/);
  const head = await readSafetensors(join(GOLDEN, "head_cls.safetensors"));
  const model = new BertClassifier(config, 3, new Map([...body, ...head]));
  // exportTensors round-trips the values given.
  const exported = await model.exportTensors();
  for (const [name, t] of exported) {
    const src = (body.get(name) ?? head.get(name))!;
    assert.deepEqual(t.shape, src.shape);
    assert.deepEqual(t.data, src.data, name);
  }
  const batch = goldenBatch(data);
  batch.inputIds[3] = 100;
  assert.throws(() => model.logits(batch), /row 0, position 3: token id 100/);
  const long = batchFromEncoded([{ inputIds: [1], tokenTypeIds: [0], attentionMask: [1] }], 33);
  assert.throws(() => model.logits(long), /exceeds max_position_embeddings 32/);
  model.dispose();
});

Deno.test("batchFromEncoded pads to the longest row or to seqLen and rejects ragged rows", () => {
  const rows = [
    { inputIds: [2, 5, 3], tokenTypeIds: [0, 0, 0], attentionMask: [1, 1, 1] },
    { inputIds: [2, 3], tokenTypeIds: [0, 1], attentionMask: [1, 1] },
  ];
  const b = batchFromEncoded(rows);
  assert.equal(b.seqLen, 3);
  assert.equal(b.batchSize, 2);
  assert.deepEqual(Array.from(b.inputIds), [2, 5, 3, 2, 3, 0]);
  assert.deepEqual(Array.from(b.tokenTypeIds), [0, 0, 0, 0, 1, 0]);
  assert.deepEqual(Array.from(b.attentionMask), [1, 1, 1, 1, 1, 0]);
  assert.equal(batchFromEncoded(rows, 5).inputIds.length, 10);
  assert.throws(() => batchFromEncoded(rows, 2), /row 0 has 3 tokens, more than seqLen 2/);
  assert.throws(
    () => batchFromEncoded([{ inputIds: [1, 2], tokenTypeIds: [0], attentionMask: [1, 1] }]),
    /row 0/,
  );
  assert.throws(() => batchFromEncoded([]), /no rows/);
});

Deno.test("bert-tiny: finite, deterministic logits; cpu equals wasm within 1e-4", async () => {
  const dir = sharedModel();
  const rows = [
    { inputIds: [101, 7592, 2088, 102], tokenTypeIds: [0, 0, 0, 0], attentionMask: [1, 1, 1, 1] },
    {
      inputIds: [101, 2023, 2003, 1037, 3231, 102, 2009, 102],
      tokenTypeIds: [0, 0, 0, 0, 0, 0, 1, 1],
      attentionMask: [1, 1, 1, 1, 1, 1, 1, 1],
    },
  ];
  const batch = batchFromEncoded(rows, 16);
  const results: number[][] = [];
  for (const backend of BACKENDS) {
    await initBackend(backend);
    const ckpt = await loadCheckpoint(dir, { numLabels: 2, seed: 3, quiet: true });
    const model = new BertClassifier(ckpt.config, 2, ckpt.tensors);
    const a = tf.tidy(() => Array.from(model.logits(batch).dataSync()));
    const b = tf.tidy(() => Array.from(model.logits(batch).dataSync()));
    assert.ok(a.every(Number.isFinite), `${backend}: logits not finite: ${a}`);
    assert.deepEqual(a, b, `${backend}: not deterministic`);
    results.push(a);
    model.dispose();
  }
  assertClose(results[1], results[0], "wasm vs cpu", 1e-4, 0);
});

Deno.test("logits frees each layer's intermediates when the layer is done: more layers add only their output", async () => {
  await initBackend("wasm");
  const peak = (layers: number) => {
    const config = parseConfig({
      vocab_size: 50,
      hidden_size: 32,
      num_hidden_layers: layers,
      num_attention_heads: 2,
      intermediate_size: 128,
    }, "test");
    const model = new BertClassifier(config, 2, randomWeights(config, 2, 0));
    const [b, s] = [8, 32];
    const batch = {
      batchSize: b,
      seqLen: s,
      inputIds: new Int32Array(b * s).map((_, i) => i % 50),
      tokenTypeIds: new Int32Array(b * s),
      attentionMask: new Int32Array(b * s).fill(1),
    };
    const before = tf.memory().numBytes;
    return tf.profile(() => model.logits(batch)).then((p) => {
      tf.dispose(p.result as tf.Tensor);
      model.dispose();
      return p.peakBytes - before;
    });
  };
  const [two, six] = [await peak(2), await peak(6)];
  // Per layer the pass keeps its [8, 32, 32] output (32 KiB); a layer's intermediates ([8, 32, 128] twice,
  // q/k/v/context and the attention probabilities) come to over 500 KiB.
  const perLayer = (six - two) / 4;
  assert.ok(perLayer < 2 * 8 * 32 * 32 * 4, `each extra layer raised the peak by ${perLayer} bytes`);
});
