/**
 * The learning-rate search's one selection rule: per task and method, the rate with the best mean main dev
 * score over seeds (what BitFit reports). The profiles run every rate of a method's class with every seed
 * (lib/experiments/profiles.ts); the findings, the notebooks, RESULTS.md and the grids that train at the
 * chosen rate (topk, crosstask, change: lib/experiments/study.ts) all choose through `chooseRates`.
 *
 * The rule, for the runs of one task and method grouped by rate:
 * - Rates are compared on the seeds that every rate has finished (`commonSeeds`), so a rate with a lucky
 *   extra seed does not win by it; a run stopped part-way (the main grid is seed-major) then still compares
 *   like with like. When no seed is common to all rates, each rate's mean over its own seeds is used and
 *   the choice says so (`uneven`).
 * - A rate whose compared mean is not finite ranks below every finite one. A run that diverged has a
 *   record with no score (lib/experiments/cells.ts), read as NaN (`rateRun`, load.ts `scoreOf`), so one
 *   diverged seed makes its rate's mean NaN: that rate ranks last, and the search still counts as
 *   finished (the diverged run has its record). Each rate says how many of its runs diverged
 *   (`RateGroup.diverged`): when every rate has a diverged run, the tie rules below still pick one, and
 *   its runs include a diverged one.
 * - Ties (equal compared means): the rate with more finished seeds, then the smaller rate.
 * - What is reported for the chosen rate is its mean over all of its finished seeds.
 * A single rate (results of a profile without a search) is a one-rate search: it is chosen.
 *
 * ```ts
 * const [c] = chooseRates([{ task: "RTE", method: "layernorm", lr: 1e-3, seed: 0, score: 0.6, id: "a" }]);
 * c.lr; // 1e-3
 * ```
 */
import { divergenceOf, type FinetuneRecord, meanStd, methodOf, scoreOf } from "./load.ts";

/** One finished run, as the selection reads it. */
export interface RateRun {
  task: string;
  method: string;
  lr: number;
  seed: number;
  /** NaN for a run that diverged. */
  score: number;
  id: string;
  /** The run diverged (its score is NaN). */
  diverged?: boolean;
}

/** The runs of one rate. */
export interface RateGroup {
  lr: number;
  /** Over every finished seed of this rate (what is reported when it is chosen). */
  n: number;
  mean: number;
  std: number;
  seeds: number[];
  ids: string[];
  /** The mean the rates were compared on (over `commonSeeds`, or over its own seeds when `uneven`). */
  compared: number;
  /** How many of its runs diverged (then `mean` is NaN and the rate ranks below every finite one). */
  diverged: number;
}

export interface RateChoice {
  task: string;
  method: string;
  /** The chosen rate. */
  lr: number;
  /** Every rate tried, ascending. */
  rates: RateGroup[];
  /** Seeds finished by every rate (what the rates were compared on). */
  commonSeeds: number[];
  /** Some rate has seeds another lacks. */
  uneven: boolean;
  /** The chosen rate is the smallest or largest of several tried: a wider grid might do better. */
  atEdge: boolean;
}

/** A rate as labels and tables show it: `1e-3`, `3e-4`, `2.5e-4`. */
export function rateText(lr: number): string {
  return lr.toExponential();
}

/**
 * A fine-tuning record as the selection reads it (method as load.ts `methodOf` names it); a run that
 * diverged scores NaN.
 */
export function rateRun(rec: FinetuneRecord): RateRun {
  const diverged = divergenceOf(rec) !== undefined;
  return {
    task: String(rec.config.task),
    method: methodOf(rec),
    lr: Number(rec.config.lr),
    seed: Number(rec.config.seed),
    score: scoreOf(rec),
    id: rec.id,
    ...(diverged ? { diverged } : {}),
  };
}

/**
 * Why the chosen rate's runs include a diverged one, or undefined when they do not: every rate tried has a
 * diverged run (no finite rate to choose), or the rates were compared on seeds without the diverged one
 * (`uneven`).
 */
export function chosenDiverged(c: Pick<RateChoice, "lr" | "rates">): string | undefined {
  const chosen = c.rates.find((r) => r.lr === c.lr);
  if (!chosen?.diverged) return undefined;
  return c.rates.every((r) => r.diverged > 0)
    ? "every rate tried diverged on some seed"
    : "chosen on the seeds every rate has; it diverged on another";
}

const key = (r: Pick<RateRun, "task" | "method">) => `${r.task}\u0000${r.method}`;

/** The rate choice of every task x method among `runs`, in first-seen order. */
export function chooseRates(runs: readonly RateRun[]): RateChoice[] {
  const byMethod = new Map<string, RateRun[]>();
  for (const r of runs) byMethod.set(key(r), [...(byMethod.get(key(r)) ?? []), r]);
  return [...byMethod.values()].map(chooseOne);
}

function chooseOne(runs: readonly RateRun[]): RateChoice {
  const byRate = new Map<number, RateRun[]>();
  for (const r of runs) byRate.set(r.lr, [...(byRate.get(r.lr) ?? []), r]);
  const lists = [...byRate.entries()].sort(([a], [b]) => a - b);
  const seedSets = lists.map(([, rs]) => new Set(rs.map((r) => r.seed)));
  const commonSeeds = [...seedSets[0]].filter((s) => seedSets.every((set) => set.has(s))).sort((a, b) =>
    a - b
  );
  const uneven = seedSets.some((set) => set.size !== commonSeeds.length);
  const rates: RateGroup[] = lists.map(([lr, rs]) => {
    const { mean, std, n } = meanStd(rs.map((r) => r.score));
    const compared = commonSeeds.length
      ? meanStd(rs.filter((r) => commonSeeds.includes(r.seed)).map((r) => r.score)).mean
      : mean;
    return {
      lr,
      n,
      mean,
      std,
      seeds: rs.map((r) => r.seed),
      ids: rs.map((r) => r.id),
      compared,
      diverged: rs.filter((r) => r.diverged).length,
    };
  });
  const rank = (g: RateGroup) => (Number.isFinite(g.compared) ? g.compared : -Infinity);
  // Means of different numbers that should tie can differ in the last bits.
  const tied = (a: number, b: number) => a === b || Math.abs(a - b) <= 1e-12;
  let best = rates[0];
  for (const g of rates.slice(1)) {
    // Ascending rates: a later one replaces the best only when better, or tied with more seeds.
    const [a, b] = [rank(g), rank(best)];
    if ((!tied(a, b) && a > b) || (tied(a, b) && g.n > best.n)) best = g;
  }
  const first = runs[0];
  return {
    task: first.task,
    method: first.method,
    lr: best.lr,
    rates,
    commonSeeds,
    uneven,
    atEdge: rates.length > 1 && (best === rates[0] || best === rates.at(-1)),
  };
}

/**
 * The records at the chosen rate of their task and method (in their own order), with the choices:
 * what the tables and verdicts report.
 */
export function atChosenRates<R extends FinetuneRecord>(
  records: readonly R[],
): { records: R[]; choices: RateChoice[] } {
  const runs = records.map(rateRun);
  const choices = chooseRates(runs);
  const chosen = new Map(choices.map((c) => [key(c), c.lr]));
  return { records: records.filter((_, i) => chosen.get(key(runs[i])) === runs[i].lr), choices };
}
