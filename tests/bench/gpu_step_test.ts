/**
 * The benchmark on webgpu (in CI on Mesa's llvmpipe): its cases run, time the step asynchronously, train
 * (the loss moves) and the JSON names the adapter. Speed on a software adapter means nothing: only that
 * the case works is checked. Tiny batch: llvmpipe is slow.
 */
import assert from "node:assert/strict";
import { runBench } from "../../lib/bench/run.ts";
import { benchTrainStepAsync, matMulPeakAsync } from "../../lib/bench/gpu_step.ts";
import { getShape } from "../../lib/bench/shapes.ts";
import { initBackend, tf, webgpuAdapter } from "../../lib/tf.ts";

Deno.test("webgpu bench: a layernorm step case trains and the report names the adapter", async () => {
  const lines: string[] = [];
  const report = await runBench({
    shapes: ["tiny"],
    modes: ["layernorm"],
    batch: 2,
    seq: 8,
    warmup: 1,
    repeats: 2,
    torch: false,
    backend: "webgpu",
    log: (line) => lines.push(line),
  });
  assert.equal(report.backend, "webgpu");
  assert.equal(report.adapter, webgpuAdapter());
  assert.ok(report.adapter && report.adapter.length > 0);
  assert.equal(report.cases.length, 1);
  const c = report.cases[0];
  assert.equal(c.error, undefined, c.error);
  assert.equal(c.kind, "layernorm");
  assert.equal(c.workers, 1);
  assert.ok(c.losses.every(Number.isFinite) && c.losses.length === 2);
  assert.notEqual(c.losses[0], c.losses[1], "the loss moves: the update ran");
  assert.ok(c.stepSeconds > 0 && c.minSeconds <= c.stepSeconds);
  assert.ok(lines.some((l) => /eval and Fisher cases are not on webgpu yet/.test(l)));
});

Deno.test("webgpu bench: the step counts the trained parameters and leaks no tensors", async () => {
  await initBackend("webgpu");
  const before = tf.memory().numTensors;
  const shape = getShape("tiny");
  const ln = await benchTrainStepAsync({ shape, mode: "layernorm", batch: 2, seq: 8, warmup: 0, repeats: 1 });
  const full = await benchTrainStepAsync({ shape, mode: "full", batch: 2, seq: 8, warmup: 0, repeats: 1 });
  assert.ok(ln.trainable > 0 && ln.trainable < full.trainable / 100, `${ln.trainable} vs ${full.trainable}`);
  assert.ok(full.flops > ln.flops, "full trains the weights too: more products");
  const peak = await matMulPeakAsync([64, 32, 16], { warmup: 0, repeats: 1 });
  assert.equal(peak.flops, 2 * 64 * 32 * 16);
  assert.ok(peak.gflops > 0);
  assert.equal(tf.memory().numTensors, before);
});
