import assert from "node:assert/strict";
import { join } from "node:path";
import { rankComponents } from "../../lib/analysis/weight_change.ts";
import { loadResults } from "../../lib/experiments/load.ts";
import { CONTROL_NAMES } from "../../lib/experiments/profiles.ts";
import {
  closestK,
  componentLayerMatrix,
  controlScores,
  divergedRows,
  layerNormFisherMatrix,
  MAIN_METHODS,
  mainScores,
  mainTableRows,
  maskPlacement,
  maskScores,
  modelCaveat,
  modelName,
  notEnoughData,
  placementBars,
  pointsText,
  rankComponentRows,
  rankingTable,
  rateLines,
  rateNote,
  rateScores,
  rateTableRows,
  scoreBars,
  studyHeader,
  topkLines,
} from "../../lib/report/study_views.ts";
import { groupedBars, lineBands } from "../../lib/report/plot.ts";
import { tempDir } from "../env.ts";
import { changeRecord, componentRows, maskRecord, run, seeds, study } from "./study_fixtures.ts";

Deno.test("rankComponentRows: n-weighted over layers, classifier and null values left out, as change.ts ranks", () => {
  const rows = componentRows("meanAbsChange", {
    query: 1,
    output_layernorm: 3,
    attention_output_layernorm: 2,
    classifier: 100,
  });
  // One layer of the query changes more: the aggregate is the element-weighted mean over kinds and layers.
  rows.find((r) => r.component === "query" && r.layer === 1 && r.kind === "weight")!.meanAbsChange = 5;
  const ranked = rankComponentRows(rows, "meanAbsChange");
  assert.deepEqual(ranked.map((r) => r.name), ["output_layernorm", "query", "attention_output_layernorm"]);
  // query: weights 512 x 2 layers (values 1 and 5), biases 128 x 2 (value 1)
  const q = (512 * 1 + 512 * 5 + 256 * 1) / 1280;
  assert.ok(Math.abs(ranked[1].value - q) < 1e-12);
  // The library's own ranking agrees on the order and the values.
  const lib = rankComponents(
    rows.map((r) => ({ ...r, component: r.component as "query", meanAbsBase: 1, relativeChange: null })),
  );
  assert.deepEqual(lib.map((r) => r.component), ranked.map((r) => r.name));
  assert.ok(Math.abs(lib[1].meanAbsChange - q) < 1e-12);

  const groups = rankComponentRows(rows, "meanAbsChange", { by: "group" });
  // attention = the query alone (2.6); LayerNorm = (3 x 512 + 2 x 512) / 1024 = 2.5
  assert.deepEqual(groups.map((g) => g.name), ["attention", "layernorm"]);
  assert.ok(Math.abs(groups[1].value - 2.5) < 1e-12);
  const withNull = [{ component: "query", layer: 0, kind: "weight" as const, n: 10, rel: null }];
  assert.deepEqual(rankComponentRows(withNull, "rel"), []);
});

Deno.test("componentLayerMatrix: encoder components x layers, log10 turns zeros into gaps", () => {
  const rows = componentRows("mean", { query: 1e-4, output_layernorm: 1e-2, pooler: 5 });
  rows.find((r) => r.component === "query" && r.layer === 1 && r.kind === "weight")!.mean = 0;
  rows.find((r) => r.component === "query" && r.layer === 1 && r.kind === "bias")!.mean = 0;
  const m = componentLayerMatrix(rows, "mean", { log10: true });
  assert.deepEqual(m.x, ["layer 0", "layer 1"]);
  assert.deepEqual(m.y, ["query", "output_layernorm"]); // the pooler has no layer
  assert.ok(Math.abs((m.z[0][0] as number) + 4) < 1e-12);
  assert.equal(m.z[0][1], null);
  assert.ok(Math.abs((m.z[1][1] as number) + 2) < 1e-12);
  const lin = componentLayerMatrix(rows, "mean", { kind: "bias" });
  assert.equal(lin.z[1][0], 1e-2);
});

Deno.test("mainScores and mainTableRows: mean and sample std over seeds, mask runs apart, task means", () => {
  const data = study({
    finetune: [
      ...seeds("full", [0.8, 0.82, 0.84]),
      ...seeds("layernorm", [0.7, 0.7, 0.7]),
      run("layernorm", 0.5, { mask: { method: "fisher", pct: 10 } }),
      ...seeds("full", [0.6], { task: "MRPC", metric: "f1" }),
      ...seeds("layernorm", [0.4], { task: "MRPC", metric: "f1" }),
    ],
  });
  const s = mainScores(data);
  assert.equal(s.length, 4);
  const full = s[0];
  assert.equal(full.method, "full");
  assert.equal(full.n, 3);
  assert.ok(Math.abs(full.mean - 0.82) < 1e-12);
  assert.ok(Math.abs(full.std - 0.02) < 1e-12);
  assert.equal(full.ids.length, 3);
  assert.equal(s[1].trainable, 1280);
  const rows = mainTableRows(s);
  assert.equal(rows.length, 6);
  assert.equal(rows[0]["score (x100, mean ± std)"], "82.00 ± 2.00");
  assert.equal(rows[3]["score (x100, mean ± std)"], "40.00 (1 seed)");
  assert.equal(rows[4].task, "mean of 2 task(s)");
  assert.equal(rows[4]["score (x100, mean ± std)"], "71.00");

  const bars = scoreBars(s, [{ method: "full" }, { method: "layernorm" }]);
  assert.deepEqual(bars.tasks, ["RTE", "MRPC"]);
  assert.deepEqual(bars.series[1].values.map((v) => Math.round(v)), [70, 40]);
  assert.ok(bars.series[1].errors.every((e) => Math.abs(e) < 1e-9));
});

Deno.test("controlScores: controls by method (random init apart from its mode), in the table after the main ones", () => {
  const data = study({
    finetune: [
      ...seeds("full", [0.8, 0.82]),
      ...seeds("full", [0.5, 0.52], { init: "random" }),
      ...seeds("head", [0.6, 0.6]),
      ...seeds("head-pooler", [0.65, 0.63]),
      ...seeds("layernorm", [0.55, 0.55], { init: "random" }),
    ],
  });
  assert.deepEqual(mainScores(data).map((g) => [g.method, g.mean]), [["full", 0.81]]);
  const c = controlScores(data);
  assert.deepEqual(c.map((g) => [g.method, g.n]), [
    ["full-random-init", 2],
    ["head", 2],
    ["head-pooler", 2],
    ["layernorm-random-init", 2],
  ]);
  assert.ok(Math.abs(c[0].mean - 0.51) < 1e-12);
  assert.equal(c[1].trainable, 0);
  const rows = mainTableRows([...mainScores(data), ...c], [...MAIN_METHODS, ...CONTROL_NAMES]);
  assert.deepEqual(rows.slice(0, 5).map((r) => r.method), [
    "Full fine-tuning",
    "Head only (control)",
    "Pooler + head (control)",
    "Full fine-tuning from random init (control)",
    "LayerNorm from random init (control)",
  ]);
  assert.equal(rows[3]["score (x100, mean ± std)"], "51.00 ± 1.41");
  assert.equal(rows.length, 10, "five rows, then the five means over tasks");
});

Deno.test("the learning-rate search: best rate in the tables, every rate in the sensitivity lines", () => {
  const data = study({
    finetune: [
      ...seeds("full", [0.7, 0.72], { lr: 1e-4 }),
      ...seeds("full", [0.8, 0.82], { lr: 3e-4 }),
      ...seeds("full", [0.6, 0.6], { lr: 1e-3 }),
      ...seeds("layernorm", [0.6, 0.6], { lr: 1e-2 }),
      ...seeds("layernorm", [0.55, 0.55], { lr: 1e-3 }),
      ...seeds("head", [0.5, 0.52], { lr: 1e-3 }),
      ...seeds("layernorm", [0.4, 0.4], { lr: 1e-3, task: "MRPC" }),
    ],
  });
  const main = mainScores(data);
  assert.deepEqual(main.map((g) => [g.task, g.method, g.lr, g.n]), [
    ["RTE", "full", 3e-4, 2],
    ["RTE", "layernorm", 1e-2, 2],
    ["MRPC", "layernorm", 1e-3, 2],
  ]);
  assert.ok(Math.abs(main[0].mean - 0.81) < 1e-12);
  assert.equal(rateNote(main[0]), "3e-4 of {1e-4, 3e-4, 1e-3}");
  assert.equal(rateNote(main[1]), "1e-2 of {1e-3, 1e-2}, at the edge");
  assert.equal(rateNote(main[2]), "1e-3", "a one-rate search says only its rate");
  const rows = mainTableRows([...main, ...controlScores(data)], [...MAIN_METHODS, ...CONTROL_NAMES]);
  assert.deepEqual(rows.slice(0, 3).map((r) => [r.method, r["lr (best of those tried)"]]), [
    ["Full fine-tuning", "3e-4 of {1e-4, 3e-4, 1e-3}"],
    ["LayerNorm", "1e-2 of {1e-3, 1e-2}, at the edge"],
    ["Head only (control)", "1e-3"],
  ]);
  // Every rate, per task and method.
  assert.equal(rateScores(data).length, 7);
  const lines = rateLines(data, "RTE");
  assert.deepEqual(lines.map((l) => [l.name, l.x, l.dash]), [
    ["Full fine-tuning", [1e-4, 3e-4, 1e-3], "solid"],
    ["LayerNorm", [1e-3, 1e-2], "solid"],
    ["Head only (control)", [1e-3], "dot"],
  ]);
  assert.deepEqual(lines[0].y.map((y) => Math.round(y)), [71, 81, 60]);
  assert.ok(Math.abs(lines[0].error![0] - 100 * Math.SQRT2 * 0.01) < 1e-9);
  const table = rateTableRows(data);
  assert.deepEqual(table.map((r) => [r.task, r.method]), [
    ["RTE", "Full fine-tuning"],
    ["RTE", "LayerNorm"],
    ["RTE", "Head only (control)"],
    ["MRPC", "LayerNorm"],
  ]);
  assert.equal(
    table[1]["score at each lr (x100, mean ± std)"],
    "1e-3: 55.00 ± 0.00; 1e-2: 60.00 ± 0.00 (chosen)",
  );
  assert.equal(table[0]["best - worst (points)"], "21.00");
});

Deno.test("a diverged run: 'diverged' in the tables, no point in the plots, its rate ranked last", () => {
  const data = study({
    finetune: [
      ...seeds("full", [0.7, 0.72], { lr: 1e-4 }),
      run("full", 0, { lr: 1e-3, seed: 0, diverged: true }),
      run("full", 0.9, { lr: 1e-3, seed: 1 }),
      ...seeds("layernorm", [0.6, 0.6], { lr: 1e-3 }),
      ...seeds("layernorm", [0.65, 0.63], { lr: 1e-2 }),
      // MRPC: LayerNorm diverged at its only rate (nothing finite to choose).
      run("layernorm", 0, { task: "MRPC", seed: 0, diverged: true }),
      run("layernorm", 0.5, { task: "MRPC", seed: 1 }),
      ...seeds("full", [0.6, 0.6], { task: "MRPC", lr: 1e-4 }),
      ...seeds("full", [0.6, 0.6], { task: "MRPC", lr: 1e-3, diverged: true }),
      // A masked run that diverged.
      ...seeds("mask", [0.6, 0.6], { mask: { method: "fisher", pct: 10 } }),
      ...seeds("mask", [0, 0.5], { mask: { method: "random", pct: 10 }, diverged: true }),
    ],
  });
  const main = mainScores(data);
  // RTE full: 1e-3 has the best finite seed (0.9) but a diverged one: 1e-4 is chosen.
  const full = main.find((g) => g.task === "RTE" && g.method === "full")!;
  assert.deepEqual([full.lr, full.n, full.diverged], [1e-4, 2, 0]);
  assert.ok(Math.abs(full.mean - 0.71) < 1e-12);
  assert.equal(rateNote(full), "1e-4 of {1e-4, 1e-3}, at the edge");
  // MRPC LayerNorm: its only rate has a diverged seed: the mean is NaN, the table says so.
  const mrpcLn = main.find((g) => g.task === "MRPC" && g.method === "layernorm")!;
  assert.deepEqual([mrpcLn.n, mrpcLn.diverged, Number.isNaN(mrpcLn.mean)], [2, 1, true]);
  // MRPC full: every seed of 1e-3 diverged: 1e-4 is chosen.
  const mrpcFull = main.find((g) => g.task === "MRPC" && g.method === "full")!;
  assert.equal(mrpcFull.lr, 1e-4);
  assert.equal(mrpcFull.trainable, 4385920);
  const rows = mainTableRows(main);
  const cell = (task: string, method: string) =>
    rows.find((r) => r.task === task && r.method === method)!["score (x100, mean ± std)"];
  assert.equal(cell("MRPC", "LayerNorm"), "diverged (1 of 2 seeds)");
  assert.equal(cell("RTE", "Full fine-tuning"), "71.00 ± 1.41");
  assert.equal(cell("mean of 2 task(s)", "LayerNorm"), "n/a (diverged on some task)");
  assert.equal(cell("mean of 2 task(s)", "Full fine-tuning"), "65.50");

  // The rate table: every rate, the diverged ones said; the spread over the finite ones.
  const table = rateTableRows(data);
  const rte = table.find((r) => r.task === "RTE" && r.method === "Full fine-tuning")!;
  assert.equal(
    rte["score at each lr (x100, mean ± std)"],
    "1e-4: 71.00 ± 1.41 (chosen); 1e-3: diverged (1 of 2 seeds)",
  );
  assert.equal(rte["best - worst (points)"], "0.00 (without diverged rates)");
  const mrpc = table.find((r) => r.task === "MRPC" && r.method === "LayerNorm")!;
  assert.equal(mrpc["score at each lr (x100, mean ± std)"], "1e-3: diverged (1 of 2 seeds) (chosen)");
  assert.equal(mrpc["best - worst (points)"], "n/a (every rate diverged)");

  // The sensitivity plot: no point at a diverged rate, named in the legend; the figure builds.
  const lines = rateLines(data, "RTE");
  assert.deepEqual(lines.map((l) => [l.name, l.x]), [
    ["Full fine-tuning (diverged at 1e-3)", [1e-4]],
    ["LayerNorm", [1e-3, 1e-2]],
  ]);
  assert.ok(lines.every((l) => l.y.every(Number.isFinite) && l.error!.every(Number.isFinite)));
  lineBands(lines, { xLog: true });
  const mrpcLines = rateLines(data, "MRPC");
  assert.deepEqual(mrpcLines.map((l) => [l.name, l.x]), [
    ["Full fine-tuning (diverged at 1e-3)", [1e-4]],
    ["LayerNorm (diverged at 1e-3)", []],
  ]);
  lineBands(mrpcLines, { xLog: true });

  // Bars skip a task where a method has no mean; masks: the diverged k has no point.
  const bars = scoreBars(main, [{ method: "full" }, { method: "layernorm" }]);
  assert.deepEqual(bars.tasks, ["RTE"]);
  groupedBars(bars.tasks, bars.series);
  const topk = topkLines(data, "RTE");
  assert.deepEqual(topk.slice(0, 2).map((l) => [l.name, l.x]), [
    ["Top-k% by Fisher (own task)", [0.1]],
    ["Random k% (diverged at 10%)", []],
  ]);
  lineBands(topk, { xPercent: true });
  const rnd = maskScores(data).find((g) => g.method === "random")!;
  assert.equal(pointsText(rnd), "diverged (2 of 2 seeds)");

  // One row per diverged run, with where and why.
  const div = divergedRows(data);
  assert.equal(div.length, 6);
  assert.deepEqual(div[0], {
    task: "RTE",
    method: "Full fine-tuning",
    k: "",
    lr: "1e-3",
    seed: 0,
    "diverged at": "step 3 (epoch 1, batch 3)",
    reason: "loss is NaN",
    sources: data.finetune[2].id,
  });
  assert.equal(div.at(-1)!.k, "10%");
});

Deno.test("maskScores, topkLines and closestK: masked runs by method and k, references flat", () => {
  const data = study({
    finetune: [
      ...seeds("mask", [0.6, 0.62], { mask: { method: "fisher", pct: 10 } }),
      ...seeds("mask", [0.5, 0.5], { mask: { method: "random", pct: 10 } }),
      ...seeds("mask", [0.7, 0.7], { mask: { method: "fisher", pct: 100 } }),
      ...seeds("mask", [0.7, 0.7], { mask: { method: "random", pct: 100 } }),
      ...seeds("layernorm", [0.72, 0.72]),
    ],
  });
  const ms = maskScores(data);
  assert.deepEqual(ms.map((g) => `${g.method}${g.pct}`), ["fisher10", "random10", "fisher100", "random100"]);
  assert.equal(ms[0].selected, 128);
  const lines = topkLines(data, "RTE");
  assert.deepEqual(lines.map((l) => l.x), [[0.1, 1], [0.1, 1], [0.1, 1]]);
  assert.ok(Math.abs(lines[0].y[0] - 61) < 1e-9);
  assert.equal(lines[2].dash, "dash");
  assert.deepEqual(lines[2].y.map(Math.round), [72, 72]);

  assert.equal(closestK([1, 5, 10, 25, 100], 10, 5, 25), 10);
  assert.equal(closestK([5, 15, 100], 10, 5, 25), 5); // a tie goes to the smaller k
  assert.equal(closestK([25, 50], 10, 5, 25), 25);
  assert.equal(closestK([1, 50, 100], 10, 5, 25), undefined);
});

Deno.test("maskPlacement: counts and densities by layer, gamma/beta and LayerNorm type", () => {
  const p = maskPlacement(maskRecord("RTE", 10, { "emb.b": 8, "0.attn.w": 4, "1.out.b": 40, "1.out.w": 12 }));
  assert.equal(p.layers, 2);
  assert.equal(p.selected, 64);
  assert.deepEqual(p.byLayer.map((x) => [x.label, x.selected, x.candidates]), [
    ["embeddings", 8, 256],
    ["layer 0", 4, 512],
    ["layer 1", 52, 512],
  ]);
  assert.ok(Math.abs(p.byLayer[2].density - 52 / 512) < 1e-12);
  assert.deepEqual(p.byKind.map((x) => [x.label, x.selected]), [["gamma", 16], ["beta", 48]]);
  assert.ok(Math.abs(p.byKind[1].share - 0.75) < 1e-12);
  const other = maskPlacement(maskRecord("MRPC", 10, { "0.out.w": 64 }));
  const bars = placementBars([p, other], "byKind", "share");
  assert.deepEqual(bars.groups, ["gamma", "beta"]);
  assert.deepEqual(bars.series.map((x) => [x.name, x.values]), [["RTE", [25, 75]], ["MRPC", [100, 0]]]);
  assert.deepEqual(p.byLnType.map((x) => [x.label, x.selected]), [["embeddings", 8], ["attention", 4], [
    "output",
    52,
  ]]);
});

Deno.test("layerNormFisherMatrix and rankingTable: LayerNorms in model order, ranks per task", () => {
  const rows = componentRows("mean", {
    embeddings_layernorm: 1e-3,
    attention_output_layernorm: 1e-5,
    output_layernorm: 1e-1,
    query: 1,
  });
  const m = layerNormFisherMatrix(rows);
  assert.deepEqual(m.x, [
    "embeddings",
    "layer 0 attention",
    "layer 0 output",
    "layer 1 attention",
    "layer 1 output",
  ]);
  assert.deepEqual(m.y, ["gamma (weight)", "beta (bias)"]);
  assert.deepEqual(m.z[1].map((v) => Math.round(v as number)), [-3, -5, -1, -5, -1]);

  const table = rankingTable(new Map([["RTE", rows], ["MRPC", rows]]), "mean", { by: "group" });
  assert.deepEqual(table.map((r) => r.component), ["attention", "layernorm"]);
  assert.equal(table[0].RTE, "1 (1.00e+0)");
});

Deno.test("provenance: header from the records, caveat for the stand-in model, message for a missing grid", async () => {
  const data = study({
    profile: "smoke",
    finetune: seeds("full", [0.5]),
    change: [changeRecord("RTE", { query: 1 })],
  });
  const md = studyHeader(data, "Main table");
  assert.match(md, /profile `smoke`/);
  assert.match(md, /bert-tiny-mlm \(sha256 abababababab\)/);
  assert.match(md, /15\.7%/);
  assert.match(md, /NOT Google's BERT-Tiny/);
  assert.match(md, /64 examples/);
  assert.equal(modelName(study({ profile: "paper" })), "bert-base-uncased");
  assert.match(modelCaveat("some/other-model"), /No known weakness/);
  assert.match(
    notEnoughData("topk", "cpu", "the top-k% runs"),
    /Not enough data for the top-k% runs.*`deno task normtune grid --grid topk --profile cpu`/,
  );

  // The loader reads what the fixtures build: records written as the store writes them come back typed.
  const [dir, cleanup] = await tempDir();
  try {
    for (const r of [...seeds("full", [0.6, 0.8]), ...seeds("bitfit", [0.7])]) {
      await Deno.writeTextFile(join(dir, `${r.id}.json`), JSON.stringify(r));
    }
    const loaded = await loadResults({ profile: "cpu", dir });
    const s = mainScores(loaded);
    assert.deepEqual(s.map((g) => [g.method, g.n]), [["full", 2], ["bitfit", 1]]);
    assert.ok(Math.abs(s[0].mean - 0.7) < 1e-12);
  } finally {
    await cleanup();
  }
});
