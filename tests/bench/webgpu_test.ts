/**
 * The benchmark on webgpu (in CI on Mesa's llvmpipe): the step cases time the trainer's own StepRunner
 * (clipping and the non-finite check included), the eval and Fisher cases run, and the JSON names the
 * adapter. Speed on a software adapter means nothing: only that the cases work is checked. Tiny batch:
 * llvmpipe is slow.
 */
import assert from "node:assert/strict";
import { runBench } from "../../lib/bench/run.ts";
import { benchTrainStep } from "../../lib/bench/cases.ts";
import { matMulPeakAsync } from "../../lib/bench/matmul.ts";
import { getShape } from "../../lib/bench/shapes.ts";
import { initBackend, tf, webgpuAdapter } from "../../lib/tf.ts";

Deno.test("webgpu bench: a layernorm step, eval and Fisher run and the report names the adapter", async () => {
  const report = await runBench({
    shapes: ["tiny"],
    modes: ["layernorm"],
    workers: [1, 2],
    batch: 2,
    seq: 8,
    warmup: 1,
    repeats: 2,
    torch: false,
    backend: "webgpu",
    log: () => {},
  });
  assert.equal(report.backend, "webgpu");
  assert.equal(report.adapter, webgpuAdapter());
  assert.ok(report.adapter && report.adapter.length > 0);
  assert.deepEqual(report.cases.map((c) => c.kind), ["layernorm", "eval", "fisher-layernorm"]);
  for (const c of report.cases) {
    assert.equal(c.error, undefined, c.error);
    assert.equal(c.workers, 1, "data-parallel workers are for CPUs: one process on a GPU");
    assert.equal(c.kernels, undefined, "no per-kernel profile on a GPU");
    assert.ok(c.losses.length > 0 && c.losses.every(Number.isFinite), `${c.kind}: ${c.losses}`);
    assert.ok(c.stepSeconds > 0 && c.minSeconds <= c.stepSeconds);
  }
  const step = report.cases[0];
  assert.equal(step.losses.length, 2);
  assert.notEqual(step.losses[0], step.losses[1], "the loss moves: the update ran");
  assert.ok(report.cases[2].trainable > 0, "Fisher scored the LayerNorm parameters");
});

Deno.test("webgpu bench: the step counts the trained parameters and leaks no tensors", async () => {
  await initBackend("webgpu");
  const before = tf.memory().numTensors;
  const shape = getShape("tiny");
  const o = { shape, batch: 2, seq: 8, warmup: 0, repeats: 1 };
  const ln = await benchTrainStep({ ...o, mode: "layernorm" });
  const full = await benchTrainStep({ ...o, mode: "full" });
  assert.ok(ln.trainable > 0 && ln.trainable < full.trainable / 100, `${ln.trainable} vs ${full.trainable}`);
  assert.ok(full.flops > ln.flops, "full trains the weights too: more products");
  const peak = await matMulPeakAsync([64, 32, 16], { warmup: 0, repeats: 1 });
  assert.equal(peak.flops, 2 * 64 * 32 * 16);
  assert.ok(peak.gflops > 0);
  assert.equal(tf.memory().numTensors, before);
});
