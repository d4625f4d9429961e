/**
 * The notebooks' side of the results: load a profile's cell records (the small JSON files only, so a fresh
 * clone with committed results needs nothing else), pick the current ones, group them and average over
 * seeds. Notebooks load and plot; every number they show comes through here.
 *
 * Current records: when the results folder holds grid manifests (`grids/<name>.json`, written by
 * `grid`, `run-cell` and `reproduce`), only the cells they list count, so records an older configuration
 * left behind do not mix in, and records come in study order (grid by grid, each in its cells' order:
 * main's is seed, task, method, rate). Without manifests every record counts, ordered by id.
 *
 * ```ts
 * const r = await loadResults();                 // NORMTUNE_RESULTS, else results/<NORMTUNE_PROFILE|cpu>
 * const main = r.finetune.filter((x) => !x.config.mask);
 * summarize(main, ["task", "mode"]);             // [{ task, mode, n, mean, std, values, seeds }, ...]
 * finetuneRows(r);                               // one flat row per fine-tuning cell (task, method, lr, ...)
 * ```
 *
 * A study fine-tuning that diverged (lib/experiments/cells.ts) is a finished cell: its record has
 * `result.diverged` (where) and no score (`score: null`). Read scores through `scoreOf`, which gives NaN
 * for it (never 0): a mean over seeds that includes it is NaN, and lib/experiments/rates.ts ranks such a
 * rate below every finite one. The views show it as "diverged".
 *
 * As a DataFrame (polars) for filtering, grouping and pivoting in a notebook cell: `resultsFrame(r)` in
 * lib/experiments/frame.ts, built from `finetuneRows`. It lives apart so that this module, the views and
 * the verdict rules (lib/report/findings.ts) never load the DataFrame library.
 */
import { join } from "node:path";
import type { ChangeRecord } from "../analysis/weight_change.ts";
import type { FisherRecord } from "../analysis/fisher_information.ts";
import type { MaskDescription } from "../analysis/mask_selection.ts";
import { readJsonIfExists } from "../util/atomic.ts";
import { GRID_NAMES, profileName } from "./profiles.ts";
import { type CellRecord, type GridManifest, resultsDir, ResultStore } from "./store.ts";

/** A record with its config and result typed as the study's kinds write them (lib/experiments/cells.ts). */
export interface TypedRecord<C, R> extends CellRecord {
  config: C & Record<string, unknown>;
  result: R & Record<string, unknown>;
}

export interface MaskSpecRecord {
  method: "fisher" | "random" | "union";
  pct: number;
  seed?: number;
  tasks?: string[];
}

/** Where a study fine-tuning diverged (lib/tuning/epochs.ts `DivergedError`), as its record holds it. */
export interface Divergence {
  /** The 1-based update that was not finite, its 1-based epoch and batch within the epoch. */
  step: number;
  epoch: number;
  batch: number;
  /** What was not finite, e.g. `loss is NaN` or `the update made "..." non-finite (...)`. */
  reason: string;
}

export type FinetuneRecord = TypedRecord<
  {
    task: string;
    mode: string;
    seed: number;
    mask?: MaskSpecRecord;
    lr: number;
    epochs: number;
    /** Present only for runs from random initialisation (`"random"`). */
    init?: "random";
  },
  {
    task: string;
    mode: string;
    seed: number;
    metric: string;
    /** Main dev score of the best epoch; null when the run diverged (read it with `scoreOf`). */
    score: number | null;
    finalScore: number | null;
    /** Present only when the run diverged: then there is no score, delta or best epoch. */
    diverged?: Divergence;
    best: Record<string, number>;
    final: Record<string, number>;
    bestEpoch: number;
    epochs: { epoch: number; step: number; trainLoss: number; dev: Record<string, number> }[];
    steps: number;
    trainSeconds: number;
    mask?: MaskSpecRecord & { selected?: number; share?: number };
    trainable: { trainable: number; encoderTrainable: number; encoderTotal: number; encoderShare: number };
  }
>;

// Rows as lib/analysis produces them (rounded in the records, lib/experiments/cells.ts).
export type ChangeCellRecord = TypedRecord<{ task: string }, { task: string; records: ChangeRecord[] }>;
export type FisherCellRecord = TypedRecord<
  { task: string; examples: number; params: string },
  { task: string; N: number; records: FisherRecord[] }
>;
export type MaskCellRecord = TypedRecord<
  { method: "fisher" | "random" | "union"; pct: number; task?: string; heldOut?: string; seed?: number },
  {
    method: string;
    pct: number;
    candidates: number;
    target: number;
    selected: number;
    share: number;
  } & Pick<MaskDescription, "byLayer" | "byKind" | "byLnType" | "byComponent">
>;

export interface Results {
  profile: string;
  dir: string;
  /** The manifests found, by grid name. */
  grids: Record<string, GridManifest>;
  /** Every current record. */
  records: CellRecord[];
  finetune: FinetuneRecord[];
  change: ChangeCellRecord[];
  fisher: FisherCellRecord[];
  mask: MaskCellRecord[];
  /** Records present but not in any manifest (older configurations). */
  stale: number;
  byId(id: string): CellRecord | undefined;
  /** The records of one grid's own cells, in its index order (empty if the grid has no manifest). */
  grid(name: string): CellRecord[];
}

/** Manifests in study order (fisher, main, change, topk, crosstask; then any other grid by name). */
function inStudyOrder(grids: Record<string, GridManifest>): GridManifest[] {
  const rank = (g: string) => {
    const i = (GRID_NAMES as readonly string[]).indexOf(g);
    return i < 0 ? GRID_NAMES.length : i;
  };
  return Object.values(grids).sort((a, b) => rank(a.grid) - rank(b.grid) || a.grid.localeCompare(b.grid));
}

export interface LoadOptions {
  /** Profile name (default NORMTUNE_PROFILE, else cpu). */
  profile?: string;
  /** Results folder (default NORMTUNE_RESULTS, else results/<profile>). */
  dir?: string;
  /** Keep records that no manifest lists (default false when manifests exist). */
  includeStale?: boolean;
}

export async function loadResults(opts: LoadOptions | string = {}): Promise<Results> {
  const o: LoadOptions = typeof opts === "string" ? { profile: opts } : opts;
  const profile = profileName(o.profile);
  const dir = o.dir ?? resultsDir(profile);
  const store = new ResultStore(dir, dir);
  const all = await store.list();
  const grids: Record<string, GridManifest> = {};
  try {
    for await (const e of Deno.readDir(join(store.results, "grids"))) {
      if (!e.isFile || !e.name.endsWith(".json")) continue;
      const m = await readJsonIfExists<GridManifest>(join(store.results, "grids", e.name));
      if (m) grids[m.grid] = m;
    }
  } catch (err) {
    if (!(err instanceof Deno.errors.NotFound)) throw err;
  }
  // Study order, cells in grid order.
  const order = new Map<string, number>();
  for (const m of inStudyOrder(grids)) {
    for (const id of m.closure) if (!order.has(id)) order.set(id, order.size);
  }
  const useAll = o.includeStale || order.size === 0;
  const records = (useAll ? all : all.filter((r) => order.has(r.id)))
    .sort((a, b) =>
      (order.get(a.id) ?? Infinity) - (order.get(b.id) ?? Infinity) || a.id.localeCompare(b.id)
    );
  const ids = new Map(records.map((r) => [r.id, r]));
  const of = <T>(kind: string) => records.filter((r) => r.kind === kind) as unknown as T[];
  return {
    profile,
    dir: store.results,
    grids,
    records,
    finetune: of<FinetuneRecord>("finetune"),
    change: of<ChangeCellRecord>("change"),
    fisher: of<FisherCellRecord>("fisher"),
    mask: of<MaskCellRecord>("mask"),
    stale: all.length - records.length,
    byId: (id) => ids.get(id),
    grid: (name) => (grids[name]?.cells ?? []).map((c) => ids.get(c.id)).filter((r): r is CellRecord => !!r),
  };
}

/** One grid of the study: its cells declared by its manifest and how many of them have a record. */
export interface GridProgress {
  grid: string;
  /** Cells its manifest lists; undefined when the grid has no manifest yet (never started here). */
  declared?: number;
  finished: number;
}

/**
 * How far the study's grids are (study order): a partly computed study says so wherever its results are
 * shown, since every verdict reads only the records that exist.
 */
export function gridProgress(results: Pick<Results, "grids" | "byId">): GridProgress[] {
  const names = [
    ...GRID_NAMES,
    ...Object.keys(results.grids).filter((g) => !GRID_NAMES.includes(g as never)),
  ];
  return names.map((grid) => {
    const m = results.grids[grid];
    if (!m) return { grid, finished: 0 };
    return { grid, declared: m.cells.length, finished: m.cells.filter((c) => results.byId(c.id)).length };
  });
}

/** Where a fine-tuning record's run diverged, or undefined for one that finished (and other kinds). */
export function divergenceOf(rec: CellRecord): Divergence | undefined {
  const d = rec.result.diverged;
  return d !== null && typeof d === "object" ? d as Divergence : undefined;
}

/**
 * A fine-tuning record's main dev score: NaN for a run that diverged (or a record without a numeric
 * score), never 0, so that a mean over it is NaN and lib/experiments/rates.ts ranks it last.
 */
export function scoreOf(rec: CellRecord): number {
  const s = rec.result.score;
  return typeof s === "number" && divergenceOf(rec) === undefined ? s : NaN;
}

/** Mean and sample standard deviation (n - 1; 0 for a single value). NaN mean for no values. */
export function meanStd(values: readonly number[]): { mean: number; std: number; n: number } {
  const n = values.length;
  if (n === 0) return { mean: NaN, std: NaN, n };
  const mean = values.reduce((a, b) => a + b, 0) / n;
  const v = n > 1 ? values.reduce((a, b) => a + (b - mean) ** 2, 0) / (n - 1) : 0;
  return { mean, std: Math.sqrt(v), n };
}

/** Groups items by a key, keeping first-seen order of the keys. */
export function groupBy<T>(items: readonly T[], key: (item: T) => string): Map<string, T[]> {
  const out = new Map<string, T[]>();
  for (const item of items) {
    const k = key(item);
    const list = out.get(k);
    if (list) list.push(item);
    else out.set(k, [item]);
  }
  return out;
}

/**
 * A config field by dotted path (`"mask.pct"`), falling back to the result's field of the same path;
 * undefined when neither has it.
 */
export function field(rec: CellRecord, path: string): unknown {
  const get = (obj: unknown) =>
    path.split(".").reduce<unknown>(
      (o, k) => (o !== null && typeof o === "object" ? (o as Record<string, unknown>)[k] : undefined),
      obj,
    );
  return get(rec.config) ?? get(rec.result);
}

export interface SummaryRow {
  /** The grouping fields' values, by field path. */
  [key: string]: unknown;
  n: number;
  mean: number;
  std: number;
  values: number[];
  seeds: number[];
}

/**
 * Mean and std across seeds of `value` (default the main dev score, `scoreOf`: a diverged run makes its
 * group's mean NaN), grouped by config fields (dotted paths, e.g. `["task", "mode"]` or
 * `["task", "mask.method", "mask.pct"]`). Rows come in first-seen order.
 */
export function summarize(
  records: readonly CellRecord[],
  by: readonly string[],
  value: (rec: CellRecord) => number = scoreOf,
): SummaryRow[] {
  const groups = groupBy(records, (r) => JSON.stringify(by.map((k) => field(r, k) ?? null)));
  return [...groups.values()].map((list) => {
    const values = list.map(value);
    const { mean, std, n } = meanStd(values);
    const row: SummaryRow = { n, mean, std, values, seeds: list.map((r) => Number(field(r, "seed"))) };
    for (const k of by) row[k] = field(list[0], k);
    return row;
  });
}

/** Where a fine-tuning started from: the checkpoint (`pretrained`) or BERT's random initialisation. */
export function initOf(rec: CellRecord): "pretrained" | "random" {
  return rec.config.init === "random" ? "random" : "pretrained";
}

/**
 * A fine-tuning's method: the mask method for masked runs (`fisher`, `random`, `union`), else the mode,
 * suffixed `-random-init` when it started from random weights (`full-random-init`), so that a control
 * never pools with the pretrained runs of its mode.
 */
export function methodOf(rec: FinetuneRecord): string {
  if (rec.config.mask) return rec.config.mask.method;
  const mode = String(rec.config.mode);
  return initOf(rec) === "random" ? `${mode}-random-init` : mode;
}

/** One fine-tuning cell as a flat row: what a table or DataFrame of the results holds. */
export interface FinetuneRow {
  id: string;
  /** The first grid (study order) that lists the cell, or null without manifests. */
  grid: string | null;
  task: string;
  /** `methodOf`: mode, mask method, or mode + `-random-init`. */
  method: string;
  mode: string;
  init: "pretrained" | "random";
  /** Mask size in % of LayerNorm (masked runs), else null. */
  k: number | null;
  /** A random mask's seed, else null. */
  maskSeed: number | null;
  lr: number;
  epochs: number;
  seed: number;
  metric: string;
  /** Main dev score of the best epoch (0..1), and of the last epoch; NaN when the run diverged. */
  score: number;
  finalScore: number;
  /** The run diverged (no score): the update it diverged at, else null. */
  divergedAt: number | null;
  bestEpoch: number;
  steps: number;
  trainSeconds: number;
  /** Trained encoder elements (every `bert.*` parameter; the head apart) and their share of the encoder. */
  encoderTrainable: number;
  encoderShare: number;
}

/** The row's columns, in order (also for an empty table). */
export const FINETUNE_COLUMNS: readonly (keyof FinetuneRow)[] = [
  "id",
  "grid",
  "task",
  "method",
  "mode",
  "init",
  "k",
  "maskSeed",
  "lr",
  "epochs",
  "seed",
  "metric",
  "score",
  "finalScore",
  "divergedAt",
  "bestEpoch",
  "steps",
  "trainSeconds",
  "encoderTrainable",
  "encoderShare",
];

/** One row per fine-tuning cell, in record order (the records' own numbers, nothing recomputed). */
export function finetuneRows(
  data: Pick<Results, "finetune"> & Partial<Pick<Results, "grids">>,
): FinetuneRow[] {
  const gridOf = new Map<string, string>();
  for (const m of inStudyOrder(data.grids ?? {})) {
    for (const c of m.cells) if (!gridOf.has(c.id)) gridOf.set(c.id, m.grid);
  }
  const num = (v: unknown) => (typeof v === "number" ? v : NaN);
  return data.finetune.map((r) => {
    const mask = r.config.mask;
    return {
      id: r.id,
      grid: gridOf.get(r.id) ?? null,
      task: String(r.config.task),
      method: methodOf(r),
      mode: String(r.config.mode),
      init: initOf(r),
      k: mask ? mask.pct : null,
      maskSeed: mask?.seed ?? null,
      lr: num(r.config.lr),
      epochs: num(r.config.epochs),
      seed: num(r.config.seed),
      metric: String(r.result.metric),
      score: scoreOf(r),
      finalScore: divergenceOf(r) ? NaN : num(r.result.finalScore),
      divergedAt: divergenceOf(r)?.step ?? null,
      bestEpoch: num(r.result.bestEpoch),
      steps: num(r.result.steps),
      trainSeconds: num(r.result.trainSeconds),
      encoderTrainable: num(r.result.trainable?.encoderTrainable),
      encoderShare: num(r.result.trainable?.encoderShare),
    };
  });
}
