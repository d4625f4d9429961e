/**
 * Data shaping for the study notebooks (notebooks/01..07) and the findings (findings.ts): everything
 * between the loaded result records (lib/experiments/load.ts) and a figure or table, so that notebooks
 * only load and plot, and the verdicts read exactly the numbers the notebooks show.
 *
 * - provenance: which profile, model, data, backend and settings produced the records, and the model's
 *   known weakness (said beside every verdict);
 * - component views: change and Fisher records aggregated per component (n-weighted) and laid out as a
 *   component x layer matrix;
 * - score views: mean and std over seeds of the main methods and of the masked runs, with the cell ids
 *   each number came from. A run that diverged has no score (load.ts `scoreOf`: NaN), so a group with one
 *   has a NaN mean and ranks below every finite one (lib/experiments/rates.ts); tables show "diverged"
 *   with the count, plots leave its point out and name it in the legend;
 * - mask placement: where a mask's selected LayerNorm elements sit (layer, gamma/beta, LayerNorm type),
 *   counted and divided by the candidates there.
 *
 * No TensorFlow.js is loaded (only load.ts and the pure component taxonomy).
 *
 * ```ts
 * const r = await loadResults();
 * const scores = mainScores(r);                 // one row per task x main mode
 * await showMarkdown(studyHeader(r, "Main table", ["main"]));
 * ```
 */
import { relative } from "node:path";
import {
  type ChangeCellRecord,
  divergenceOf,
  field,
  type FinetuneRecord,
  type FisherCellRecord,
  initOf,
  type MaskCellRecord,
  meanStd,
  methodOf,
  type Results,
  scoreOf,
} from "../experiments/load.ts";
import { CONTROL_NAMES, PROFILES } from "../experiments/profiles.ts";
import { atChosenRates, chosenDiverged, type RateChoice, rateText } from "../experiments/rates.ts";
import { type Component, componentGroup, COMPONENTS } from "../analysis/components.ts";
import { ROOT } from "../util/paths.ts";

/** What the views and the findings read: a loaded `Results`, or a synthetic one in tests. */
export type StudyData = Pick<Results, "profile" | "dir" | "finetune" | "change" | "fisher" | "mask">;

/** The main methods, in table order, with their display names. */
export const MAIN_METHODS = ["full", "bitfit", "layernorm", "layernorm-output"] as const;
export type MainMethod = typeof MAIN_METHODS[number];
export const METHOD_LABELS: Record<string, string> = {
  full: "Full fine-tuning",
  bitfit: "BitFit (biases)",
  layernorm: "LayerNorm",
  "layernorm-output": "Output LayerNorm",
  fisher: "Top-k% by Fisher (own task)",
  random: "Random k%",
  union: "Union of other tasks' top-k%",
  head: "Head only (control)",
  "head-pooler": "Pooler + head (control)",
  "full-random-init": "Full fine-tuning from random init (control)",
  "layernorm-random-init": "LayerNorm from random init (control)",
};

// ---------------------------------------------------------------------------------------------------
// Provenance and messages

/** The command that fills a missing grid. */
export function gridCommand(grid: string, profile: string): string {
  return `deno task normtune grid --grid ${grid} --profile ${profile}`;
}

/** The notebook message for a grid with no results (instead of a crash). */
export function notEnoughData(grid: string, profile: string, what = ""): string {
  return `**Not enough data${
    what ? ` for ${what}` : ""
  }:** the \`${grid}\` grid has no results for profile ` +
    `\`${profile}\`. Run \`${gridCommand(grid, profile)}\` (then re-run this notebook).`;
}

/** Known weaknesses of models, by the name the profile gives. */
const MODEL_CAVEATS: Record<string, string> = {
  "bert-tiny-mlm":
    "bert-tiny-mlm is a stand-in 2-layer, 128-hidden BERT pretrained from scratch on a small " +
    "corpus (held-out masked-token accuracy 15.7%, MLM loss 6.24), NOT Google's BERT-Tiny and far from the " +
    "paper's BERT: its representations are weak, so scores sit near chance on most tasks and every " +
    "component and Fisher ranking describes this model, not BERT; its pooler was never trained (random " +
    "initialisation, no next-sentence objective) (../shared/models/bert-tiny-mlm/README.md).",
  "bert-tiny-v2":
    "bert-tiny-v2 is a stand-in 2-layer, 128-hidden BERT pretrained from scratch on two CPU cores (word " +
    "embeddings from corpus co-occurrence statistics, then masked-LM; held-out masked-token accuracy 23.1%, " +
    "MLM loss 5.46), NOT Google's BERT-Tiny and far from the paper's BERT. Measured by this project's `cpu` " +
    "profile (results/cpu, 2026-12-03: best of 3 learning rates, mean of 2 seeds, 4,000 training examples " +
    "for CoLA and SST-2): full fine-tuning reached SST-2 72.3, STS-B Pearson 9.3, CoLA MCC 4.2, RTE 50.7 " +
    "and MRPC F1 81.5 (about the F1 of always answering 'paraphrase', 81.2), and the same architecture from " +
    "random initialisation did as well or better (SST-2 74.5, STS-B 14.4): its pretraining does not help " +
    "full fine-tuning. LayerNorm-only reached SST-2 61.9, against 56.3 for the head alone and 50.9 for " +
    "LayerNorm-only from random initialisation, so its frozen features carry a little. Expect scores near " +
    "chance on several tasks; every component and Fisher ranking describes this model, not BERT. Its " +
    "pooler was never trained (random initialisation, no next-sentence objective) " +
    "(../shared/models/bert-tiny-v2/README.md).",
};

const SMOKE_CAVEAT =
  "Profile `smoke` trains on 64 examples for one epoch and scores on 64 dev examples with " +
  "one seed: its numbers test that the pipeline runs, they say nothing about the paper.";

/** The known weakness of the model (and of the profile, for `smoke`), said beside every verdict. */
export function modelCaveat(model: string, profile?: string): string {
  const base = model.split("/").at(-1) ?? model;
  const known = MODEL_CAVEATS[base] ??
    `No known weakness of model \`${model}\` is recorded in this project; check its model card.`;
  return profile === "smoke" ? `${known} ${SMOKE_CAVEAT}` : known;
}

export interface StudyInfo {
  profile: string;
  /** The results folder, relative to the project root when inside it. */
  dir: string;
  /** Model names (from the records' meta) and content hashes (from their configs). */
  models: string[];
  modelHashes: string[];
  backends: string[];
  tasks: string[];
  seeds: number[];
  /** Distinct values over the fine-tuning records (null: whole split). */
  maxTrain: (number | null)[];
  maxDev: (number | null)[];
  trainExamples: number[];
  devExamples: number[];
  epochs: number[];
  maxLen: number[];
  fisherExamples: number[];
  cells: { finetune: number; change: number; fisher: number; mask: number };
}

function distinct<T>(values: Iterable<T>): T[] {
  const out: T[] = [];
  for (const v of values) if (!out.some((o) => JSON.stringify(o) === JSON.stringify(v))) out.push(v);
  return out;
}

function sortedNumbers(values: Iterable<number | null>): (number | null)[] {
  return distinct(values).sort((a, b) => (a ?? Infinity) - (b ?? Infinity));
}

/** Where a record's JSON sits, relative to the project root when inside it. */
export function recordPath(data: Pick<StudyData, "dir">, id: string): string {
  return `${displayDir(data.dir)}/${id}.json`;
}

function displayDir(dir: string): string {
  const rel = relative(ROOT, dir);
  return rel && !rel.startsWith("..") ? rel : dir;
}

/** Profile, model, data and settings, read from the records (not from the profile's code). */
export function studyInfo(data: StudyData): StudyInfo {
  const all = [...data.finetune, ...data.change, ...data.fisher, ...data.mask];
  const hash = (r: { config: Record<string, unknown> }) => {
    const m = r.config.model as { sha256?: string } | undefined;
    return m?.sha256 ? m.sha256.slice(0, 12) : undefined;
  };
  return {
    profile: data.profile,
    dir: displayDir(data.dir),
    models: distinct(all.map((r) => r.meta?.model).filter((m): m is string => typeof m === "string")),
    modelHashes: distinct(all.map(hash).filter((h): h is string => !!h)),
    backends: distinct(all.map((r) => r.config.backend).filter((b): b is string => typeof b === "string")),
    tasks: distinct([...data.fisher, ...data.finetune, ...data.change].map((r) => String(r.config.task))),
    seeds: distinct(data.finetune.map((r) => Number(r.config.seed))).sort((a, b) => a - b),
    maxTrain: sortedNumbers(data.finetune.map((r) => (r.config.maxTrain as number | null) ?? null)),
    maxDev: sortedNumbers(data.finetune.map((r) => (r.config.maxDev as number | null) ?? null)),
    trainExamples: sortedNumbers(data.finetune.map((r) => Number(r.result.trainExamples))) as number[],
    devExamples: sortedNumbers(data.finetune.map((r) => Number(r.result.devExamples))) as number[],
    epochs: sortedNumbers(data.finetune.map((r) => Number(r.config.epochs))) as number[],
    maxLen: sortedNumbers(data.finetune.map((r) => Number(r.config.maxLen))) as number[],
    fisherExamples: sortedNumbers(data.fisher.map((r) => Number(r.result.N))) as number[],
    cells: {
      finetune: data.finetune.length,
      change: data.change.length,
      fisher: data.fisher.length,
      mask: data.mask.length,
    },
  };
}

/** The model name the records name (the first one), else the profile's model, else "unknown model". */
export function modelName(data: StudyData): string {
  return studyInfo(data).models[0] ?? (PROFILES as Record<string, { model: string }>)[data.profile]?.model ??
    "unknown model";
}

const list = (xs: readonly unknown[], none = "none") =>
  xs.length ? xs.map((x) => (x === null ? "whole split" : String(x))).join(", ") : none;

/**
 * The Markdown a notebook opens its output with: what produced the numbers below (read from the records)
 * and the model's known weakness.
 */
export function studyHeader(data: StudyData, title: string): string {
  const i = studyInfo(data);
  const lines = [
    `### ${title}: profile \`${i.profile}\``,
    "",
    `- Results: \`${i.dir}\` (${i.cells.finetune} fine-tuning, ${i.cells.fisher} Fisher, ${i.cells.change} ` +
    `change, ${i.cells.mask} mask records)`,
    `- Model: ${list(i.models, "not recorded")} (sha256 ${list(i.modelHashes, "?")}), backend ` +
    `${list(i.backends, "?")}`,
    `- Tasks: ${list(i.tasks)}; seeds: ${list(i.seeds)}`,
    `- Fine-tuning data: train subset ${list(i.maxTrain)} (examples used: ${list(i.trainExamples)}), dev ` +
    `subset ${list(i.maxDev)} (scored: ${list(i.devExamples)}); epochs ${list(i.epochs)}; max length ` +
    `${list(i.maxLen)}`,
    `- Fisher: N = ${list(i.fisherExamples)} training examples per task, pretrained model with a fresh head`,
    "",
    `> **Model caveat.** ${modelCaveat(modelName(data), i.profile)}`,
  ];
  return lines.join("\n");
}

// ---------------------------------------------------------------------------------------------------
// Component views (change and Fisher records)

/** A per component x layer x kind record with some numeric fields (change or Fisher). */
export interface ComponentRow {
  component: string;
  layer: number | null;
  kind: "weight" | "bias";
  n: number;
  /** Change records: measured from zero (a fresh head), left out of rankings. */
  baseMissing?: boolean;
}

export interface RankedComponent {
  /** Component name, or group name with `by: "group"`. */
  name: string;
  group: string;
  kind: "weight" | "bias" | "all";
  n: number;
  /** n-weighted mean of the value (total over elements / elements). */
  value: number;
}

export interface RankOptions {
  by?: "component" | "component+kind" | "group";
  /** Left out (default the classifier: trained from scratch, always trained, so no candidate). */
  exclude?: readonly string[];
  /** Keep only these kinds. */
  kind?: "weight" | "bias";
}

/**
 * Aggregates records over layers (n-weighted mean of `value`, as lib/analysis/weight_change.ts and fisher.ts
 * rank) and sorts descending; ties by name. Records flagged `baseMissing` (changes measured from zero)
 * are left out.
 */
export function rankComponentRows<R extends ComponentRow>(
  rows: readonly R[],
  value: keyof R & string,
  opts: RankOptions = {},
): RankedComponent[] {
  const by = opts.by ?? "component";
  const exclude = new Set(opts.exclude ?? ["classifier"]);
  const acc = new Map<string, RankedComponent & { total: number }>();
  for (const r of rows) {
    if (exclude.has(r.component) || r.baseMissing || (opts.kind && r.kind !== opts.kind)) continue;
    const raw = r[value];
    // null (a relative change over an all-zero base) is missing, not zero.
    if (raw === null || raw === undefined) continue;
    const v = Number(raw);
    if (!Number.isFinite(v)) continue;
    const group = componentGroup(r.component as Component);
    const name = by === "group" ? group : r.component;
    const kind = by === "component+kind" ? r.kind : "all";
    const key = `${name}|${kind}`;
    const a = acc.get(key) ?? { name, group, kind, n: 0, value: 0, total: 0 };
    a.n += r.n;
    a.total += v * r.n;
    a.value = a.n ? a.total / a.n : 0;
    acc.set(key, a);
  }
  return [...acc.values()]
    .map(({ total: _t, ...rest }) => rest)
    .sort((a, b) => b.value - a.value || a.name.localeCompare(b.name) || a.kind.localeCompare(b.kind));
}

/** The encoder components (those with a layer), in taxonomy order. */
export const ENCODER_COMPONENTS: readonly Component[] = COMPONENTS.slice(
  COMPONENTS.indexOf("query"),
  COMPONENTS.indexOf("output_layernorm") + 1,
);

export interface Matrix {
  /** Column labels (layers). */
  x: string[];
  /** Row labels (components). */
  y: string[];
  z: (number | null)[][];
}

export interface MatrixOptions {
  /** Rows (default the encoder components present, in taxonomy order). */
  components?: readonly string[];
  kind?: "weight" | "bias";
  /** log10 of each cell (values <= 0 become null): for Fisher scores spanning many decades. */
  log10?: boolean;
}

/** Component x encoder layer matrix of `value` (n-weighted over the kinds kept). */
export function componentLayerMatrix<R extends ComponentRow>(
  rows: readonly R[],
  value: keyof R & string,
  opts: MatrixOptions = {},
): Matrix {
  const inLayers = rows.filter((r) => r.layer !== null && (!opts.kind || r.kind === opts.kind));
  const layers = distinct(inLayers.map((r) => r.layer as number)).sort((a, b) => a - b);
  const present = new Set(inLayers.map((r) => r.component));
  const comps = (opts.components ?? ENCODER_COMPONENTS).filter((c) => present.has(c));
  const z = comps.map((c) =>
    layers.map((l) => {
      let n = 0, total = 0;
      for (const r of inLayers) {
        if (r.component !== c || r.layer !== l) continue;
        const raw = r[value];
        if (raw === null || raw === undefined) continue;
        const v = Number(raw);
        if (!Number.isFinite(v)) continue;
        n += r.n;
        total += v * r.n;
      }
      if (n === 0) return null;
      const mean = total / n;
      if (!opts.log10) return mean;
      return mean > 0 ? Math.log10(mean) : null;
    })
  );
  return { x: layers.map((l) => `layer ${l}`), y: [...comps], z };
}

/** The change and Fisher records of a study, by task (first record per task). */
export function changeByTask(data: Pick<StudyData, "change">): Map<string, ChangeCellRecord> {
  return byTask(data.change);
}

export function fisherByTask(data: Pick<StudyData, "fisher">): Map<string, FisherCellRecord> {
  return byTask(data.fisher);
}

function byTask<T extends { config: Record<string, unknown> }>(records: readonly T[]): Map<string, T> {
  const out = new Map<string, T>();
  for (const r of records) {
    const t = String(r.config.task);
    if (!out.has(t)) out.set(t, r);
  }
  return out;
}

// ---------------------------------------------------------------------------------------------------
// Scores

export interface ScoreGroup {
  task: string;
  /** Main mode (`full`, ...), mask method (`fisher`, `random`, `union`) or control (load.ts `methodOf`). */
  method: string;
  /** Mask size in % of the LayerNorm elements (masked runs), else null. */
  pct: number | null;
  metric: string;
  /** Over seeds (main dev score of the best epoch, on the 0..1 scale; NaN when a run diverged). */
  n: number;
  mean: number;
  std: number;
  values: number[];
  /** How many of the runs diverged (no score): then `mean` is NaN. */
  diverged: number;
  seeds: number[];
  /** The fine-tuning cells' ids. */
  ids: string[];
  /** The learning rate of the runs (main methods and controls: the one chosen per task and method). */
  lr: number;
  /** Main methods and controls: the search behind `lr` (every rate tried, lib/experiments/rates.ts). */
  choice?: RateChoice;
  /** Trained encoder elements (every `bert.*` parameter; the head is counted apart) and head elements. */
  trainable: number;
  head: number;
  encoderTotal: number;
  /** trainable / encoderTotal. */
  share: number;
  /** Masked runs: selected elements and their share of the LayerNorm elements. */
  selected?: number;
  maskShare?: number;
}

function scoreGroups(records: readonly FinetuneRecord[], key: (r: FinetuneRecord) => string): ScoreGroup[] {
  const groups = new Map<string, FinetuneRecord[]>();
  for (const r of records) {
    const k = key(r);
    groups.set(k, [...(groups.get(k) ?? []), r]);
  }
  return [...groups.values()].map((list) => {
    const first = list[0];
    const values = list.map(scoreOf);
    const { mean, std, n } = meanStd(values);
    const mask = first.config.mask;
    // A diverged run's record may lack the counts (written from the run's config.json when present).
    const t = list.find((r) => r.result.trainable)?.result.trainable;
    const g: ScoreGroup = {
      task: String(first.config.task),
      method: methodOf(first),
      pct: mask ? mask.pct : null,
      metric: String(first.result.metric),
      n,
      mean,
      std,
      values,
      diverged: list.filter((r) => divergenceOf(r)).length,
      seeds: list.map((r) => Number(r.config.seed)),
      ids: list.map((r) => r.id),
      lr: Number(first.config.lr),
      trainable: t?.encoderTrainable ?? NaN,
      head: Number((t as { head?: number } | undefined)?.head ?? NaN),
      encoderTotal: t?.encoderTotal ?? NaN,
      share: t?.encoderShare ?? NaN,
    };
    if (mask) {
      g.selected = Number(field(first, "mask.selected") ?? NaN);
      g.maskShare = Number(first.result.mask?.share ?? NaN);
    }
    return g;
  });
}

/** Groups of searched runs at the rate chosen per task and method, each with its search (`choice`). */
function atBestRate(records: readonly FinetuneRecord[]): ScoreGroup[] {
  const { records: best, choices } = atChosenRates(records);
  return scoreGroups(best, (r) => `${r.config.task}|${methodOf(r)}`).map((g) => ({
    ...g,
    choice: choices.find((c) => c.task === g.task && c.method === g.method),
  }));
}

/** The main methods' runs: pretrained, no mask, a main mode (every rate). */
function mainRuns(data: Pick<StudyData, "finetune">): FinetuneRecord[] {
  return data.finetune.filter((r) =>
    !r.config.mask && initOf(r) === "pretrained" &&
    (MAIN_METHODS as readonly string[]).includes(String(r.config.mode))
  );
}

/** The controls' runs (lib/experiments/profiles.ts `CONTROLS`, every rate). */
function controlRuns(data: Pick<StudyData, "finetune">): FinetuneRecord[] {
  return data.finetune.filter((r) =>
    !r.config.mask && (CONTROL_NAMES as readonly string[]).includes(methodOf(r))
  );
}

/**
 * Mean and std over seeds of each task x main mode (pretrained runs without a mask) at the learning rate
 * chosen for it (lib/experiments/rates.ts: best mean over seeds), in record order. Random-init controls
 * of the same mode are left out: they are `controlScores`.
 */
export function mainScores(data: Pick<StudyData, "finetune">): ScoreGroup[] {
  return atBestRate(mainRuns(data));
}

/** As `mainScores`, for each task x control (lib/experiments/profiles.ts `CONTROLS`). */
export function controlScores(data: Pick<StudyData, "finetune">): ScoreGroup[] {
  return atBestRate(controlRuns(data));
}

/**
 * Mean and std over seeds of every task x method x learning rate of the main methods and controls (the
 * search before the choice), in record order: for score-vs-rate plots and tables.
 */
export function rateScores(data: Pick<StudyData, "finetune">): ScoreGroup[] {
  return scoreGroups(
    [...mainRuns(data), ...controlRuns(data)],
    (r) => `${r.config.task}|${methodOf(r)}|${r.config.lr}`,
  );
}

/** Mean and std over seeds of each task x mask method x k (random masks pooled over their seeds). */
export function maskScores(data: Pick<StudyData, "finetune">): ScoreGroup[] {
  const masked = data.finetune.filter((r) => !!r.config.mask);
  return scoreGroups(masked, (r) => `${r.config.task}|${r.config.mask!.method}|${r.config.mask!.pct}`);
}

/** The group of one task and method (and k), if present. */
export function findScore(
  groups: readonly ScoreGroup[],
  task: string,
  method: string,
  pct: number | null = null,
): ScoreGroup | undefined {
  return groups.find((g) => g.task === task && g.method === method && (pct === null || g.pct === pct));
}

/** Tasks in first-seen order. */
export function tasksOf(groups: readonly { task: string }[]): string[] {
  return distinct(groups.map((g) => g.task));
}

/**
 * `48.44 ± 1.20` on the points (x100) scale; a single seed shows no spread. A group with a diverged run
 * has no mean: `diverged (1 of 2 seeds)`.
 */
export function pointsText(g: Pick<ScoreGroup, "mean" | "std" | "n"> & { diverged?: number }): string {
  if (!Number.isFinite(g.mean)) {
    return g.diverged ? `diverged (${g.diverged} of ${g.n} seed${g.n === 1 ? "" : "s"})` : "n/a";
  }
  const m = (100 * g.mean).toFixed(2);
  return g.n > 1 ? `${m} ± ${(100 * g.std).toFixed(2)}` : `${m} (1 seed)`;
}

/**
 * The chosen rate and what was tried, e.g. `1e-2 of {1e-3, 3e-3, 1e-2}, at the edge`: at the smallest or
 * largest rate tried a wider search might do better; `uneven` when the rates were compared on different
 * seeds (a search not finished); and why, when the chosen rate's runs include a diverged one
 * (lib/experiments/rates.ts `chosenDiverged`: every rate tried diverged on some seed, say).
 */
export function rateNote(g: Pick<ScoreGroup, "lr" | "choice">): string {
  const c = g.choice;
  const lr = rateText(g.lr);
  if (!c || c.rates.length < 2) return lr;
  const notes = [c.atEdge ? "at the edge" : "", c.uneven ? "seeds uneven" : "", chosenDiverged(c) ?? ""]
    .filter(Boolean);
  return `${lr} of {${c.rates.map((r) => rateText(r.lr)).join(", ")}}${
    notes.length ? `, ${notes.join(", ")}` : ""
  }`;
}

/**
 * The main table: one row per task x method, then the mean over tasks of each method. `methods` (default
 * the main ones) sets which and in what order, e.g. `[...MAIN_METHODS, ...CONTROL_NAMES]` with the controls'
 * groups added.
 */
export function mainTableRows(
  groups: readonly ScoreGroup[],
  methods: readonly string[] = MAIN_METHODS,
): Record<string, unknown>[] {
  const rows: Record<string, unknown>[] = [];
  for (const task of tasksOf(groups)) {
    for (const m of methods) {
      const g = findScore(groups, task, m);
      if (!g) continue;
      rows.push({
        task,
        method: METHOD_LABELS[m],
        metric: g.metric,
        "score (x100, mean ± std)": pointsText(g),
        "lr (best of those tried)": rateNote(g),
        seeds: g.n,
        "trained encoder params": g.trainable,
        "share of BERT (%)": Number((100 * g.share).toPrecision(3)),
        "+ head": g.head,
      });
    }
  }
  for (const row of averageOverTasks(groups, methods)) {
    rows.push({
      task: `mean of ${row.tasks} task(s)`,
      method: METHOD_LABELS[row.method],
      metric: "main",
      "score (x100, mean ± std)": Number.isFinite(row.mean)
        ? (100 * row.mean).toFixed(2)
        : "n/a (diverged on some task)",
      "lr (best of those tried)": "",
      seeds: "",
      "trained encoder params": row.trainable,
      "share of BERT (%)": Number((100 * row.share).toPrecision(3)),
      "+ head": "",
    });
  }
  return rows;
}

/**
 * The mean over tasks of each main method's task means, for methods present on every task that has any
 * main result (so that averages compare the same tasks); NaN when a task's mean is NaN (a diverged run).
 */
export function averageOverTasks(
  groups: readonly ScoreGroup[],
  methods: readonly string[] = MAIN_METHODS,
): { method: string; tasks: number; mean: number; trainable: number; share: number }[] {
  const tasks = tasksOf(groups);
  const out = [];
  for (const m of methods) {
    const gs = tasks.map((t) => findScore(groups, t, m));
    if (gs.some((g) => !g) || gs.length === 0) continue;
    const present = gs as ScoreGroup[];
    out.push({
      method: m as string,
      tasks: present.length,
      mean: present.reduce((a, g) => a + g.mean, 0) / present.length,
      trainable: present[0].trainable,
      share: present[0].share,
    });
  }
  return out;
}

// ---------------------------------------------------------------------------------------------------
// Mask placement (where the top Fisher LayerNorm elements sit)

export interface PlacementPart {
  /** "embeddings", "layer 0", ...; or "gamma"/"beta"; or "embeddings"/"attention"/"output". */
  label: string;
  selected: number;
  candidates: number;
  /** selected / candidates. */
  density: number;
  /** selected / all selected. */
  share: number;
}

export interface Placement {
  task: string;
  pct: number;
  id: string;
  selected: number;
  /** Encoder layers in the model (from the tensor names). */
  layers: number;
  byLayer: PlacementPart[];
  byKind: PlacementPart[];
  byLnType: PlacementPart[];
}

const LN_RE =
  /^bert\.(?:embeddings\.LayerNorm|encoder\.layer\.(\d+)\.(attention\.output|output)\.LayerNorm)\.(weight|bias)$/;

/** Where a mask record's selected elements sit, from its per-tensor counts. */
export function maskPlacement(rec: MaskCellRecord): Placement {
  const tensors = (rec.result.byTensor ?? []) as { name: string; selected: number; size: number }[];
  const layer = new Map<string, { s: number; c: number }>();
  const kind = new Map<string, { s: number; c: number }>();
  const lnType = new Map<string, { s: number; c: number }>();
  const add = (m: Map<string, { s: number; c: number }>, k: string, s: number, c: number) => {
    const a = m.get(k) ?? { s: 0, c: 0 };
    a.s += s;
    a.c += c;
    m.set(k, a);
  };
  let layers = 0, selected = 0;
  for (const t of tensors) {
    const m = LN_RE.exec(t.name);
    if (!m) continue;
    const l = m[1] === undefined ? undefined : Number(m[1]);
    if (l !== undefined) layers = Math.max(layers, l + 1);
    add(layer, l === undefined ? "embeddings" : `layer ${l}`, t.selected, t.size);
    add(kind, m[3] === "weight" ? "gamma" : "beta", t.selected, t.size);
    add(
      lnType,
      l === undefined ? "embeddings" : m[2] === "output" ? "output" : "attention",
      t.selected,
      t.size,
    );
    selected += t.selected;
  }
  const parts = (m: Map<string, { s: number; c: number }>, order: string[]) =>
    order.filter((k) => m.has(k)).map((k) => {
      const a = m.get(k)!;
      return {
        label: k,
        selected: a.s,
        candidates: a.c,
        density: a.c ? a.s / a.c : 0,
        share: selected ? a.s / selected : 0,
      };
    });
  return {
    task: String(rec.config.task ?? rec.result.task ?? ""),
    pct: Number(rec.config.pct),
    id: rec.id,
    selected,
    layers,
    byLayer: parts(layer, ["embeddings", ...Array.from({ length: layers }, (_, i) => `layer ${i}`)]),
    byKind: parts(kind, ["gamma", "beta"]),
    byLnType: parts(lnType, ["embeddings", "attention", "output"]),
  };
}

/** The own-task top-k% masks by Fisher, by task, for one k. */
export function topMasks(data: Pick<StudyData, "mask">, pct: number): Map<string, MaskCellRecord> {
  const out = new Map<string, MaskCellRecord>();
  for (const r of data.mask) {
    if (r.config.method !== "fisher" || Number(r.config.pct) !== pct || !r.config.task) continue;
    if (!out.has(String(r.config.task))) out.set(String(r.config.task), r);
  }
  return out;
}

/** The k values of the own-task Fisher masks present, ascending. */
export function topMaskPcts(data: Pick<StudyData, "mask">): number[] {
  return distinct(data.mask.filter((r) => r.config.method === "fisher").map((r) => Number(r.config.pct)))
    .sort((a, b) => a - b);
}

/**
 * The value in `available` closest to `target` within [lo, hi] (ties: the smaller); undefined if none.
 * Used to pick "k about 10%" from what a profile ran.
 */
export function closestK(
  available: readonly number[],
  target: number,
  lo: number,
  hi: number,
): number | undefined {
  let best: number | undefined;
  for (const k of available) {
    if (k < lo || k > hi) continue;
    if (
      best === undefined || Math.abs(k - target) < Math.abs(best - target) ||
      (Math.abs(k - target) === Math.abs(best - target) && k < best)
    ) best = k;
  }
  return best;
}

// ---------------------------------------------------------------------------------------------------
// Figure data for the notebooks

/** Rows: one per component, a column per task with `rank (value)`; components ordered by their mean rank. */
export function rankingTable<R extends ComponentRow>(
  byTaskRows: ReadonlyMap<string, readonly R[]>,
  value: keyof R & string,
  opts: RankOptions = {},
): Record<string, unknown>[] {
  const rankings = [...byTaskRows].map(([task, rows]) =>
    [task, rankComponentRows(rows, value, opts)] as const
  );
  const names = distinct(rankings.flatMap(([, r]) => r.map((x) => x.name)));
  const meanRank = (name: string) => {
    const ranks = rankings.map(([, r]) => r.findIndex((x) => x.name === name)).filter((i) => i >= 0);
    return ranks.reduce((a, b) => a + b, 0) / Math.max(1, ranks.length);
  };
  return names.sort((a, b) => meanRank(a) - meanRank(b) || a.localeCompare(b)).map((name) => {
    const row: Record<string, unknown> = { component: name };
    for (const [task, r] of rankings) {
      const i = r.findIndex((x) => x.name === name);
      row[task] = i < 0 ? "" : `${i + 1} (${r[i].value === 0 ? "0" : r[i].value.toExponential(2)})`;
    }
    return row;
  });
}

/** A line of plot.ts `lineBands`: x = share of LayerNorm (0..1), y and band in points. */
export interface ScoreLine {
  name: string;
  x: number[];
  y: number[];
  error?: number[];
  dash?: "solid" | "dash" | "dot" | "dashdot";
}

/**
 * A line through the groups' means (x100, std band): a group with no finite mean (a diverged run) has no
 * point, and the line's name says where it diverged (`where`), so the plot leaves a gap, not a fake value.
 */
function scoreLine(
  name: string,
  groups: readonly ScoreGroup[],
  x: (g: ScoreGroup) => number,
  where: (g: ScoreGroup) => string,
): ScoreLine {
  const shown = groups.filter((g) => Number.isFinite(g.mean));
  const gone = groups.filter((g) => !Number.isFinite(g.mean));
  return {
    name: gone.length ? `${name} (diverged at ${gone.map(where).join(", ")})` : name,
    x: shown.map(x),
    y: shown.map((g) => 100 * g.mean),
    error: shown.map((g) => (g.n > 1 ? 100 * g.std : 0)),
  };
}

/**
 * Notebook 4's lines for one task: top-k% by Fisher and random k% (mean ± std over seeds, x100), plus
 * LayerNorm-only and full fine-tuning as flat dashed references over the same x range. A k whose runs
 * diverged has no point (named in the line's name); a reference that diverged has no line, only its name.
 */
export function topkLines(data: Pick<StudyData, "finetune">, task: string): ScoreLine[] {
  const ms = maskScores(data).filter((g) => g.task === task);
  const lines: ScoreLine[] = [];
  const xs = distinct(ms.filter((g) => g.method !== "union").map((g) => g.pct as number)).sort((a, b) =>
    a - b
  );
  for (const method of ["fisher", "random"]) {
    const gs = ms.filter((g) => g.method === method).sort((a, b) => (a.pct as number) - (b.pct as number));
    if (!gs.length) continue;
    lines.push(scoreLine(METHOD_LABELS[method], gs, (g) => (g.pct as number) / 100, (g) => `${g.pct}%`));
  }
  const main = mainScores(data);
  for (const method of ["layernorm", "full"]) {
    const g = findScore(main, task, method);
    if (!g || xs.length === 0) continue;
    const finite = Number.isFinite(g.mean);
    lines.push({
      name: `${METHOD_LABELS[method]} (main run)${finite ? "" : ": diverged"}`,
      x: finite ? [xs[0] / 100, xs.at(-1)! / 100] : [],
      y: finite ? [100 * g.mean, 100 * g.mean] : [],
      dash: "dash",
    });
  }
  return lines;
}

/**
 * The learning-rate search as table rows: per task x method (main methods, then controls) the score at
 * every rate tried (x100, mean ± std over seeds; `diverged (1 of 2 seeds)` for a rate with a diverged
 * run), the chosen one marked (lib/experiments/rates.ts), and the spread over the rates with a score.
 */
export function rateTableRows(
  data: Pick<StudyData, "finetune">,
  methods: readonly string[] = [...MAIN_METHODS, ...CONTROL_NAMES],
): Record<string, unknown>[] {
  const chosen = [...mainScores(data), ...controlScores(data)];
  const groups = rateScores(data);
  const rows: Record<string, unknown>[] = [];
  for (const task of tasksOf(groups)) {
    for (const method of methods) {
      const best = findScore(chosen, task, method);
      const gs = groups.filter((g) => g.task === task && g.method === method).sort((a, b) => a.lr - b.lr);
      if (!best || !gs.length) continue;
      const means = gs.map((g) => g.mean).filter(Number.isFinite);
      const spread = (100 * (Math.max(...means) - Math.min(...means))).toFixed(2);
      rows.push({
        task,
        method: METHOD_LABELS[method] ?? method,
        metric: best.metric,
        "score at each lr (x100, mean ± std)": gs.map((g) =>
          `${rateText(g.lr)}: ${pointsText(g)}${g.lr === best.lr ? " (chosen)" : ""}`
        ).join("; "),
        "best - worst (points)": means.length === 0
          ? "n/a (every rate diverged)"
          : means.length < gs.length
          ? `${spread} (without diverged rates)`
          : spread,
      });
    }
  }
  return rows;
}

/**
 * The fine-tuning runs that diverged (their records have no score), one row each in record order: task,
 * method, k, rate, seed, where and why training stopped, and the cell id.
 */
export function divergedRows(data: Pick<StudyData, "finetune">): Record<string, unknown>[] {
  return data.finetune.flatMap((r) => {
    const d = divergenceOf(r);
    if (!d) return [];
    const mask = r.config.mask;
    return [{
      task: String(r.config.task),
      method: METHOD_LABELS[methodOf(r)] ?? methodOf(r),
      k: mask ? `${mask.pct}%` : "",
      lr: rateText(Number(r.config.lr)),
      seed: Number(r.config.seed),
      "diverged at": `step ${d.step} (epoch ${d.epoch}, batch ${d.batch})`,
      reason: d.reason,
      sources: r.id,
    }];
  });
}

/**
 * Notebook 3's learning-rate sensitivity for one task: per method (main methods, then controls) its mean
 * ± std over seeds (x100) at each rate tried, rates ascending (plot with a log x axis). A rate with a
 * diverged run has no point; the line's name says `(diverged at 1e-2)`.
 */
export function rateLines(
  data: Pick<StudyData, "finetune">,
  task: string,
  methods: readonly string[] = [...MAIN_METHODS, ...CONTROL_NAMES],
): ScoreLine[] {
  const groups = rateScores(data).filter((g) => g.task === task);
  return methods.flatMap((method) => {
    const gs = groups.filter((g) => g.method === method).sort((a, b) => a.lr - b.lr);
    if (!gs.length) return [];
    return [{
      ...scoreLine(METHOD_LABELS[method] ?? method, gs, (g) => g.lr, (g) => rateText(g.lr)),
      dash: (CONTROL_NAMES as readonly string[]).includes(method) ? "dot" as const : "solid" as const,
    }];
  });
}

/**
 * Bars per method over tasks (x100, std as error), for plot.ts `groupedBars`; tasks where a method is
 * missing or has no mean (a diverged run; the tables say so) are skipped.
 */
export function scoreBars(
  groups: readonly ScoreGroup[],
  methods: readonly { method: string; pct?: number | null; name?: string }[],
): { tasks: string[]; series: { name: string; values: number[]; errors: number[] }[] } {
  const tasks = tasksOf(groups).filter((t) =>
    methods.every((m) => Number.isFinite(findScore(groups, t, m.method, m.pct ?? null)?.mean ?? NaN))
  );
  const series = methods.map((m) => {
    const gs = tasks.map((t) => findScore(groups, t, m.method, m.pct ?? null)!);
    return {
      name: m.name ?? METHOD_LABELS[m.method] ?? m.method,
      values: gs.map((g) => 100 * g.mean),
      errors: gs.map((g) => (g.n > 1 ? 100 * g.std : 0)),
    };
  });
  return { tasks, series };
}

/**
 * LayerNorm Fisher by LayerNorm and by gamma/beta: rows gamma and beta, one column per LayerNorm in model
 * order (embeddings, then attention and output of each layer); log10 of the mean Fisher per element.
 */
export function layerNormFisherMatrix(rows: readonly (ComponentRow & { mean?: number })[]): Matrix {
  const ln = rows.filter((r) =>
    r.component === "embeddings_layernorm" || r.component === "attention_output_layernorm" ||
    r.component === "output_layernorm"
  );
  const label = (r: ComponentRow) =>
    r.layer === null
      ? "embeddings"
      : `layer ${r.layer} ${r.component === "output_layernorm" ? "output" : "attention"}`;
  const order = (r: ComponentRow) =>
    r.layer === null ? -1 : 2 * r.layer + (r.component === "output_layernorm" ? 1 : 0);
  const cols = distinct([...ln].sort((a, b) => order(a) - order(b)).map(label));
  const z = (["weight", "bias"] as const).map((kind) =>
    cols.map((c) => {
      const r = ln.find((x) => x.kind === kind && label(x) === c) as
        | (ComponentRow & { mean?: number })
        | undefined;
      const v = Number(r?.mean);
      return r && v > 0 ? Math.log10(v) : null;
    })
  );
  return { x: cols, y: ["gamma (weight)", "beta (bias)"], z };
}

/**
 * Notebook 6's bars: one group per part (layer, gamma/beta or LayerNorm type), one series per task;
 * values in % (`density`: selected / candidates there; `share`: of the whole selection).
 */
export function placementBars(
  placements: readonly Placement[],
  part: "byLayer" | "byKind" | "byLnType",
  what: "density" | "share",
): { groups: string[]; series: { name: string; values: number[] }[] } {
  const groups = distinct(placements.flatMap((p) => p[part].map((x) => x.label)));
  return {
    groups,
    series: placements.map((p) => ({
      name: p.task,
      values: groups.map((g) => 100 * (p[part].find((x) => x.label === g)?.[what] ?? 0)),
    })),
  };
}
