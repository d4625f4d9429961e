import assert from "node:assert/strict";
import { existsSync } from "node:fs";
import { join } from "node:path";
import {
  BASE_JOB,
  JOB,
  jobMicroBatch,
  jobModel,
  jobOptions,
  jobPlan,
  jobSettings,
  medianRun,
  QUICK_JOB,
  runJobs,
} from "../../lib/bench/job.ts";
import { currentGemm } from "../../lib/backend/gemm_choice.ts";
import { sharedGlue, sharedModel, tempDir } from "../env.ts";

/** Whether Debian's python3 has torch (the reference runs where it does; elsewhere its absence is a note). */
async function hasTorch(): Promise<boolean> {
  try {
    const r = await new Deno.Command("/usr/bin/python3", { args: ["-c", "import torch"], stderr: "null" })
      .output();
    return r.success;
  } catch {
    return false;
  }
}

Deno.test("jobPlan writes the batches finetune trains on, bucketed and padded to each batch's longest", async () => {
  const [dir, cleanup] = await tempDir();
  try {
    const settings = { ...JOB, ...QUICK_JOB };
    const options = jobOptions(settings, sharedModel("bert-tiny-v2"), "bitfit", 1, dir, {
      glueDir: sharedGlue(),
    });
    const files = { input: join(dir, "job.json"), weights: join(dir, "w.safetensors") };
    const plan = await jobPlan(options, files);
    assert.deepEqual([plan.examples, plan.steps], [64, 2]);
    const input = JSON.parse(await Deno.readTextFile(files.input));
    assert.equal(input.weights, files.weights);
    assert.ok(existsSync(files.weights));
    assert.deepEqual([input.lr, input.weight_decay, input.clip, input.total_steps], [1e-3, 0.01, 1, 2]);
    type B = { rows: number; seq: number; input_ids: number[]; attention_mask: number[]; labels: number[] };
    const batches = input.batches as B[];
    assert.equal(batches.reduce((n, b) => n + b.rows, 0), 64);
    for (const b of batches) {
      assert.ok(b.seq <= 128 && b.input_ids.length === b.rows * b.seq && b.labels.length === b.rows);
      // Padded to its longest row: some row attends to the last position.
      assert.ok(b.attention_mask.some((m, i) => m === 1 && i % b.seq === b.seq - 1));
    }
    // BitFit: every bias and the head; weight decay only on the head's weight.
    const trained = input.trained as string[];
    assert.ok(trained.every((n) => n.endsWith(".bias") || n.startsWith("classifier.")));
    assert.deepEqual(input.decayed, ["classifier.weight"]);
  } finally {
    await cleanup();
  }
});

Deno.test("runJobs: finetune and PyTorch's same job (2 repeats: the median run, every run's time), or a note where python3-torch is missing", async () => {
  const torch = await hasTorch();
  const job = await runJobs({
    shapes: ["tiny"],
    modes: ["bitfit"],
    workers: [1],
    settings: QUICK_JOB,
    warmup: false,
    repeats: 2,
    glueDir: sharedGlue(),
  }, () => {});
  assert.equal(job.warmup, false);
  assert.equal(job.cases.length, 1);
  const [c] = job.cases;
  assert.equal(c.error, undefined);
  assert.deepEqual([c.mode, c.workers, c.examples, c.steps], ["bitfit", 1, 64, 2]);
  assert.equal(c.trainRuns?.length, 2);
  assert.equal(c.trainSeconds, Math.min(...c.trainRuns!), "of two runs, the lower middle");
  if (torch) {
    assert.ok(c.torch, c.torchNote);
    assert.equal(c.torch.trainRuns?.length, 2);
    assert.equal(c.torch.trainSeconds, Math.min(...c.torch.trainRuns!));
    // The same batches and the same trained parameters.
    assert.deepEqual([c.torch.steps, c.torch.trainable, c.torch.threads], [c.steps, c.trainable, 2]);
    assert.ok(c.torch.trainSeconds > 0 && Number.isFinite(c.torch.trainLoss));
    assert.equal(c.torchRatio, c.trainSeconds / c.torch.trainSeconds);
  } else {
    assert.equal(c.torch, undefined);
    assert.match(c.torchNote ?? "", /torch_job\.py|python3/);
  }
});

Deno.test("runJobs --gemm wasm,openblas: each job on each product in turn, named; the same batches to rounding", async () => {
  const job = await runJobs({
    shapes: ["tiny"],
    modes: ["layernorm"],
    workers: [2],
    gemms: ["wasm", "openblas"],
    settings: QUICK_JOB,
    warmup: false,
    torch: false,
    glueDir: sharedGlue(),
  }, () => {});
  assert.deepEqual(job.cases.map((c) => `${c.workers}/${c.gemm}`), ["2/wasm", "2/openblas-t1"]);
  for (const c of job.cases) assert.equal(c.error, undefined, c.error);
  const [wasm, blas] = job.cases;
  assert.equal(wasm.steps, blas.steps);
  assert.ok(Math.abs(wasm.trainLoss - blas.trainLoss) < 1e-4, `${wasm.trainLoss} vs ${blas.trainLoss}`);
  assert.equal(currentGemm().name, "wasm", "runJobs puts the product back");
});

Deno.test("jobModel: tiny is bert-tiny-v2; mini a mini-shaped folder, else a random one written for the run", async () => {
  sharedModel("bert-tiny-v2");
  const [dir, cleanup] = await tempDir();
  try {
    assert.equal((await jobModel("tiny", dir)).about, "bert-tiny-v2");
    const mini = await jobModel("mini", dir);
    assert.match(
      mini.about,
      /^random mini \(4x256; no mini-shaped folder in .*\), bert-tiny-v2's vocabulary$/,
    );
    const config = JSON.parse(await Deno.readTextFile(join(mini.path, "config.json")));
    assert.deepEqual(
      [config.num_hidden_layers, config.hidden_size, config.num_attention_heads, config.intermediate_size],
      [4, 256, 4, 1024],
    );
    assert.ok(existsSync(join(mini.path, "vocab.txt")) && existsSync(join(mini.path, "model.safetensors")));
  } finally {
    await cleanup();
  }
});

Deno.test("jobSettings: bert-base's job is 8 x 128 on 64 examples unless given; its full runs in micro-batches", () => {
  assert.deepEqual(jobSettings("tiny"), JOB);
  assert.deepEqual(jobSettings("mini", { examples: 100 }), { ...JOB, examples: 100 });
  const base = jobSettings("base");
  assert.deepEqual([base.batch, base.maxLen, base.examples, base.devExamples], [8, 128, 64, 64]);
  assert.equal(jobSettings("base", { examples: 640, batch: 16 }).examples, 640);
  assert.equal(jobSettings("base", { examples: 640, batch: 16 }).batch, 16);
  assert.equal(BASE_JOB.batch, 8);
  assert.equal(jobMicroBatch("base", "full"), 2);
  assert.equal(jobMicroBatch("base", "full", "webgpu"), undefined);
  assert.equal(jobMicroBatch("base", "layernorm"), undefined);
  assert.equal(jobMicroBatch("tiny", "full"), undefined);
  const o = jobOptions(base, "m", "full", 2, "/tmp/x", { microBatch: jobMicroBatch("base", "full") });
  assert.deepEqual([o.batchSize, o.maxTrain, o.maxDev, o.microBatch, o.workers], [8, 64, 64, 2, 2]);
});

Deno.test("medianRun: the middle run; of an even count the lower middle; none of none", () => {
  const id = (x: number) => x;
  assert.equal(medianRun([3, 1, 2], id), 2);
  assert.equal(medianRun([4, 1, 3, 2], id), 2);
  assert.equal(medianRun([5], id), 5);
  assert.equal(medianRun([], id), undefined);
});
