/** The commands `grid`, `run-cell` (as subprocesses on the smoke profile) and the progress lines. */
import assert from "node:assert/strict";
import { dirname, join } from "node:path";
import { makeCell } from "../../lib/experiments/grid.ts";
import { Runner } from "../../lib/experiments/runner.ts";
import {
  estimateText,
  jobsFrom,
  parseShard,
  progressPrinter,
  shardCells,
} from "../../lib/experiments/session.ts";
import { ResultStore } from "../../lib/experiments/store.ts";
import { ROOT } from "../../lib/util/paths.ts";
import { sharedGlue, sharedModel, tempDir } from "../env.ts";

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
    // 2 tasks x (4 main methods + 4 controls)
    assert.match(list.stdout, /^main\s+16 cells/m);
    assert.match(list.stdout, /^crosstask\s+6 cells/m);

    const count = await normtune(["grid", "--grid", "main", "--count"], env);
    assert.equal(count.stdout.trim(), "16");

    const bad = await normtune(["run-cell", "--grid", "main", "--index", "16"], env);
    assert.equal(bad.code, 2);
    assert.match(bad.stderr, /--index 16 is out of range: grid "main" has 16 cells \(0\.\.15\)/);
    const unknown = await normtune(["grid", "--grid", "mian"], env);
    assert.match(unknown.stderr, /unknown grid "mian"/);

    const one = await normtune(["run-cell", "--grid", "main", "--index", "2"], env);
    assert.equal(one.code, 0, one.stderr);
    assert.match(one.stderr, /main#2 \[1\/1\] finetune SST-2 layernorm seed 0/);
    const ids = [...Deno.readDirSync(join(dir, "results"))].map((e) => e.name).sort();
    assert.equal(ids.length, 2, `one record and the manifests folder, got ${ids}`);
    assert.ok(ids.includes("grids"));

    const status = await normtune(["grid", "--grid", "main", "--list"], env);
    const lines = status.stdout.trim().split("\n");
    assert.equal(lines.length, 16);
    assert.match(lines[2], /^\s+2\s+[0-9a-f]{16}\s+done\s+finetune SST-2 layernorm seed 0$/);
    assert.equal(lines.filter((l) => /\stodo\s/.test(l)).length, 15);
    assert.equal(ids.find((n) => n.endsWith(".json")), `${lines[2].trim().split(/\s+/)[1]}.json`);

    const est = await normtune(["grid", "--grid", "main", "--estimate"], env);
    assert.equal(est.code, 0, est.stderr);
    assert.match(est.stderr, /grid main \(profile smoke\): 16 cells, 1 finished, 15 to run/);
    assert.match(est.stderr, /finetune\/sparse\s+11 cells\s+\d+ units\s+x [\d.]+ m?s \(measured here\)/);
    assert.match(est.stderr, /finetune\/full\s+4 cells\s+\d+ units\s+x 50\.0 ms \(nominal\)/);
    assert.match(est.stderr, /expected: \d+:\d\d/);
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
