import assert from "node:assert/strict";
import {
  atChosenRates,
  chooseRates,
  chosenDiverged,
  type RateRun,
  rateRun,
  rateText,
} from "../../lib/experiments/rates.ts";
import { run } from "../report/study_fixtures.ts";

/** Runs of one task and method: `scores[lr]` lists the score of seed 0, 1, ... (undefined: not finished). */
function runs(scores: Record<string, (number | undefined)[]>, method = "layernorm", task = "RTE"): RateRun[] {
  return Object.entries(scores).flatMap(([lr, list]) =>
    list.flatMap((score, seed) =>
      score === undefined
        ? []
        : [{ task, method, lr: Number(lr), seed, score, id: `${method}-${lr}-${seed}` }]
    )
  );
}

Deno.test("the rate with the best mean over seeds is chosen, per task and method", () => {
  const choices = chooseRates([
    ...runs({ "1e-3": [0.6, 0.62], "3e-3": [0.7, 0.66], "1e-2": [0.65, 0.69] }),
    ...runs({ "1e-4": [0.8, 0.8], "3e-4": [0.7, 0.7] }, "full"),
    ...runs({ "1e-3": [0.5, 0.5] }, "layernorm", "CoLA"),
  ]);
  assert.deepEqual(choices.map((c) => [c.task, c.method, c.lr]), [
    ["RTE", "layernorm", 3e-3],
    ["RTE", "full", 1e-4],
    ["CoLA", "layernorm", 1e-3],
  ]);
  const ln = choices[0];
  assert.deepEqual(ln.rates.map((r) => r.lr), [1e-3, 3e-3, 1e-2], "every rate, ascending");
  assert.deepEqual(ln.rates[1].ids, ["layernorm-3e-3-0", "layernorm-3e-3-1"]);
  assert.ok(Math.abs(ln.rates[1].mean - 0.68) < 1e-12);
  assert.deepEqual([ln.atEdge, ln.uneven, ln.commonSeeds], [false, false, [0, 1]]);
  assert.equal(choices[1].atEdge, true, "the smallest full rate won: a wider grid might do better");
  // One rate (a profile without a search, like the first cpu records): chosen, not at an edge.
  assert.deepEqual([choices[2].lr, choices[2].atEdge], [1e-3, false]);
});

Deno.test("ties go to the rate with more finished seeds, then to the smaller rate", () => {
  const [equal] = chooseRates(runs({ "1e-2": [0.7, 0.6], "1e-3": [0.6, 0.7] }));
  assert.equal(equal.lr, 1e-3, "same seeds, same mean: the smaller rate");
  // 3e-3 has an extra seed; on the common seeds (0, 1) both average 0.65.
  const [more] = chooseRates(runs({ "1e-3": [0.6, 0.7], "3e-3": [0.7, 0.6, 0.1] }));
  assert.equal(more.lr, 3e-3, "tied on the common seeds: more seeds wins");
  // Means that tie only up to rounding are a tie.
  const [close] = chooseRates(runs({ "1e-3": [0.3, 0.3], "3e-3": [0.1 + 0.2, 0.3] }));
  assert.ok(close.rates[1].compared > close.rates[0].compared, "0.1 + 0.2 is above 0.3 in floating point");
  assert.equal(close.lr, 1e-3);
});

Deno.test("missing seeds: rates are compared on the seeds every rate has", () => {
  // A run stopped part-way: 1e-2 has only seed 0, so the rates are compared on seed 0 alone, and 1e-3's
  // lucky seed 1 (best mean over its own seeds) does not count.
  const [c] = chooseRates(runs({ "1e-3": [0.6, 0.9], "3e-3": [0.65, 0.6], "1e-2": [0.55] }));
  assert.deepEqual(c.commonSeeds, [0]);
  assert.equal(c.uneven, true);
  assert.equal(c.lr, 3e-3, "best on seed 0");
  assert.deepEqual(c.rates.map((r) => r.compared), [0.6, 0.65, 0.55]);
  // What is reported for the chosen rate: every seed it finished.
  assert.equal(c.rates[1].n, 2);
  assert.ok(Math.abs(c.rates[1].mean - 0.625) < 1e-12);
  // A rate with fewer seeds can still win on the common ones.
  const [few] = chooseRates(runs({ "1e-3": [0.6, 0.9], "3e-3": [0.7] }));
  assert.equal(few.lr, 3e-3);
  // No seed in common: each rate's own mean, and the choice says so.
  const [none] = chooseRates(runs({ "1e-3": [0.6], "3e-3": [undefined, 0.7] }));
  assert.deepEqual([none.commonSeeds, none.uneven, none.lr], [[], true, 3e-3]);
});

Deno.test("a rate whose mean is not finite (a diverged run) ranks below every finite one", () => {
  const [c] = chooseRates(runs({ "1e-3": [0.5, 0.5], "1e-2": [0.9, NaN] }));
  assert.equal(c.lr, 1e-3);
  const [all] = chooseRates(runs({ "1e-3": [NaN], "1e-2": [NaN] }));
  assert.equal(all.lr, 1e-3, "nothing finite: the smaller rate, not a crash");
});

Deno.test("a diverged record (no score) reads as NaN, never 0, and its rate ranks last", () => {
  const at = (lr: number, score: number, seed: number, diverged = false) =>
    run("layernorm", score, { lr, seed, diverged });
  // 1e-2 would win on its finite seed, but its other seed diverged; 1e-4's low scores still beat it.
  const records = [
    at(1e-4, 0.1, 0),
    at(1e-4, 0.1, 1),
    at(1e-3, 0.5, 0),
    at(1e-3, 0.5, 1),
    at(1e-2, 0.9, 0),
    at(1e-2, 0.9, 1, true),
  ];
  const r = rateRun(records[5]);
  assert.ok(Number.isNaN(r.score), `score ${r.score}: a null score must not read as 0`);
  assert.equal(r.diverged, true);
  assert.equal(rateRun(records[0]).diverged, undefined);
  const [c] = chooseRates(records.map(rateRun));
  assert.equal(c.lr, 1e-3);
  assert.deepEqual(c.rates.map((g) => g.diverged), [0, 0, 1]);
  assert.ok(Number.isNaN(c.rates[2].mean) && Number.isNaN(c.rates[2].compared));
  assert.equal(chosenDiverged(c), undefined, "the chosen rate has no diverged run");
  // Even a negative score (a correlation below chance) ranks above a diverged run.
  const [low] = chooseRates([at(1e-3, -0.2, 0), at(1e-2, 0.9, 0, true)].map(rateRun));
  assert.equal(low.lr, 1e-3, "a score of -0.2 beats a diverged run");
  // Every rate diverged on some seed: one is chosen (ties: more seeds, then the smaller rate), and said.
  const [all] = chooseRates([at(1e-3, 0.5, 0, true), at(1e-2, 0.9, 0), at(1e-2, 0, 1, true)].map(rateRun));
  assert.equal(all.lr, 1e-2, "tied at -Infinity: more seeds");
  assert.equal(chosenDiverged(all), "every rate tried diverged on some seed");
  // atChosenRates keeps the chosen rate's records only.
  assert.deepEqual(atChosenRates(records).records, [records[2], records[3]]);
});

Deno.test("atChosenRates keeps the records at each task and method's chosen rate", () => {
  const at = (mode: string, lr: number, score: number, seed: number) => {
    const r = run(mode, score, { seed });
    r.config.lr = lr;
    return r;
  };
  const records = [
    at("layernorm", 1e-3, 0.6, 0),
    at("layernorm", 1e-2, 0.7, 0),
    at("layernorm", 1e-3, 0.6, 1),
    at("layernorm", 1e-2, 0.72, 1),
    at("full", 1e-4, 0.8, 0),
    run("layernorm", 0.9, { seed: 0, init: "random" }),
  ];
  const { records: kept, choices } = atChosenRates(records);
  assert.deepEqual(kept, [records[1], records[3], records[4], records[5]]);
  assert.deepEqual(choices.map((c) => [c.method, c.lr]), [
    ["layernorm", 1e-2],
    ["full", 1e-4],
    ["layernorm-random-init", 1e-3],
  ]);
  assert.deepEqual([1e-3, 3e-4, 2.5e-4, 2e-5].map(rateText), ["1e-3", "3e-4", "2.5e-4", "2e-5"]);
});
