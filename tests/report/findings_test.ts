import assert from "node:assert/strict";
import {
  beats,
  chanceNotes,
  type Check,
  closeTolerance,
  CONTROL_CHECKS,
  controlCheck,
  divergedNotes,
  evaluateControls,
  finding1,
  finding2,
  finding3,
  finding4,
  finding5,
  finding6,
  isClose,
  judge,
  parameterCounts,
  rateNotes,
  THRESHOLDS,
} from "../../lib/report/findings.ts";
import { controlScores, mainScores } from "../../lib/report/study_views.ts";
import { changeRecord, fisherRecord, maskRecord, run, seeds, study } from "./study_fixtures.ts";

const check = (pass: boolean, primary = true): Check => ({
  task: "T",
  what: "x",
  pass,
  primary,
  detail: "",
  sources: [],
});

Deno.test("judge: all checks -> supported, half the primary -> partly, fewer -> not, none -> not enough data", () => {
  assert.equal(judge([check(true), check(true), check(true, false)]), "supported");
  assert.equal(judge([check(true), check(true), check(false, false)]), "partly supported");
  assert.equal(judge([check(true), check(false)]), "partly supported");
  assert.equal(judge([check(true), check(false), check(false)]), "not supported");
  assert.equal(judge([check(false), check(true, false)]), "not supported");
  assert.equal(judge([check(true, false)]), "not enough data");
  assert.equal(judge([]), "not enough data");
});

Deno.test("closeTolerance: 2 points, or the larger seed std; a single seed has no std", () => {
  assert.equal(THRESHOLDS.closePoints, 2);
  assert.equal(closeTolerance({ std: 0.01, n: 3 }, { std: 0.005, n: 3 }), 0.02);
  assert.equal(closeTolerance({ std: 0.01, n: 3 }, { std: 0.035, n: 3 }), 0.035);
  assert.equal(closeTolerance({ std: 0.5, n: 1 }, { std: 0, n: 1 }), 0.02);
});

Deno.test("finding 1: output LayerNorm first on every task, on half, on none; no records", () => {
  const top = { output_layernorm: 3, query: 2, intermediate_dense: 1, classifier: 99 };
  const second = { output_layernorm: 2, query: 3, intermediate_dense: 1 };
  assert.equal(
    finding1(study({ change: [changeRecord("RTE", top), changeRecord("MRPC", top)] })).verdict,
    "supported",
  );
  const half = finding1(study({ change: [changeRecord("RTE", top), changeRecord("MRPC", second)] }));
  assert.equal(half.verdict, "partly supported");
  assert.equal(half.checks[1].pass, false);
  assert.match(half.checks[1].detail, /first: query .*rank 2 of 3/);
  assert.equal(half.numbers[0]["layers where output LN tops its layer"], "2 of 2");
  assert.equal(finding1(study({ change: [changeRecord("RTE", second)] })).verdict, "not supported");
  const none = finding1(study());
  assert.equal(none.verdict, "not enough data");
  assert.match(none.summary, /deno task normtune grid --grid change --profile cpu/);
});

Deno.test("finding 2: the LayerNorm group must rank first by mean Fisher per element", () => {
  const ln = { output_layernorm: 1e-3, attention_output_layernorm: 1e-4, query: 1e-5, pooler: 1e-6 };
  const pooler = { output_layernorm: 1e-3, query: 1e-5, pooler: 1e-2 };
  assert.equal(finding2(study({ fisher: [fisherRecord("RTE", ln)] })).verdict, "supported");
  const f = finding2(study({ fisher: [fisherRecord("RTE", ln), fisherRecord("MRPC", pooler)] }));
  assert.equal(f.verdict, "partly supported");
  assert.equal(f.numbers[1]["LayerNorm rank"], "2 of 3");
  assert.equal(finding2(study({ fisher: [fisherRecord("RTE", pooler)] })).verdict, "not supported");
});

Deno.test("finding 3: LayerNorm close to full and BitFit, and the parameter ratio near 1/5", () => {
  const runs = (ln: number[], lnTrainable?: number) => [
    ...seeds("full", [0.8, 0.81, 0.82]),
    ...seeds("bitfit", [0.79, 0.79, 0.79]),
    ...seeds("layernorm", ln, lnTrainable ? { trainable: lnTrainable } : {}),
  ];
  // 1.5 points below full, within 2: close; LN/BitFit = 614/3072 = 0.2: in the band.
  const ok = finding3(study({ finetune: runs([0.795, 0.795, 0.795], 614) }));
  assert.equal(ok.verdict, "supported", ok.summary);
  // bert-tiny-mlm's real counts, 1280 / 3072 = 0.417: the ratio fails, the scores still hold.
  const ratio = finding3(study({ finetune: runs([0.795, 0.795, 0.795]) }));
  assert.equal(ratio.verdict, "partly supported");
  assert.match(ratio.checks.find((c) => !c.primary)!.detail, /1280 \/ 3072 = 0\.417/);
  // 5 points below both: not close.
  assert.equal(finding3(study({ finetune: runs([0.76, 0.76, 0.76], 614) })).verdict, "not supported");
  // 3 points below full, but the LayerNorm runs spread by 4 points (std 0.04): close by the std.
  const noisy = finding3(study({ finetune: runs([0.74, 0.78, 0.82], 614) }));
  assert.equal(noisy.checks[0].pass, true, noisy.checks[0].detail);
  // Missing BitFit: no check on that task.
  const missing = finding3(study({ finetune: [...seeds("full", [0.8]), ...seeds("layernorm", [0.8])] }));
  assert.equal(missing.verdict, "not enough data");
  assert.match(missing.summary, /--grid main/);

  const base = parameterCounts();
  assert.deepEqual(base, { layernorm: 38400, layernormOutput: 18432, bitfit: 102912 });
});

Deno.test("finding 4: top-k% close to 100% and above random; k must be near 10", () => {
  const mk = (top: number, rnd: number, pct = 10) => [
    ...seeds("mask", [top, top], { mask: { method: "fisher", pct } }),
    ...seeds("mask", [rnd, rnd], { mask: { method: "random", pct } }),
    ...seeds("mask", [0.7, 0.7], { mask: { method: "fisher", pct: 100 } }),
  ];
  assert.equal(finding4(study({ finetune: mk(0.69, 0.6) })).verdict, "supported");
  const sameAsRandom = finding4(study({ finetune: mk(0.69, 0.69) }));
  assert.equal(sameAsRandom.verdict, "partly supported");
  assert.equal(finding4(study({ finetune: mk(0.6, 0.5) })).verdict, "not supported");
  const farK = finding4(study({ finetune: mk(0.69, 0.6, 50) }));
  assert.equal(farK.verdict, "not enough data");
  assert.match(farK.summary, /have k: 50, 100.*--grid topk/);
  // Without a k = 100 run the LayerNorm-only run is the reference.
  const viaMain = finding4(study({
    finetune: [
      ...seeds("mask", [0.69], { mask: { method: "fisher", pct: 5 } }),
      ...seeds("mask", [0.6], { mask: { method: "random", pct: 5 } }),
      ...seeds("layernorm", [0.70]),
    ],
  }));
  assert.equal(viaMain.verdict, "supported");
  assert.match(viaMain.checks[0].detail, /top-5% .* vs LayerNorm-only/);
});

Deno.test("finding 5: the union of other tasks' masks close to the own mask and above random", () => {
  const mk = (union: number, task = "RTE") => [
    ...seeds("mask", [union], { task, mask: { method: "union", pct: 10, share: 0.31 } }),
    ...seeds("mask", [0.7], { task, mask: { method: "fisher", pct: 10 } }),
    ...seeds("mask", [0.6], { task, mask: { method: "random", pct: 10 } }),
  ];
  const ok = finding5(study({ finetune: mk(0.71) }));
  assert.equal(ok.verdict, "supported");
  assert.equal(ok.numbers[0]["union mask share of LN (%)"], "31.0");
  assert.equal(finding5(study({ finetune: [...mk(0.71), ...mk(0.5, "MRPC")] })).verdict, "partly supported");
  assert.equal(finding5(study({ finetune: mk(0.55) })).verdict, "not supported");
  assert.equal(finding5(study({ finetune: seeds("full", [0.7]) })).verdict, "not enough data");
});

Deno.test("finding 6: densest layer in the last half, and more beta than gamma", () => {
  const late = maskRecord("RTE", 10, { "1.out.b": 60, "1.out.w": 20, "0.out.b": 30, "emb.b": 10 });
  assert.equal(finding6(study({ mask: [late] })).verdict, "supported");
  // The embeddings LayerNorm is the densest (40 of 256 beats 30 of 512 and 40 of 512): layer check fails.
  const early = maskRecord("MRPC", 10, { "emb.b": 40, "0.out.b": 30, "1.out.w": 40 });
  const f = finding6(study({ mask: [late, early] }));
  assert.equal(f.verdict, "partly supported");
  assert.deepEqual(f.checks.map((c) => c.pass), [true, true, false, true]);
  // A tie between layers is not "in the last layers".
  const tie = maskRecord("RTE", 10, { "0.out.b": 30, "1.out.b": 30 });
  assert.equal(finding6(study({ mask: [tie] })).checks[0].pass, false);
  assert.equal(finding6(study({ mask: [maskRecord("RTE", 100, {})] })).verdict, "not enough data");
});

Deno.test("chance notes: identical scores and correlations at or below 0 are flagged, not judged", () => {
  const same = mainScores(study({ finetune: [...seeds("full", [0.5]), ...seeds("layernorm", [0.5])] }));
  assert.match(chanceNotes("RTE", same).join(), /exactly 50\.00/);
  const corr = mainScores(study({
    finetune: [
      ...seeds("full", [-0.1], { metric: "pearson" }),
      ...seeds("layernorm", [0.2], { metric: "pearson" }),
    ],
  }));
  assert.match(chanceNotes("STS-B", corr).join(), /Full fine-tuning at or below chance/);
  const f = finding3(study({
    finetune: [...seeds("full", [0.5]), ...seeds("bitfit", [0.5]), ...seeds("layernorm", [0.5])],
  }));
  assert.match(f.summary, /Caution: on RTE/);
});

Deno.test("control C1: LayerNorm-only must beat head-only by more than max(2 points, seed std)", () => {
  const ln = seeds("layernorm", [0.7, 0.72, 0.74]); // mean 0.72, std 0.02
  const c1 = (head: number[], pooler?: number[]) =>
    controlCheck(
      study({ finetune: [...ln, ...seeds("head", head), ...(pooler ? seeds("head-pooler", pooler) : [])] }),
      CONTROL_CHECKS[0],
    );
  // 5 points above head-only (margin 2): holds.
  const pass = c1([0.67, 0.67, 0.67]);
  assert.equal(pass.id, "C1");
  assert.equal(pass.verdict, "supported", pass.summary);
  assert.match(pass.checks[0].detail, /LayerNorm 72\.00 ± 2\.00 vs Head only 67\.00 ± 0\.00: \+5\.00 points/);
  assert.deepEqual(pass.checks[0].sources, [...ln.map((r) => r.id), ...pass.checks[0].sources.slice(3)]);
  // 1.5 points above: within the margin, so it does not beat head-only.
  assert.equal(c1([0.705, 0.705, 0.705]).verdict, "not supported");
  // 3 points above, but a head-only seed spread of 4 points (std 0.04) makes the margin 4: fails.
  const noisy = c1([0.65, 0.69, 0.73]);
  assert.equal(noisy.checks[0].pass, false, noisy.checks[0].detail);
  assert.match(noisy.checks[0].detail, /needs more than 4\.00/);
  // Secondary: pooler + head as good as LayerNorm: partly.
  const pooler = c1([0.6, 0.6, 0.6], [0.72, 0.72, 0.72]);
  assert.deepEqual(pooler.checks.map((c) => [c.what, c.pass, c.primary]), [
    ["LayerNorm beats Head only", true, true],
    ["LayerNorm beats Pooler + head", false, false],
  ]);
  assert.equal(pooler.verdict, "partly supported");
  assert.equal(pooler.numbers[0]["LayerNorm - Pooler + head"], "+0.00");
});

Deno.test("controls C2, C3: pretrained beats random init, per task; random init never joins the main scores", () => {
  const runs = [
    ...seeds("full", [0.8, 0.8]),
    ...seeds("full", [0.6, 0.61], { init: "random" }),
    ...seeds("layernorm", [0.7, 0.7]),
    ...seeds("layernorm", [0.69, 0.7], { init: "random" }),
    ...seeds("full", [0.5, 0.5], { task: "MRPC" }),
    ...seeds("full", [0.55, 0.55], { task: "MRPC", init: "random" }),
    ...seeds("layernorm", [0.5], { task: "MRPC" }),
  ];
  const [c1, c2, c3] = evaluateControls(study({ finetune: runs }));
  assert.equal(c2.verdict, "partly supported", c2.summary); // RTE holds, MRPC does not (random init better)
  assert.deepEqual(c2.checks.map((c) => [c.task, c.pass]), [["RTE", true], ["MRPC", false]]);
  assert.match(
    c2.checks[1].detail,
    /Full fine-tuning 50\.00 ± 0\.00 vs Full fine-tuning from random init 55\.00/,
  );
  assert.equal(c3.verdict, "not supported"); // 0.5 points: not beyond the margin
  assert.deepEqual(c3.checks.map((c) => c.task), ["RTE"]);
  assert.match(c3.notes.join(" "), /MRPC: left out, no LayerNorm from random init runs/);
  // No head-only runs: C1 could not be judged, and no verdict is invented.
  assert.equal(c1.verdict, "not enough data");
  assert.equal(c1.checks.length, 0);
  assert.deepEqual(c1.notes, [], "no per-task 'left out' notes when nothing was judged");
  assert.match(c1.summary, /could not be judged, no task has both LayerNorm and Head only runs/);
  // A profile that declares the control points at the grid instead.
  assert.match(evaluateControls(study({ profile: "smoke" }))[0].summary, /--grid main --profile smoke/);
  // The random-init runs stay out of the main scores (finding 3 sees only pretrained runs).
  const full = mainScores(study({ finetune: runs })).find((g) => g.task === "RTE" && g.method === "full")!;
  assert.deepEqual(full.values, [0.8, 0.8]);
  assert.equal(beats({ mean: 0.73, std: 0, n: 1 }, { mean: 0.7, std: 0, n: 1 }).pass, true);
  assert.equal(
    beats({ mean: 0.72, std: 0, n: 1 }, { mean: 0.7, std: 0, n: 1 }).pass,
    false,
    "2 points exactly",
  );
});

Deno.test("the verdicts compare each method at its best learning rate; the rules are unchanged", () => {
  // LayerNorm: poor at 1e-3, good at 1e-2; full best at 3e-4 of {1e-4, 3e-4, 1e-3}.
  const runs = [
    ...seeds("full", [0.7, 0.7], { lr: 1e-4 }),
    ...seeds("full", [0.8, 0.8], { lr: 3e-4 }),
    ...seeds("full", [0.3, 0.3], { lr: 1e-3 }),
    ...seeds("bitfit", [0.79, 0.79], { lr: 1e-3 }),
    ...seeds("layernorm", [0.5, 0.5], { lr: 1e-3 }),
    ...seeds("layernorm", [0.79, 0.79], { lr: 1e-2 }),
    ...seeds("head", [0.76, 0.76], { lr: 1e-3 }),
    ...seeds("head", [0.7, 0.7], { lr: 1e-2 }),
  ];
  const f3 = finding3(study({ finetune: runs }));
  assert.equal(f3.verdict, "partly supported", f3.summary); // the ratio check fails on bert-tiny's counts
  assert.deepEqual(f3.checks.filter((c) => c.primary).map((c) => c.pass), [true, true]);
  assert.match(f3.checks[0].detail, /LN 79\.00 ± 0\.00 vs full 80\.00 ± 0\.00/);
  assert.equal(f3.numbers[0]["best lr (full, BitFit, LN)"], "3e-4, 1e-3, 1e-2");
  // Only the chosen rate's runs are sources; the other rates' are not.
  const chosen = new Set(
    runs.filter((r) => [3e-4, 1e-2].includes(r.config.lr) || r.config.mode === "bitfit"),
  );
  assert.ok(f3.checks[0].sources.every((id) => [...chosen].some((r) => r.id === id)));
  // C1 sees head-only at its best rate (1e-3: 76), so LayerNorm's 3 points beat it (margin 2).
  const [c1] = evaluateControls(study({ finetune: runs }));
  assert.equal(c1.checks[0].pass, true, c1.checks[0].detail);
  assert.match(c1.checks[0].detail, /vs Head only 76\.00/);
  // The search's notes: LayerNorm's and head-only's best at an edge of two rates; full's inside.
  assert.match(
    f3.notes.join(" "),
    /Best learning rate at the edge .*LayerNorm on RTE \(1e-2 of \{1e-3, 1e-2\}, at the edge\)/,
  );
  assert.ok(!/Full fine-tuning on RTE/.test(f3.notes.join(" ")), "3e-4 is inside {1e-4, 3e-4, 1e-3}");
});

Deno.test("rateNotes: an unfinished search is said, with the seeds compared", () => {
  const runs = [
    ...seeds("layernorm", [0.5, 0.9], { lr: 1e-3 }),
    ...seeds("layernorm", [0.6], { lr: 3e-3 }),
    ...seeds("layernorm", [0.55], { lr: 1e-2 }),
  ];
  const [ln] = mainScores(study({ finetune: runs }));
  assert.equal(ln.lr, 3e-3, "compared on seed 0, the one every rate has");
  assert.deepEqual(rateNotes([ln]), [
    "Learning-rate search unfinished (rates compared on the seeds all have): LayerNorm on RTE (seeds 0).",
  ]);
  assert.deepEqual(rateNotes([...controlScores(study({ finetune: seeds("head", [0.6]) }))]), [], "one rate");
});

Deno.test("diverged groups rank below every finite one in the verdicts, and are named in a note", () => {
  const g = (mean: number, diverged = 0) =>
    ({ mean, std: 0, n: 2, diverged }) as unknown as Parameters<typeof isClose>[0];
  const nan = g(NaN, 1);
  // Finite means: the rules as before.
  assert.equal(isClose(g(0.7), g(0.71)), true);
  assert.equal(isClose(g(0.7), g(0.8)), false);
  assert.equal(beats(g(0.8), g(0.7)).pass, true);
  assert.equal(beats(g(0.71), g(0.7)).pass, false);
  // A diverged side ranks last: never close or beating; a finite side is close to and beats it.
  assert.equal(isClose(nan, g(0.1)), false);
  assert.equal(isClose(g(0.1), nan), true);
  assert.equal(isClose(nan, nan), false);
  assert.equal(beats(nan, g(0)).pass, false);
  assert.equal(beats(g(0), nan).pass, true);
  assert.equal(beats(nan, nan).pass, false);

  // Finding 3 on two tasks: RTE's LayerNorm diverged on a seed at its only rate; MRPC's full fine-tuning
  // diverged at every rate tried.
  const data = study({
    finetune: [
      ...seeds("full", [0.8, 0.8]),
      ...seeds("bitfit", [0.79, 0.79]),
      run("layernorm", 0, { seed: 0, diverged: true }),
      run("layernorm", 0.8, { seed: 1 }),
      // Both rates have a diverged seed: tied below every finite rate, the smaller rate is chosen.
      ...seeds("full", [0, 0], { task: "MRPC", diverged: true }),
      run("full", 0.9, { task: "MRPC", lr: 1e-2, seed: 0 }),
      run("full", 0, { task: "MRPC", lr: 1e-2, seed: 1, diverged: true }),
      ...seeds("bitfit", [0.6, 0.6], { task: "MRPC" }),
      ...seeds("layernorm", [0.6, 0.6], { task: "MRPC" }),
    ],
  });
  const f3 = finding3(data);
  const primary = f3.checks.filter((c) => c.primary);
  assert.deepEqual(primary.map((c) => [c.task, c.what, c.pass]), [
    ["RTE", "LayerNorm close to full fine-tuning", false],
    ["RTE", "LayerNorm close to BitFit", false],
    ["MRPC", "LayerNorm close to full fine-tuning", true],
    ["MRPC", "LayerNorm close to BitFit", true],
  ]);
  assert.match(
    primary[0].detail,
    /LN diverged \(1 of 2 seeds\) vs full 80\.00 ± 0\.00: n\/a \(diverged\) points/,
  );
  assert.match(primary[2].detail, /vs full diverged \(2 of 2 seeds\)/);
  assert.equal(f3.numbers.find((r) => r.task === "MRPC")!.full, "diverged (2 of 2 seeds)");
  const notes = f3.notes.join(" ");
  assert.match(notes, /Diverged runs .*LayerNorm on RTE at lr 1e-3 \(1 of 2 seeds\)/);
  assert.match(
    notes,
    /Full fine-tuning on MRPC at lr 1e-3 \(2 of 2 seeds; every rate tried diverged on some seed\)/,
  );
  assert.deepEqual(divergedNotes(mainScores(study({ finetune: seeds("full", [0.8]) }))), []);

  // C2: a control that diverged at every rate is beaten; a main method that diverged beats nothing.
  const c2 = (main: number[], ctl: number[], mainDiverged: boolean, ctlDiverged: boolean) =>
    evaluateControls(study({
      finetune: [
        ...seeds("full", main, { diverged: mainDiverged }),
        ...seeds("full", ctl, { init: "random", diverged: ctlDiverged }),
      ],
    }))[1].checks[0];
  assert.equal(c2([0.6, 0.6], [0, 0], false, true).pass, true);
  assert.equal(c2([0, 0], [0.5, 0.5], true, false).pass, false);
  assert.match(c2([0.6, 0.6], [0, 0], false, true).detail, /vs Full fine-tuning from random init diverged/);
});
