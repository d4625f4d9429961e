import { batchLabels, makeBatch } from "../../lib/bert/batch.ts";
import assert from "node:assert/strict";
import { loadCheckpoint } from "../../lib/bert/checkpoint.ts";
import { BertClassifier } from "../../lib/bert/model.ts";
import { WordPieceTokenizer } from "../../lib/bert/tokenizer.ts";
import { getTask, loadSplit } from "../../lib/glue/mod.ts";
import { initBackend, tf } from "../../lib/tf.ts";
import { encodeExamples, evaluateModel, predict } from "../../lib/tuning/evaluate.ts";
import { tinyWorld } from "./fixture.ts";

await initBackend();

Deno.test("predictions come back in example order whatever the batching, padding cut per batch", async () => {
  const w = await tinyWorld(8, 40);
  try {
    const task = getTask("RTE");
    const { examples } = await loadSplit(task, "dev", { glueDir: w.glue });
    const set = encodeExamples(await WordPieceTokenizer.fromModelDir(w.model), examples, 24);
    assert.equal(set.rows.length, 40);
    assert.ok(set.lengths.some((n) => n < 24), "rows are not padded");
    const ck = await loadCheckpoint(w.model, { numLabels: 2, seed: 3, quiet: true });
    const model = new BertClassifier(ck.config, 2, ck.tensors);
    try {
      const before = tf.memory().numTensors;
      const one = set.rows.map((_, i) => {
        const l = model.logits(makeBatch(set, [i]));
        const [a, b] = l.dataSync();
        l.dispose();
        return b > a ? 1 : 0;
      });
      assert.deepEqual(await predict(model, set, { batchSize: 7 }), one);
      assert.deepEqual(await predict(model, set, { batchSize: 64 }), one);
      const r = await evaluateModel(model, task, set, { batchSize: 16 });
      const acc = one.filter((p, i) => p === set.labels[i]).length / 40;
      assert.equal(r.metrics.accuracy, acc);
      assert.equal(r.metrics.main, acc);
      assert.equal(tf.memory().numTensors, before);
      assert.ok(makeBatch(set, [0, 1]).seqLen === Math.max(set.lengths[0], set.lengths[1]));
      assert.ok(batchLabels(set, [0, 1], 2) instanceof Int32Array);
      assert.ok(batchLabels(set, [0, 1], 1) instanceof Float32Array);
    } finally {
      model.dispose();
    }
  } finally {
    await w.cleanup();
  }
});
