import assert from "node:assert/strict";
import { pl, resultsFrame, rowsFrame } from "../../lib/experiments/frame.ts";
import { FINETUNE_COLUMNS, finetuneRows, methodOf, scoreOf, summarize } from "../../lib/experiments/load.ts";
import type { GridManifest } from "../../lib/experiments/store.ts";
import { run, seeds } from "../report/study_fixtures.ts";

const records = [
  ...seeds("full", [0.8, 0.7]),
  ...seeds("layernorm", [0.6, 0.5]),
  ...seeds("full", [0.55, 0.45], { init: "random" }),
  run("mask", 0.65, { mask: { method: "fisher", pct: 10 }, task: "MRPC" }),
  run("mask", 0.62, { mask: { method: "random", pct: 10 }, task: "MRPC", seed: 1 }),
];
const manifest = (grid: string, ids: string[]): GridManifest => ({
  grid,
  about: "",
  profile: "cpu",
  cells: ids.map((id, index) => ({ index, id, kind: "finetune", label: id })),
  closure: ids,
});
// The mask runs are listed by topk and crosstask: the first grid in study order wins.
const grids = {
  crosstask: manifest("crosstask", records.slice(6).map((r) => r.id)),
  main: manifest("main", records.slice(0, 6).map((r) => r.id)),
  topk: manifest("topk", records.slice(6).map((r) => r.id)),
};

Deno.test("finetuneRows: one flat row per cell; random init and masks named apart; grid from manifests", () => {
  const rows = finetuneRows({ finetune: records, grids });
  assert.equal(rows.length, records.length);
  assert.deepEqual(Object.keys(rows[0]), [...FINETUNE_COLUMNS]);
  assert.deepEqual(rows.map((r) => r.method), [
    "full",
    "full",
    "layernorm",
    "layernorm",
    "full-random-init",
    "full-random-init",
    "fisher",
    "random",
  ]);
  assert.deepEqual(rows.map((r) => r.init), [
    ...Array(4).fill("pretrained"),
    "random",
    "random",
    "pretrained",
    "pretrained",
  ]);
  assert.deepEqual(rows.map((r) => r.grid), [...Array(6).fill("main"), "topk", "topk"]);
  assert.deepEqual(rows.map((r) => r.k), [...Array(6).fill(null), 10, 10]);
  assert.deepEqual(rows.slice(0, 2).map((r) => [r.task, r.seed, r.score, r.lr]), [["RTE", 0, 0.8, 1e-3], [
    "RTE",
    1,
    0.7,
    1e-3,
  ]]);
  assert.equal(rows[2].encoderTrainable, 1280);
  assert.equal(methodOf(records[4]), "full-random-init");
  // Without manifests: no grid.
  assert.ok(finetuneRows({ finetune: records }).every((r) => r.grid === null));
});

Deno.test("resultsFrame: typed columns, and a filter / group / pivot give the records' own means", () => {
  const df = resultsFrame({ finetune: records, grids });
  assert.deepEqual(df.columns, [...FINETUNE_COLUMNS]);
  assert.equal(df.height, records.length);
  assert.ok(df.getColumn("score").dtype.equals(pl.Float64));
  assert.ok(df.getColumn("seed").dtype.equals(pl.Int64));
  const means = df.filter(pl.col("grid").eq(pl.lit("main")))
    .groupBy("task", "method")
    .agg(pl.col("score").mean().alias("mean"), pl.col("score").count().alias("n"))
    .sort("method");
  const got = means.toRecords().map((r) => [r.method, Number((r.mean as number).toFixed(6)), r.n]);
  assert.deepEqual(got, [["full", 0.75, 2], ["full-random-init", 0.5, 2], ["layernorm", 0.55, 2]]);
  const wide = df.filter(pl.col("grid").eq(pl.lit("main"))).pivot("score", { index: "seed", on: "method" })
    .sort("seed");
  assert.deepEqual(wide.columns, ["seed", "full", "layernorm", "full-random-init"]);
  assert.deepEqual(wide.toRecords()[1], { seed: 1, full: 0.7, layernorm: 0.5, "full-random-init": 0.45 });
  // No masked runs at all: k is still a (null) Float64 column, not an untyped one.
  const empty = rowsFrame(finetuneRows({ finetune: records.slice(0, 2) }));
  assert.ok(empty.getColumn("k").dtype.equals(pl.Float64));
  assert.equal(empty.getColumn("k").nullCount(), 2);
  assert.equal(rowsFrame([]).height, 0);
});

Deno.test("a diverged run: score NaN (never 0) in rows, summaries and the DataFrame, divergedAt set", () => {
  const ok = run("layernorm", 0.6, { seed: 0 });
  const bad = run("layernorm", 0.6, { seed: 1, diverged: true });
  assert.equal(bad.result.score, null);
  assert.ok(Number.isNaN(scoreOf(bad)));
  assert.equal(scoreOf(ok), 0.6);
  const rows = finetuneRows({ finetune: [ok, bad] });
  assert.deepEqual(rows.map((r) => r.divergedAt), [null, 3]);
  assert.ok(Number.isNaN(rows[1].score) && Number.isNaN(rows[1].finalScore));
  const [sum] = summarize([ok, bad], ["task", "mode"]);
  assert.equal(sum.n, 2);
  assert.ok(Number.isNaN(sum.mean), "a mean over a diverged run is NaN, as in rates.ts");
  const df = rowsFrame(rows);
  assert.ok(df.getColumn("divergedAt").dtype.equals(pl.Int64));
  assert.deepEqual(df.getColumn("divergedAt").toArray(), [null, 3]);
  assert.ok(Number.isNaN(df.getColumn("score").toArray()[1] as number));
  const mean = df.groupBy("task").agg(pl.col("score").mean().alias("mean")).toRecords()[0].mean;
  assert.ok(Number.isNaN(mean as number), `polars mean ${mean}`);
});
