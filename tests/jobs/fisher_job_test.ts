import assert from "node:assert/strict";
import { join } from "node:path";
import { batchFromEncoded } from "../../lib/bert/batch.ts";
import { loadCheckpoint } from "../../lib/bert/checkpoint.ts";
import { BertClassifier } from "../../lib/bert/model.ts";
import { readSafetensorsWithMetadata } from "../../lib/bert/safetensors.ts";
import { WordPieceTokenizer } from "../../lib/bert/tokenizer.ts";
import { computeFisher } from "../../lib/analysis/fisher_information.ts";
import { getTask, loadSplit } from "../../lib/glue/mod.ts";
import { type FisherConfig, fisherConfig, runFisher } from "../../lib/jobs/fisher_job.ts";
import { initBackend } from "../../lib/tf.ts";
import { sharedGlue, sharedModel, tempDir } from "../env.ts";

// The CLI padded every example to --max-len, the study's cells did not. Padding cannot change a score
// (computeFisher cuts each example to its last attended position), so the one Fisher job does not pad;
// this test holds both halves: the job's scores equal those of inputs padded to max length, bitwise.
/** 12 SST-2 examples (short sentences: padding to 128 tokens is real padding), LayerNorm Fisher on cpu. */
const config = (out: string): FisherConfig => ({
  model: sharedModel(),
  task: "SST-2",
  examples: 12,
  seed: 3,
  maxLen: 128,
  params: "layernorm",
  glueDir: sharedGlue(),
  backend: "cpu",
  out,
});

Deno.test("runFisher does not pad, and padding to max length would give the same scores bitwise", async () => {
  await initBackend("cpu");
  const [dir, cleanup] = await tempDir();
  try {
    const out = join(dir, "sst2.safetensors");
    const r = await runFisher(config(out));
    assert.equal(r.summary.N, 12);
    assert.equal(r.summary.state, "pretrained");

    // The same examples and fresh head, padded to 128 tokens as the CLI did.
    const { examples } = await loadSplit(getTask("SST-2"), "train", {
      glueDir: sharedGlue(),
      maxExamples: 12,
      seed: 3,
    });
    const tok = await WordPieceTokenizer.fromModelDir(sharedModel());
    const padded = examples.map((e) => tok.encode(e.textA, e.textB, { maxLen: 128, pad: true }));
    const unpadded = examples.map((e) => tok.encode(e.textA, e.textB, { maxLen: 128 }));
    // The padding is real: the examples are shorter than 128 tokens.
    assert.ok(Math.max(...unpadded.map((x) => x.inputIds.length)) < 128);
    assert.ok(padded.every((x) => x.inputIds.length === 128));
    const ck = await loadCheckpoint(sharedModel(), { numLabels: 2, seed: 3, quiet: true });
    const model = new BertClassifier(ck.config, 2, ck.tensors);
    try {
      const reference = await computeFisher(model, [{
        batch: batchFromEncoded(padded),
        labels: examples.map((e) => e.label),
      }], { params: "layernorm", examples: 12, seed: 3 });
      assert.deepEqual([...r.fisher.keys()], [...reference.keys()]);
      for (const [name, t] of reference) assert.deepEqual(r.fisher.get(name)!.data, t.data, name);
    } finally {
      model.dispose();
    }
    // The file holds these scores and says how they were computed.
    const written = await readSafetensorsWithMetadata(out);
    const meta = JSON.parse(written.metadata.normtune);
    assert.equal(meta.kind, "fisher");
    assert.equal(meta.N, 12);
    for (const [name, t] of r.fisher) assert.deepEqual(written.tensors.get(name)!.data, t.data, name);
    // The same configuration again writes the same bytes (no timing in the file).
    assert.equal(meta.seconds, undefined);
    const again = join(dir, "again.safetensors");
    await runFisher(config(again));
    assert.deepEqual(await Deno.readFile(again), await Deno.readFile(out));
  } finally {
    await cleanup();
  }
});

Deno.test("fisherConfig fills defaults and names what is wrong", () => {
  const c = fisherConfig({ model: "m", task: "RTE", examples: 4 });
  assert.equal(c.params, "layernorm");
  assert.equal(c.labels, "true");
  assert.equal(c.batchSize, 8);
  assert.equal(c.split, "train");
  assert.throws(() => fisherConfig({ model: "m", examples: 4 }), /exactly one of a task or an inputs file/);
  assert.throws(() => fisherConfig({ model: "m", task: "RTE" }), /examples N is required/);
  assert.throws(() => fisherConfig({ model: "m", task: "RTE", examples: 0 }), /examples must be a positive/);
  assert.throws(
    () => fisherConfig({ model: "m", inputs: "x", delta: "d", head: "h" }),
    /head and a delta exclude each other/,
  );
  assert.throws(
    () => fisherConfig({ model: "m", task: "RTE", examples: 4, params: "dense" as "all" }),
    /params must be all, layernorm or elementwise/,
  );
});
