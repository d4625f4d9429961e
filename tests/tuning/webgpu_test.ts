/**
 * Fine-tuning and evaluation on webgpu (in CI Mesa's llvmpipe) through the real `finetune()`: every read
 * the trainer, its evaluation and its state saving make is asynchronous, so a run completes there, and
 * its result equals the same run on cpu within float32 tolerance. Smoke-sized: the tiny world's golden
 * checkpoint (hidden 16), 12 training examples, one epoch of batch 4, the state saved after every update.
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { loadCheckpoint } from "../../lib/bert/checkpoint.ts";
import { BertClassifier } from "../../lib/bert/model.ts";
import { WordPieceTokenizer } from "../../lib/bert/tokenizer.ts";
import { getTask, loadSplit } from "../../lib/glue/mod.ts";
import { type BackendName, initBackend, tf } from "../../lib/tf.ts";
import { readDelta } from "../../lib/tuning/delta.ts";
import { encodeExamples, evaluateModel } from "../../lib/tuning/evaluate.ts";
import { finetune, type RunResult } from "../../lib/tuning/trainer.ts";
import { type TinyWorld, tinyWorld } from "./fixture.ts";

function run(w: TinyWorld, backend: BackendName, mode: string, workers?: number): Promise<RunResult> {
  return finetune({
    workers,
    model: w.model,
    task: "RTE",
    mode,
    out: join(w.dir, `${mode}-${backend}`),
    epochs: 1,
    batchSize: 4,
    maxLen: 16,
    lr: 1e-3,
    saveEvery: 1,
    glueDir: w.glue,
    backend,
    quiet: true,
  });
}

/** The largest |a - b| over the elements. */
function maxDiff(a: Float32Array, b: Float32Array): number {
  assert.equal(a.length, b.length);
  return a.reduce((m, x, i) => Math.max(m, Math.abs(x - b[i])), 0);
}

for (const mode of ["layernorm", "full"]) {
  Deno.test(`webgpu finetune ${mode}: the run completes and equals the same run on cpu`, async () => {
    const w = await tinyWorld(12, 8);
    try {
      const cpu = await run(w, "cpu", mode);
      const before = tf.memory().numTensors;
      const gpu = await run(w, "webgpu", mode);
      assert.equal(tf.getBackend(), "webgpu");
      assert.equal(tf.memory().numTensors, before, "finetune leaked tensors on webgpu");
      assert.equal(gpu.config.identity.backend, "webgpu");
      assert.equal(gpu.metrics.finished, true);
      assert.equal(gpu.metrics.steps, 3);
      for (const f of ["config.json", "metrics.json", "delta.safetensors"]) await Deno.stat(join(gpu.out, f));
      await assert.rejects(Deno.stat(join(gpu.out, "state")), Deno.errors.NotFound);

      const [lossGpu, lossCpu] = [gpu.metrics.epochs[0].trainLoss, cpu.metrics.epochs[0].trainLoss];
      assert.ok(Number.isFinite(lossGpu), `train loss ${lossGpu}`);
      assert.ok(
        Math.abs(lossGpu - lossCpu) <= 1e-5 * Math.max(1, Math.abs(lossCpu)),
        `${lossGpu} vs ${lossCpu}`,
      );

      const [dg, dc] = [await readDelta(gpu.deltaPath), await readDelta(cpu.deltaPath)];
      assert.deepEqual([...dg.tensors.keys()], [...dc.tensors.keys()]);
      const base = (await loadCheckpoint(w.model, { numLabels: 2, quiet: true })).tensors;
      let moved = 0;
      for (const [name, t] of dc.tensors) {
        // The key bias cancels in the softmax: its exact gradient is 0, and Adam's first steps turn the
        // rounding noise of either sign into steps of the full learning rate (see tests/tuning/step_test.ts).
        if (name.endsWith("attention.self.key.bias")) continue;
        const d = maxDiff(dg.tensors.get(name)!.data, t.data);
        assert.ok(d <= 1e-5, `${name}: webgpu and cpu differ by ${d}`);
        if (base.has(name) && maxDiff(t.data, base.get(name)!.data) > 1e-4) moved++;
      }
      assert.ok(moved > 0, "nothing trained: the comparison tests nothing");
    } finally {
      await w.cleanup();
    }
  });
}

Deno.test("webgpu finetune: --workers (CPU data parallelism) is refused before anything is written", async () => {
  const w = await tinyWorld(4, 4);
  try {
    await assert.rejects(
      run(w, "webgpu", "layernorm", 2),
      /--workers 2 is for CPU backends; on webgpu leave it out/,
    );
    await assert.rejects(Deno.stat(join(w.dir, "layernorm-webgpu")), Deno.errors.NotFound);
  } finally {
    await w.cleanup();
  }
});

Deno.test("webgpu evaluation: STS-B scores and RTE classes equal cpu's", async () => {
  const w = await tinyWorld(4, 24);
  try {
    for (const name of ["STS-B", "RTE"]) {
      const task = getTask(name);
      const { examples } = await loadSplit(task, "dev", { glueDir: w.glue });
      const set = encodeExamples(await WordPieceTokenizer.fromModelDir(w.model), examples, 24);
      const ck = await loadCheckpoint(w.model, { numLabels: task.numLabels, seed: 3, quiet: true });
      const scored = async (backend: BackendName) => {
        await initBackend(backend);
        const model = new BertClassifier(ck.config, task.numLabels, ck.tensors);
        const before = tf.memory().numTensors;
        try {
          return await evaluateModel(model, task, set, { batchSize: 7 });
        } finally {
          assert.equal(tf.memory().numTensors, before, `${backend}: evaluation leaked tensors`);
          model.dispose();
        }
      };
      const cpu = await scored("cpu"), gpu = await scored("webgpu");
      if (task.numLabels === 1) {
        assert.ok(new Set(cpu.predictions).size > 1, "scores differ between examples");
        const d = maxDiff(Float32Array.from(gpu.predictions), Float32Array.from(cpu.predictions));
        assert.ok(d <= 1e-5, `STS-B scores differ by ${d}`);
      } else {
        assert.deepEqual(gpu.predictions, cpu.predictions);
        assert.deepEqual(gpu.metrics, cpu.metrics);
      }
    }
  } finally {
    await w.cleanup();
  }
});
