/** The commands `grid`, `run-cell` (as subprocesses on the smoke profile) and the progress lines. */
import assert from "node:assert/strict";
import { dirname, join } from "node:path";
import { makeCell } from "../../lib/experiments/grid.ts";
import { Runner } from "../../lib/experiments/runner.ts";
import {
  chosenRates,
  estimateText,
  jobsFrom,
  parseShard,
  progressPrinter,
  shardCells,
} from "../../lib/experiments/session.ts";
import { ResultStore } from "../../lib/experiments/store.ts";
import { ROOT } from "../../lib/util/paths.ts";
import { sharedGlue, sharedModel, tempDir } from "../env.ts";
import { PROFILES } from "../../lib/experiments/profiles.ts";
import { findGrid, selectionCells, studyGrids } from "../../lib/experiments/study.ts";
import { fakeContext } from "./fake_context.ts";
import { parseFlags } from "../../lib/cli/flags.ts";
import { passthrough, STUDY_FLAGS } from "../../lib/cli/grid.ts";

async function normtune(args: string[], env: Record<string, string>) {
  const out = await new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", join(ROOT, "lib/cli/main.ts"), ...args],
    env: {
      GLUE_DIR: sharedGlue(),
      NORMTUNE_MODELS_DIR: dirname(sharedModel()),
      NORMTUNE_PROFILE: "smoke",
      ...env,
    },
    stdout: "piped",
    stderr: "piped",
  }).output();
  const text = (b: Uint8Array) => new TextDecoder().decode(b);
  return { code: out.code, stdout: text(out.stdout), stderr: text(out.stderr) };
}

Deno.test("grid lists, counts and estimates; run-cell runs one cell by index", async () => {
  const [dir, cleanup] = await tempDir();
  try {
    const env = { NORMTUNE_RESULTS: join(dir, "results"), NORMTUNE_RUNS: join(dir, "runs") };
    const list = await normtune(["grid", "--list"], env);
    assert.equal(list.code, 0, list.stderr);
    assert.match(list.stdout, /^fisher\s+2 cells/m);
    // 2 tasks x (4 main methods + 4 controls) x 2 rates
    assert.match(list.stdout, /^main\s+32 cells/m);
    // Not declared before main has chosen the LayerNorm rates, but counted.
    assert.match(list.stdout, /^crosstask\s+6 cells .*\[6 wait on main's chosen rates\]$/m);

    // OpenBLAS products: other cells (other ids), the same grids.
    const listed = (text: string) => [...text.matchAll(/^\s*\d+\s+([0-9a-f]{16})\s/gm)].map((m) => m[1]);
    const wasmList = await normtune(["grid", "--grid", "fisher", "--list"], env);
    const blasList = await normtune(["grid", "--grid", "fisher", "--list", "--gemm", "openblas"], env);
    assert.equal(blasList.code, 0, blasList.stderr);
    assert.equal(listed(blasList.stdout).length, 2);
    assert.equal(listed(wasmList.stdout).length, 2);
    assert.equal(listed(blasList.stdout).filter((id) => listed(wasmList.stdout).includes(id)).length, 0);
    assert.deepEqual(
      passthrough(parseFlags(["--gemm", "openblas", "--verbose"], STUDY_FLAGS)),
      ["--gemm", "openblas", "--verbose"],
      "grid --jobs hands the product to its shards",
    );

    const count = await normtune(["grid", "--grid", "main", "--count"], env);
    assert.equal(count.stdout.trim(), "32");
    const topkCount = await normtune(["grid", "--grid", "topk", "--count"], env);
    assert.equal(topkCount.stdout.trim(), "8", "a job array submitted before main gets every index");

    const bad = await normtune(["run-cell", "--grid", "main", "--index", "32"], env);
    assert.equal(bad.code, 2);
    assert.match(bad.stderr, /--index 32 is out of range: grid "main" has 32 cells \(0\.\.31\)/);
    const unknown = await normtune(["grid", "--grid", "mian"], env);
    assert.match(unknown.stderr, /unknown grid "mian"/);
    const early = await normtune(["run-cell", "--grid", "topk", "--index", "0"], env);
    assert.notEqual(early.code, 0);
    assert.match(early.stderr, /grid topk: 8 of 8 cells wait .*SST-2: main has 0 of 2 layernorm runs/);

    // Seed-major, then task, method and rate: index 4 is SST-2's LayerNorm at the first rate.
    const one = await normtune(["run-cell", "--grid", "main", "--index", "4"], env);
    assert.equal(one.code, 0, one.stderr);
    assert.match(one.stderr, /main#4 \[1\/1\] finetune SST-2 layernorm lr 1e-3 seed 0/);
    const ids = [...Deno.readDirSync(join(dir, "results"))].map((e) => e.name).sort();
    assert.equal(ids.length, 2, `one record and the manifests folder, got ${ids}`);
    assert.ok(ids.includes("grids"));

    const status = await normtune(["grid", "--grid", "main", "--list"], env);
    const lines = status.stdout.trim().split("\n");
    assert.equal(lines.length, 32);
    assert.match(lines[4], /^\s+4\s+[0-9a-f]{16}\s+done\s+finetune SST-2 layernorm lr 1e-3 seed 0$/);
    assert.equal(lines.filter((l) => /\stodo\s/.test(l)).length, 31);
    assert.equal(ids.find((n) => n.endsWith(".json")), `${lines[4].trim().split(/\s+/)[1]}.json`);

    const est = await normtune(["grid", "--grid", "main", "--estimate"], env);
    assert.equal(est.code, 0, est.stderr);
    assert.match(est.stderr, /grid main \(profile smoke\): 32 cells, 1 finished, 31 to run/);
    // Per task and rate: full and its random-init control; BitFit, the LayerNorms and LayerNorm from random
    // init (one finished); the two head controls. 2 tasks x 2 rates each.
    assert.match(est.stderr, /finetune\/sparse\s+15 cells\s+\d+ units\s+x [\d.]+ m?s \(measured here\)/);
    assert.match(est.stderr, /finetune\/full\s+8 cells\s+\d+ units\s+x 91\.0 ms \(nominal\)/);
    assert.match(est.stderr, /finetune\/head\s+8 cells\s+\d+ units\s+x 29\.0 ms \(nominal\)/);
    assert.match(est.stderr, /expected: \d+:\d\d/);
    // A waiting grid is estimated with stand-ins and says what it waits on.
    const topk = await normtune(["grid", "--grid", "topk", "--estimate"], env);
    assert.equal(topk.code, 0, topk.stderr);
    assert.match(topk.stderr, /finetune\/mask\s+8 cells/);
    assert.match(
      topk.stderr,
      /grid topk: 8 of 8 cells wait on other grids' results .*STS-B: main has 0 of 2/,
    );
  } finally {
    await cleanup();
  }
});

Deno.test("chosenRates: a task's rate once main has every run that chooses it, else how far it is", async () => {
  const [dir, cleanup] = await tempDir();
  try {
    const ctx = fakeContext(PROFILES.smoke); // SST-2, STS-B; rates full {1e-4, 1e-3}, sparse {1e-3, 1e-2}
    const store = new ResultStore(join(dir, "r"), join(dir, "w"));
    type Result = Record<string, unknown>;
    const finish = async (cells: ReturnType<typeof selectionCells>, result: (lr: number) => Result) => {
      for (const c of cells) {
        await store.write({
          id: c.id,
          kind: c.kind,
          label: c.label,
          config: c.config,
          deps: {},
          result: result(Number(c.config.lr)),
          artefacts: [],
          cost: 1,
          timings: { startedAt: "", finishedAt: "", seconds: 1 },
          finishedAt: "",
          host: "test",
        });
      }
    };
    assert.deepEqual(await chosenRates(ctx, store), {
      "SST-2": { full: "main has 0 of 2 full runs", layernorm: "main has 0 of 2 layernorm runs" },
      "STS-B": { full: "main has 0 of 2 full runs", layernorm: "main has 0 of 2 layernorm runs" },
    });
    // SST-2's LayerNorm: the larger rate scores better; its full runs: one of two finished.
    await finish(selectionCells(ctx, "SST-2", "layernorm"), (lr) => ({ score: lr === 1e-2 ? 0.7 : 0.6 }));
    await finish(selectionCells(ctx, "SST-2", "full").slice(0, 1), () => ({ score: 0.8 }));
    const chosen = await chosenRates(ctx, store);
    assert.deepEqual(chosen["SST-2"], { full: "main has 1 of 2 full runs", layernorm: 1e-2 });
    const topk = findGrid(studyGrids(ctx, chosen), "topk");
    assert.ok(
      topk.cells.length > 0 && topk.cells.every((c) => c.config.task === "SST-2" && c.config.lr === 1e-2),
    );
    assert.equal(topk.waiting?.length, 1, "STS-B still waits");

    // STS-B's LayerNorm: the larger rate diverged (its record has no score, as lib/experiments/cells.ts
    // writes it). The task's search is finished all the same, and the diverged rate ranks last.
    await finish(
      selectionCells(ctx, "STS-B", "layernorm"),
      (lr) =>
        lr === 1e-2
          ? { score: null, diverged: { step: 2, epoch: 1, batch: 2, reason: "loss is NaN" } }
          : { score: -0.2 }, // a correlation below chance: still above a diverged run
    );
    const after = await chosenRates(ctx, store);
    assert.equal(after["STS-B"]?.layernorm, 1e-3, "the diverged rate ranks below a finite -0.2");
    const declared = findGrid(studyGrids(ctx, after), "topk");
    assert.equal(declared.waiting?.length ?? 0, 0, "no task waits on main's LayerNorm rate any more");
    assert.ok(declared.cells.some((c) => c.config.task === "STS-B" && c.config.lr === 1e-3));
  } finally {
    await cleanup();
  }
});

Deno.test("progress lines say cells done / total, the cell, and the ETA", () => {
  const lines: string[] = [];
  const print = progressPrinter("grid main", (l) => lines.push(l));
  const cell = makeCell("finetune", { a: 1 }, { label: "finetune RTE full seed 0" });
  print({ type: "plan", total: 10, todo: 4, cost: 100 });
  print({ type: "start", cell, index: 7, total: 10, reason: "not run", etaSeconds: 3725 });
  print({ type: "start", cell, index: 8, total: 10, reason: "artefacts missing" });
  print({ type: "done", cell, index: 8, total: 10, seconds: 42, bytes: 1000 });
  assert.deepEqual(lines, [
    "grid main: 10 cells, 6 finished, 4 to run",
    `grid main [7/10] finetune RTE full seed 0 (${cell.id})  ETA 1:02:05`,
    `grid main [8/10] finetune RTE full seed 0 (${cell.id}) [artefacts missing]  ETA ?`,
    "grid main [8/10] done in 0:42: finetune RTE full seed 0",
  ]);
});

Deno.test("the estimate uses measured rates once cells of a class have run", async () => {
  const [dir, cleanup] = await tempDir();
  try {
    const store = new ResultStore(join(dir, "r"), join(dir, "w"));
    const cells = [1, 2, 3].map((n) =>
      makeCell("finetune", { n }, { cost: 100, costClass: "finetune/full" })
    );
    const executors = { finetune: { run: () => Promise.resolve({ result: {} }) } };
    const nominal = new Runner({ store, executors, secondsPerUnit: { "finetune/full": 0.5 } });
    const before = await estimateText(nominal, cells, "t");
    assert.match(before, /3 cells\s+300 units\s+x 500\.0 ms \(nominal\) = 2:30/);
    assert.match(before, /expected: 2:30/);
    await nominal.runAll([cells[0]]);
    const measured = new Runner({ store, executors, secondsPerUnit: { "finetune/full": 0.5 } });
    await measured.learnRates();
    const after = await estimateText(measured, cells, "t");
    assert.match(after, /t: 3 cells, 1 finished, 2 to run/);
    assert.match(after, /2 cells\s+200 units\s+x [\d.]+ m?s \(measured here\)/);
    assert.equal(measured.rate("finetune/full")?.measured, true);
    const none = await estimateText(new Runner({ store, executors }), cells, "t");
    assert.match(none, /\(no rate yet\)/);
    assert.match(none, /expected: at least/);
  } finally {
    await cleanup();
  }
});

Deno.test("shards split a grid's cells round-robin", () => {
  assert.deepEqual(parseShard("1/3"), { k: 1, n: 3 });
  assert.throws(() => parseShard("3/3"), /--shard must be K\/N with 0 <= K < N, got "3\/3"/);
  assert.throws(() => parseShard("a/b"), /--shard must be K\/N/);
  const cells = [0, 1, 2, 3, 4, 5, 6];
  const parts = [0, 1, 2].map((k) => shardCells(cells, { k, n: 3 }));
  assert.deepEqual(parts, [[0, 3, 6], [1, 4], [2, 5]]);
  assert.equal(jobsFrom(4), 4);
  assert.throws(() => jobsFrom(0), /positive integer/);
});

Deno.test("grid --jobs 2 runs the grid as two processes that share the results", async () => {
  const [dir, cleanup] = await tempDir();
  try {
    const env = { NORMTUNE_RESULTS: join(dir, "results"), NORMTUNE_RUNS: join(dir, "runs") };
    const r = await normtune(["grid", "--grid", "fisher", "--jobs", "2"], env);
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stderr, /grid fisher 0\/2: 1 computed/);
    assert.match(r.stderr, /grid fisher 1\/2: 1 computed/);
    const again = await normtune(["grid", "--grid", "fisher"], env);
    assert.match(again.stderr, /grid fisher: 0 computed, 2 already finished/);
  } finally {
    await cleanup();
  }
});
