import assert from "node:assert/strict";
import { join } from "node:path";
import type { BenchReport } from "../../lib/bench/report.ts";
import { blasThreads, currentGemm } from "../../lib/backend/gemm_choice.ts";
import { main } from "../../tools/bench.ts";
import { tempDir } from "../env.ts";

Deno.test("deno task bench --quick: every case runs (1 and 2 workers) and the JSON is complete", async () => {
  const [dir, cleanup] = await tempDir();
  try {
    const out = join(dir, "bench.json");
    const code = await main(["--quick", "--out", out]);
    assert.equal(code, 0);
    const report = JSON.parse(await Deno.readTextFile(out)) as BenchReport;
    assert.equal(report.quick, true);
    assert.equal(report.torch.available, false);
    assert.deepEqual(report.shapes.map((s) => s.shape), ["tiny"]);
    assert.equal(report.shapes[0].matmulForms.length, 6);
    const kinds = report.cases.map((c) => `${c.kind}/${c.workers}`);
    assert.deepEqual(kinds, [
      "full/1",
      "full/2",
      "bitfit/1",
      "bitfit/2",
      "layernorm/1",
      "layernorm/2",
      "eval/1",
      "fisher-layernorm/1",
    ]);
    for (const c of report.cases) {
      assert.equal(c.error, undefined, `${c.kind}: ${c.error}`);
      assert.ok(c.losses.length > 0 && c.losses.every(Number.isFinite), `${c.kind}: losses ${c.losses}`);
      assert.ok(c.stepSeconds > 0 && c.flops > 0 && c.gflops > 0, c.kind);
      assert.ok(c.memory.rssBytes > 0);
    }
    // Trained counts: every parameter, the biases, the LayerNorms (+ the head in each mode).
    const trainable = Object.fromEntries(
      report.cases.filter((c) => c.workers === 1).map((c) => [c.kind, c.trainable]),
    );
    assert.ok(
      trainable.full > 4e6 && trainable.bitfit < 2e4 && trainable.layernorm === 1538,
      JSON.stringify(trainable),
    );
    // 1 and 2 workers train the same parameters from the same start: the first losses agree.
    const first = (kind: string, w: number) => report.cases.find((c) => c.kind === kind && c.workers === w)!;
    assert.equal(first("layernorm", 1).trainable, first("layernorm", 2).trainable);
    assert.ok(report.cases.find((c) => c.kind === "layernorm" && c.workers === 1)!.kernels!.length > 3);
  } finally {
    await cleanup();
  }
});

Deno.test("deno task bench --quick --gemm wasm,openblas: every case on each product, named in the JSON", async () => {
  const [dir, cleanup] = await tempDir();
  try {
    const out = join(dir, "bench.json");
    const args = ["--quick", "--modes", "layernorm", "--gemm", "wasm,openblas", "--no-profile", "--out", out];
    assert.equal(await main(args), 0);
    const report = JSON.parse(await Deno.readTextFile(out)) as BenchReport;
    assert.match(report.openblas?.config ?? "", /OpenBLAS/);
    const t = blasThreads(1);
    assert.deepEqual(report.cases.map((c) => `${c.kind}/${c.workers}/${c.gemm}`), [
      `layernorm/1/wasm`,
      `layernorm/1/openblas-t${t}`,
      `layernorm/2/wasm`,
      `layernorm/2/openblas-t1`,
      `eval/1/wasm`,
      `eval/1/openblas-t${t}`,
      `fisher-layernorm/1/wasm`,
      `fisher-layernorm/1/openblas-t${t}`,
    ]);
    for (const c of report.cases) assert.equal(c.error, undefined, `${c.kind} ${c.gemm}: ${c.error}`);
    // The same step from the same weights on either product: the same loss to rounding.
    const loss = (gemm: string) =>
      report.cases.find((c) => c.kind === "layernorm" && c.gemm === gemm)!.losses[0];
    assert.ok(Math.abs(loss("wasm") - loss(`openblas-t${t}`)) < 1e-4);
    // The fused kernels' products on each product (OpenBLAS on 1 thread and on a process's default).
    const kp = report.shapes[0].kernelProducts!;
    assert.deepEqual(
      kp.map((r) => `${r.form}/${r.gemm}`),
      ["wasm", ...new Set(["openblas-t1", `openblas-t${t}`])].flatMap((
        g,
      ) => [`kernelDense/${g}`, `kernelScores/${g}`]),
    );
    assert.ok(kp.every((r) => r.gflops > 0));
    assert.equal(currentGemm().name, "wasm", "the bench puts the product back");
  } finally {
    await cleanup();
  }
});

Deno.test("bench flags are checked", async () => {
  await assert.rejects(() => main(["--shapes", "huge"]), /--shapes: "huge" is not one of tiny, mini, base/);
  await assert.rejects(() => main(["--workers", "0"]), /--workers: "0" is not a positive integer/);
  await assert.rejects(() => main(["--gemm", "mkl"]), /--gemm: "mkl" is not one of wasm, openblas/);
});

Deno.test("deno task bench --job --quick: a whole finetune job on 64 RTE examples, and its JSON", async () => {
  const [dir, cleanup] = await tempDir();
  try {
    const out = join(dir, "bench.json");
    const code = await main(["--job", "--quick", "--modes", "layernorm", "--workers", "1", "--out", out]);
    assert.equal(code, 0);
    const report = JSON.parse(await Deno.readTextFile(out)) as BenchReport;
    assert.equal(report.quick, true);
    // As the step cases: --quick runs no PyTorch reference, and says so.
    assert.equal(report.torch.available, false);
    assert.match(report.torch.note, /not run/);
    assert.deepEqual([report.shapes, report.cases], [[], []]);
    const job = report.job!;
    assert.deepEqual(
      [
        job.settings.task,
        job.settings.examples,
        job.settings.devExamples,
        job.settings.batch,
        job.settings.maxLen,
      ],
      ["RTE", 64, 32, 32, 128],
    );
    assert.deepEqual(job.models, { tiny: "bert-tiny-v2" });
    assert.equal(job.warmup, true);
    assert.deepEqual(job.cases.map((c) => `${c.shape}/${c.mode}/${c.workers}`), ["tiny/layernorm/1"]);
    const c = job.cases[0];
    assert.equal(c.error, undefined);
    assert.deepEqual([c.examples, c.steps, c.devExamples, c.trainable], [64, 2, 32, 1538]);
    assert.ok(c.paddingShare >= 0 && c.paddingShare < 1, `padding ${c.paddingShare}`);
    assert.ok(c.trainSeconds > 0 && c.evalSeconds > 0 && c.cpuSeconds > 0);
    assert.ok(c.wholeSeconds >= c.trainSeconds + c.evalSeconds, JSON.stringify(c));
    assert.ok(Number.isFinite(c.trainLoss) && c.examplesPerSecond > 0);
    assert.deepEqual([c.torch, c.torchRatio, c.torchNote], [undefined, undefined, undefined]);
  } finally {
    await cleanup();
  }
});

Deno.test("bench --job flags are checked", async () => {
  await assert.rejects(() => main(["--job-examples", "10"]), /go with --job/);
  await assert.rejects(() => main(["--job", "--warmup", "3"]), /--warmup is for the step cases, not --job/);
  await assert.rejects(() => main(["--job", "--repeats", "0"]), /--repeats must be a positive integer/);
  await assert.rejects(
    () => main(["--job", "--job-examples", "0"]),
    /--job-examples must be a positive integer/,
  );
  await assert.rejects(
    () => main(["--job", "--job-models", "huge=x"]),
    /--job-models: "huge=x" is not SHAPE=DIR/,
  );
});
