import assert from "node:assert/strict";
import {
  autoWorkers,
  DEFAULTS,
  HYPERPARAMETER_NAMES,
  HYPERPARAMETERS,
  pickHyperparameters,
  resolveHyperparameters,
} from "../../lib/tuning/hyperparameters.ts";
import { defaultLr } from "../../lib/tuning/modes.ts";

Deno.test("resolveHyperparameters: defaults, the mode's lr, optional members only when they matter", () => {
  const h = resolveHyperparameters({}, "layernorm");
  assert.deepEqual(h, {
    lr: defaultLr("layernorm"),
    epochs: DEFAULTS.epochs,
    batchSize: 32,
    maxLen: 128,
    seed: 42,
    maxTrain: null,
    maxDev: null,
    warmup: 0.06,
    weightDecay: 0.01,
    clip: 1,
    evalBatchSize: 64,
  });
  const set = resolveHyperparameters({ microBatch: 2, workers: 2, init: "random", maxTrain: 100 }, "full");
  assert.equal(set.microBatch, 2);
  assert.equal(set.workers, 2);
  assert.equal(set.init, "random");
  assert.equal(set.maxTrain, 100);
  // One worker and no micro-batch leave the identity as runs saved before those settings existed.
  assert.ok(!("workers" in resolveHyperparameters({ workers: 1, microBatch: 0 }, "full")));
  assert.ok(!("microBatch" in resolveHyperparameters({ workers: 1, microBatch: 0 }, "full")));
});

Deno.test("resolveHyperparameters: every bad value is an error naming the setting", () => {
  const bad: [Record<string, unknown>, RegExp][] = [
    [{ lr: -1 }, /lr must be a number >= 0, got -1/],
    [{ epochs: 0 }, /epochs must be a positive integer, got 0/],
    [{ batchSize: 2.5 }, /batch size must be a positive integer/],
    [{ seed: -3 }, /seed must be an integer >= 0/],
    [{ maxTrain: 0 }, /max train must be a positive integer/],
    [{ warmup: 2 }, /warm-up ratio must be in \[0, 1\]/],
    [{ weightDecay: -0.1 }, /weight decay must be >= 0/],
    [{ clip: -1 }, /clip must be >= 0/],
    [{ evalBatchSize: 0 }, /eval batch size must be a positive integer/],
    [{ microBatch: 1.5 }, /micro batch must be a positive integer/],
    [{ workers: 2.5 }, /workers must be a positive integer/],
    [{ init: "zeros" }, /init must be one of/],
  ];
  for (const [given, message] of bad) assert.throws(() => resolveHyperparameters(given, "full"), message);
});

Deno.test("every hyperparameter has one flag; a cell's configuration yields only hyperparameters", () => {
  const flags = HYPERPARAMETER_NAMES.map((n) => HYPERPARAMETERS[n].flag);
  assert.equal(new Set(flags).size, flags.length);
  assert.ok(flags.includes("batch-size") && flags.includes("micro-batch"));
  const cell = { version: 3, task: "RTE", mode: "full", lr: 1e-4, epochs: 2, maxTrain: null, data: { x: 1 } };
  assert.deepEqual(pickHyperparameters(cell), { lr: 1e-4, epochs: 2, maxTrain: null });
});

Deno.test("autoWorkers on wasm: two on two cores or more when each worker gets 16 rows, else one", () => {
  assert.equal(autoWorkers("wasm", DEFAULTS.batchSize, 2), 2);
  assert.equal(autoWorkers("wasm", 64, 16), 2);
  assert.equal(autoWorkers("wasm", 31, 2), 1);
  assert.equal(autoWorkers("wasm", 32, 1), 1);
  // Full fine-tuning on OpenBLAS keeps one worker (two OpenBLAS threads); other modes and products do not.
  assert.equal(autoWorkers("wasm", 32, 2, { mode: "full", gemm: "openblas" }), 1);
  assert.equal(autoWorkers("wasm", 32, 2, { mode: "layernorm", gemm: "openblas" }), 2);
  assert.equal(autoWorkers("wasm", 32, 2, { mode: "bitfit", gemm: "openblas" }), 2);
  assert.equal(autoWorkers("wasm", 32, 2, { mode: "full", gemm: "wasm" }), 2);
  assert.equal(autoWorkers("cpu", 32, 2, { mode: "full", gemm: "wasm" }), 2);
  assert.equal(autoWorkers("webgpu", 32, 2, { mode: "layernorm" }), 1);
  // Not a default of the resolved hyperparameters: grid cells keep one worker and their identities.
  assert.ok(!("workers" in resolveHyperparameters({}, "layernorm")));
});
