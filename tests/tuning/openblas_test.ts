/**
 * `finetune` with `gemm: "openblas"` on bert-tiny-mlm (RTE, 32 examples, 4 steps): close to the wasm
 * product's run, bitwise repeatable, in process and on two workers; its own identity (a wasm run folder
 * is not resumed with it), OpenBLAS described in config.json; no tensors leaked.
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { blasThreads, chooseGemm } from "../../lib/backend/gemm_choice.ts";
import { initBackend, tf } from "../../lib/tf.ts";
import { readDelta } from "../../lib/tuning/delta.ts";
import { finetune, type FinetuneOptions, type RunResult } from "../../lib/tuning/trainer.ts";
import { sharedGlue, sharedModel, tempDir } from "../env.ts";
import { bitwiseEqual } from "./fixture.ts";

await initBackend("wasm");

function options(out: string, over: Partial<FinetuneOptions> = {}): FinetuneOptions {
  return {
    model: sharedModel("bert-tiny-mlm"),
    task: "RTE",
    mode: "layernorm",
    out,
    epochs: 1,
    batchSize: 8,
    maxLen: 32,
    maxTrain: 32,
    maxDev: 16,
    lr: 1e-3,
    glueDir: sharedGlue(),
    workers: 1,
    backend: "wasm",
    quiet: true,
    ...over,
  };
}

/** Largest absolute difference between two runs' deltas (same tensors). */
async function deltaDiff(a: RunResult, b: RunResult): Promise<{ max: number; bitwise: boolean }> {
  const [da, db] = [await readDelta(a.deltaPath), await readDelta(b.deltaPath)];
  assert.deepEqual([...da.tensors.keys()].sort(), [...db.tensors.keys()].sort());
  let max = 0, bitwise = true;
  for (const [name, t] of da.tensors) {
    const u = db.tensors.get(name)!.data;
    bitwise &&= bitwiseEqual(t.data, u);
    for (let i = 0; i < t.data.length; i++) max = Math.max(max, Math.abs(t.data[i] - u[i]));
  }
  return { max, bitwise };
}

Deno.test("finetune on OpenBLAS: close to the wasm product, repeats bitwise, its own identity; no leaks", async () => {
  const [dir, cleanup] = await tempDir();
  const tensorsBefore = tf.memory().numTensors;
  try {
    const wasm = await finetune(options(join(dir, "wasm"), { gemm: "wasm" }));
    assert.equal(wasm.config.identity.backend, "wasm");
    assert.equal(wasm.config.gemm, undefined);
    const a = await finetune(options(join(dir, "a"), { gemm: "openblas" }));
    const b = await finetune(options(join(dir, "b"), { gemm: "openblas" }));
    assert.equal(tf.memory().numTensors, tensorsBefore, "finetune leaked tensors");
    assert.equal(a.metrics.steps, 4);
    const threads = blasThreads(1);
    assert.equal(a.config.identity.backend, `wasm+openblas-t${threads}`);
    assert.equal(a.config.gemm?.threads, threads);
    assert.match(a.config.gemm?.config ?? "", /OpenBLAS \d/);
    assert.ok((a.config.gemm?.core ?? "").length > 0);
    assert.ok((await deltaDiff(a, b)).bitwise, "two OpenBLAS runs differ");
    assert.deepEqual(a.metrics.epochs.map((e) => e.trainLoss), b.metrics.epochs.map((e) => e.trainLoss));
    const { max } = await deltaDiff(a, wasm);
    assert.ok(max < 1e-4, `OpenBLAS and wasm deltas differ by ${max}`);
    const [la, lw] = [a.metrics.epochs[0].trainLoss, wasm.metrics.epochs[0].trainLoss];
    assert.ok(Math.abs(la - lw) < 1e-4, `train loss ${la} vs ${lw}`);
    // The wasm run's folder is not continued (nor its result taken) on another product.
    await assert.rejects(
      finetune(options(join(dir, "wasm"), { gemm: "openblas" })),
      /holds a run with other arguments \(backend: saved "wasm", now "wasm\+openblas-t\d"\)/,
    );
  } finally {
    chooseGemm("wasm", { name: "wasm" });
    await cleanup();
  }
});

Deno.test("finetune on OpenBLAS with two workers: one OpenBLAS thread each, repeats bitwise; no leaks", async () => {
  const [dir, cleanup] = await tempDir();
  const tensorsBefore = tf.memory().numTensors;
  try {
    const run = (out: string) => finetune(options(join(dir, out), { gemm: "openblas", workers: 2 }));
    const a = await run("a");
    const b = await run("b");
    assert.equal(tf.memory().numTensors, tensorsBefore, "finetune leaked tensors");
    assert.equal(a.config.identity.workers, 2);
    assert.equal(a.config.identity.backend, "wasm+openblas-t1");
    assert.ok((await deltaDiff(a, b)).bitwise, "two OpenBLAS runs on two workers differ");
    assert.ok(a.metrics.epochs.every((e) => Number.isFinite(e.trainLoss)));
  } finally {
    chooseGemm("wasm", { name: "wasm" });
    await cleanup();
  }
});

Deno.test("finetune's default worker count on OpenBLAS: one for full fine-tuning, two for LayerNorm", async () => {
  const [dir, cleanup] = await tempDir();
  try {
    const two = navigator.hardwareConcurrency >= 2;
    const run = (mode: string) =>
      finetune(
        options(join(dir, mode), { mode, gemm: "openblas", workers: "auto", batchSize: 32, maxDev: 8 }),
      );
    const full = await run("full");
    assert.equal(full.config.identity.workers ?? 1, 1);
    assert.equal(full.config.identity.backend, `wasm+openblas-t${blasThreads(1)}`);
    const ln = await run("layernorm");
    assert.equal(ln.config.identity.workers ?? 1, two ? 2 : 1);
    assert.equal(ln.config.identity.backend, `wasm+openblas-t${blasThreads(two ? 2 : 1)}`);
  } finally {
    await cleanup();
  }
});
