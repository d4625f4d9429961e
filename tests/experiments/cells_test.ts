/**
 * The study's real executors on a tiny profile (2 tasks, 16 examples, 1 epoch, max length 32): the
 * change and cross-task grids, which between them need every kind (fine-tuning, Fisher, top-k, random
 * and union masks, change), then the notebooks' loader on what they wrote.
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { chooseGemm } from "../../lib/backend/gemm_choice.ts";
import { studyExecutors } from "../../lib/experiments/cells.ts";
import { closure } from "../../lib/experiments/grid.ts";
import {
  type FinetuneRecord,
  finetuneRows,
  loadResults,
  type MaskCellRecord,
  summarize,
} from "../../lib/experiments/load.ts";
import { CONTROL_NAMES, getProfile, type Profile } from "../../lib/experiments/profiles.ts";
import { Runner } from "../../lib/experiments/runner.ts";
import { writeManifest } from "../../lib/experiments/session.ts";
import { ResultStore } from "../../lib/experiments/store.ts";
import {
  changeCell,
  controlCell,
  findGrid,
  finetuneCell,
  fisherCell,
  studyContext,
  studyGrids,
} from "../../lib/experiments/study.ts";
import { readDelta } from "../../lib/tuning/delta.ts";
import { sharedGlue, sharedModel, tempDir } from "../env.ts";

function tinyProfile(): Profile {
  const smoke = getProfile("smoke", sharedModel());
  return {
    ...smoke,
    tasks: ["RTE", "MRPC"],
    train: { ...smoke.train, maxLen: 32, batchSize: 8, maxTrain: 16, maxDev: 16 },
    fisher: { ...smoke.fisher, examples: 8, maxLen: 32 },
    topk: [50],
    crossTaskK: 50,
  };
}

Deno.test("the study's executors compute change, Fisher, masks and masked fine-tuning", async () => {
  const [dir, cleanup] = await tempDir();
  try {
    const ctx = await studyContext(tinyProfile(), { glueDir: sharedGlue() });
    // The rates main would have chosen (change and crosstask train at them).
    const rates = { full: 1e-4, layernorm: 1e-3 };
    const grids = studyGrids(ctx, { RTE: rates, MRPC: rates });
    const store = new ResultStore(join(dir, "results"), join(dir, "runs"));
    const executors = studyExecutors({ modelDir: ctx.modelDir, glueDir: ctx.glueDir, verbose: false });
    const wanted = [findGrid(grids, "change"), findGrid(grids, "crosstask")];
    const cells = closure(wanted.flatMap((g) => g.cells));
    const r = await new Runner({ store, executors }).runAll(wanted.flatMap((g) => g.cells));
    assert.equal(r.computed, cells.length);
    // 2 full runs, 2 changes, 2 Fisher, 2 top-50% masks, 2 unions, 1 random mask, 6 masked runs.
    assert.equal(cells.length, 17);

    const rec = async (id: string) => (await store.read(id))!;
    for (const cell of cells) {
      const record = await rec(cell.id);
      for (const a of record.artefacts) await Deno.stat(join(store.runDir(cell.id), a));
      const bytes = (await Deno.stat(store.resultPath(cell.id))).size;
      assert.ok(bytes < 50_000, `${cell.label}: record of ${bytes} bytes`);
    }

    const fisher = cells.find((c) => c.kind === "fisher" && c.config.task === "RTE")!;
    const f = (await rec(fisher.id)).result as { N: number; records: { component: string; mean: number }[] };
    assert.equal(f.N, 8);
    assert.ok(f.records.some((x) => x.component === "output_layernorm" && x.mean > 0));
    assert.ok(f.records.some((x) => x.component === "word_embeddings"), "params all: every component scored");

    // 2 layers: 5 LayerNorms of 128 gammas and 128 betas.
    const masks = await Promise.all(
      cells.filter((c) => c.kind === "mask").map((c) => rec(c.id)),
    ) as MaskCellRecord[];
    for (const m of masks) {
      assert.equal(m.result.candidates, 1280);
      if (m.config.method === "union") assert.ok(m.result.selected >= 640 && m.result.selected <= 1280);
      else assert.equal(m.result.selected, 640, `${m.label}`);
      const sum = Object.values(m.result.byLayer).reduce((a, b) => a + b, 0);
      assert.equal(sum, m.result.selected);
    }

    for (const cell of cells.filter((c) => c.kind === "finetune")) {
      const ft = (await rec(cell.id)) as FinetuneRecord;
      assert.ok(Number.isFinite(ft.result.score), `${cell.label}: a score`);
      // 16 examples in batches of 8: one epoch of full fine-tuning, two of a mask (the sparse rule).
      assert.equal(ft.result.steps, cell.config.mode === "full" ? 2 : 4, cell.label);
      if (cell.config.mode === "mask") {
        const mask = (await rec(cell.deps.mask.id)) as MaskCellRecord;
        assert.equal(
          ft.result.trainable.encoderTrainable,
          mask.result.selected,
          `${cell.label}: trains its mask`,
        );
        assert.equal(ft.result.mask?.selected, mask.result.selected);
      } else assert.equal(ft.result.trainable.encoderShare, 1);
    }

    const change = cells.find((c) => c.kind === "change" && c.config.task === "MRPC")!;
    const ch = (await rec(change.id)).result as {
      records: { meanAbsChange: number }[];
      ranking: { component: string }[];
    };
    assert.ok(ch.records.length > 20 && ch.records.every((x) => x.meanAbsChange >= 0));
    assert.ok(!ch.ranking.some((x) => x.component === "classifier"));

    // Nothing is redone.
    assert.equal((await new Runner({ store, executors }).runAll(cells)).computed, 0);

    // The loader: manifests pick the current records, in grid order.
    const study = { profile: ctx.profile, ctx, grids, store };
    for (const g of wanted) await writeManifest(study, g);
    const loaded = await loadResults({ profile: "smoke", dir: store.results });
    assert.equal(loaded.records.length, 17);
    assert.equal(loaded.stale, 0);
    assert.deepEqual(
      loaded.grid("crosstask").map((x) => x.id),
      findGrid(grids, "crosstask").cells.map((c) => c.id),
    );
    const rows = summarize(loaded.finetune.filter((x) => x.config.mask), ["task", "mask.method"]);
    assert.deepEqual(rows.map((x) => `${x.task} ${x["mask.method"]} ${x.n}`).sort(), [
      "MRPC fisher 1",
      "MRPC random 1",
      "MRPC union 1",
      "RTE fisher 1",
      "RTE random 1",
      "RTE union 1",
    ]);
  } finally {
    await cleanup();
  }
});

Deno.test("the controls run through the executors: head, head-pooler, full and LayerNorm from random init", async () => {
  const [dir, cleanup] = await tempDir();
  try {
    const profile: Profile = { ...tinyProfile(), tasks: ["RTE", "MRPC"], controls: [...CONTROL_NAMES] };
    const ctx = await studyContext(profile, { glueDir: sharedGlue() });
    const cells = CONTROL_NAMES.map((c) => controlCell(ctx, "RTE", c, 0, 1e-3));
    const store = new ResultStore(join(dir, "results"), join(dir, "runs"));
    const executors = studyExecutors({ modelDir: ctx.modelDir, glueDir: ctx.glueDir, verbose: false });
    assert.equal((await new Runner({ store, executors }).runAll(cells)).computed, 4);
    const records = await Promise.all(cells.map(async (c) => (await store.read(c.id))! as FinetuneRecord));
    assert.deepEqual(finetuneRows({ finetune: records }).map((r) => [r.method, r.mode, r.init]), [
      ["head", "head", "pretrained"],
      ["head-pooler", "head-pooler", "pretrained"],
      ["full-random-init", "full", "random"],
      ["layernorm-random-init", "layernorm", "random"],
    ]);
    const trained = records.map((r) => r.result.trainable.encoderTrainable);
    assert.deepEqual(trained, [0, 128 * 128 + 128, 4385920, 5 * 2 * 128]);
    // A random-init run's delta holds every tensor (base + delta is the fine-tuned model); the others only
    // what they trained and the head.
    const { tensors: full } = await readDelta(join(store.runDir(cells[2].id), "delta.safetensors"));
    assert.equal(full.size, 3 + 2 + 2 * 16 + 2 + 2, "embeddings 3 + LN 2, 16 per layer, pooler, head");
    const keys = async (i: number) =>
      [...(await readDelta(join(store.runDir(cells[i].id), "delta.safetensors"))).tensors.keys()].sort();
    assert.deepEqual(await keys(0), ["classifier.bias", "classifier.weight"]);
    assert.deepEqual(await keys(1), [
      "bert.pooler.dense.bias",
      "bert.pooler.dense.weight",
      "classifier.bias",
      "classifier.weight",
    ]);
  } finally {
    await cleanup();
  }
});

Deno.test("the study on OpenBLAS: Fisher and fine-tuning cells computed with it, described in their records; a cell declared for another product is refused", async () => {
  const [dir, cleanup] = await tempDir();
  try {
    const ctx = await studyContext(tinyProfile(), {
      backend: "wasm",
      gemm: "openblas",
      glueDir: sharedGlue(),
    });
    assert.equal(ctx.backend, "wasm+openblas-t1");
    const cells = [fisherCell(ctx, "RTE"), finetuneCell(ctx, "RTE", "layernorm", 0, 1e-3)];
    const store = new ResultStore(join(dir, "results"), join(dir, "runs"));
    const env = { modelDir: ctx.modelDir, glueDir: ctx.glueDir, backend: "wasm" as const, verbose: false };
    const executors = studyExecutors({ ...env, gemm: "openblas" });
    assert.equal((await new Runner({ store, executors }).runAll(cells)).computed, 2);
    for (const c of cells) {
      const rec = (await store.read(c.id))!;
      assert.equal(rec.config.backend, "wasm+openblas-t1");
      assert.deepEqual(rec.meta?.openblas, ctx.compute!.openblas, c.kind);
    }
    // The run folder says so too: one thread, whatever this machine's cores.
    const config = JSON.parse(await Deno.readTextFile(join(store.runDir(cells[1].id), "config.json")));
    assert.equal(config.identity.backend, "wasm+openblas-t1");
    assert.equal(config.gemm.threads, 1);
    // Executors on the wasm product refuse a cell whose id says OpenBLAS (its record would lie).
    await assert.rejects(
      new Runner({
        store: new ResultStore(join(dir, "r2"), join(dir, "runs2")),
        executors: studyExecutors(env),
      })
        .runAll([cells[1]]),
      /declared for backend wasm\+openblas-t1 but was computed with wasm/,
    );
  } finally {
    chooseGemm("wasm", { name: "wasm" });
    await cleanup();
  }
});

Deno.test("a fine-tuning cell that diverges writes a finished record with no score; rerunning keeps it", async () => {
  const [dir, cleanup] = await tempDir();
  try {
    const ctx = await studyContext(tinyProfile(), { glueDir: sharedGlue() });
    // An absurd rate: the first update after warm-up sends the weights to infinity.
    const cell = finetuneCell(ctx, "RTE", "full", ctx.profile.changeSeed, 1e38);
    const store = new ResultStore(join(dir, "results"), join(dir, "runs"));
    const executors = studyExecutors({ modelDir: ctx.modelDir, glueDir: ctx.glueDir, verbose: false });
    const logs: string[] = [];
    const first = await new Runner({ store, executors, log: (l) => logs.push(l) }).runAll([cell]);
    assert.equal(first.computed, 1, "a diverged run is not a failed cell");
    const rec = (await store.read(cell.id)) as FinetuneRecord;
    assert.ok(rec, "the diverged run has its record");
    assert.equal(rec.result.score, null);
    assert.equal(rec.result.finalScore, null);
    assert.ok(rec.result.diverged, "marked as diverged");
    const d = rec.result.diverged!;
    assert.ok(Number.isInteger(d.step) && d.step >= 1 && d.epoch === 1 && d.batch >= 1, JSON.stringify(d));
    assert.match(d.reason, /NaN|Infinity|non-finite/);
    assert.equal(rec.result.steps, d.step - 1);
    assert.deepEqual(rec.artefacts, [], "no delta");
    assert.deepEqual([rec.result.task, rec.result.mode, rec.result.seed], ["RTE", "full", 0]);
    assert.equal(rec.result.trainable.encoderShare, 1, "trainable counts from the run's config.json");
    assert.equal(rec.result.trainExamples, 16);
    assert.ok(logs.some((l) => l.includes(`${cell.id} diverged at step ${d.step}`)), logs.join("\n"));
    // Read as NaN, never 0.
    const [row] = finetuneRows({ finetune: [rec] });
    assert.ok(Number.isNaN(row.score));
    assert.equal(row.divergedAt, d.step);

    // Finished: a new runner (a rerun of reproduce) does not train it again.
    const again = new Runner({ store, executors });
    assert.equal(await again.isDone(cell), true);
    const rerun = await again.runAll([cell]);
    assert.deepEqual([rerun.computed, rerun.skipped], [0, 1]);
    assert.equal((await store.read(cell.id))!.finishedAt, rec.finishedAt, "the record was not rewritten");

    // A change cell reading this run's delta fails, naming the divergence (not a missing file).
    const change = changeCell(ctx, "RTE", 1e38);
    await assert.rejects(
      new Runner({ store, executors }).runAll([change]),
      new RegExp(`the full fine-tuning it compares, .*\\(${cell.id}\\), diverged at step ${d.step}`),
    );
  } finally {
    await cleanup();
  }
});

Deno.test("a cell whose configuration is wrong is refused by the same checks as the command line, naming the cell", async () => {
  const executors = studyExecutors({ modelDir: sharedModel(), glueDir: sharedGlue(), backend: "cpu" });
  const ctx = (kind: string, config: Record<string, unknown>) =>
    ({
      cell: { id: "c0ffee", kind, config, deps: {} },
      dir: "/nonexistent/never-written",
      deps: {},
      log: () => {},
    }) as unknown as Parameters<typeof executors.finetune.run>[0];
  await assert.rejects(
    executors.finetune.run(ctx("finetune", { task: "RTE", mode: "full", seed: 0, epochs: 0 })),
    /cell c0ffee \(finetune\): epochs must be a positive integer, got 0/,
  );
  await assert.rejects(
    executors.finetune.run(ctx("finetune", { task: 7, mode: "full" })),
    /cell c0ffee \(finetune\): "task" must be a task name, got 7/,
  );
  await assert.rejects(
    executors.fisher.run(
      ctx("fisher", { task: "RTE", examples: "many", params: "layernorm", labels: "true" }),
    ),
    /cell c0ffee \(fisher\): "examples" must be a number, got "many"/,
  );
  await assert.rejects(
    executors.fisher.run(
      ctx("fisher", { task: "RTE", examples: 8, params: "dense", labels: "true", seed: 0, maxLen: 64 }),
    ),
    /cell c0ffee \(fisher\): params must be all, layernorm or elementwise/,
  );
  await assert.rejects(
    executors.mask.run(ctx("mask", { method: "fisher", pct: 250, per: "global" })),
    /cell c0ffee \(mask\): mask percentage must be in \(0, 100\], got 250/,
  );
});
