/**
 * The executors of the study's cell kinds: what a cell does with its configuration (lib/experiments/
 * study.ts) and its dependencies' artefacts, and the small summary it returns for the record.
 *
 * - `finetune`: lib/tuning/trainer.ts `finetune()` with the cell's runs folder as OUT (so a killed cell
 *   resumes from the trainer's state); artefact `delta.safetensors`. A run that diverges (lib/tuning/
 *   epochs.ts `DivergedError`: deterministic, so it would diverge again on every rerun) is a finished cell,
 *   not a failure: its record has `diverged` ({ step, epoch, batch, reason }), `score: null` and no
 *   artefact, so it is not recomputed, the learning-rate search ranks its rate last
 *   (lib/experiments/rates.ts) and the grids waiting on main go on. A cell that needs its delta (`change`)
 *   fails, saying so.
 * - `fisher`: empirical Fisher of the pretrained model with a fresh head (lib/jobs/fisher_job.ts);
 *   artefact `fisher.safetensors`; the record holds the per component x layer x kind records and rankings.
 * - `change`: base checkpoint vs base + the full fine-tuning's delta (lib/jobs/change_job.ts).
 * - `mask`: top-k% by Fisher, random of the same size, or the union of other tasks' masks
 *   (lib/jobs/mask_job.ts); artefact `mask.safetensors`; the record holds where the elements sit.
 *
 * Each executor checks its cell's configuration (the same checks as the command line's) and maps it onto
 * the operation's configuration: the CLI and the study run the same functions.
 *
 * ```ts
 * const runner = new Runner({ store, executors: studyExecutors({ modelDir, glueDir }) });
 * ```
 */
import { join } from "node:path";
import { readConfig } from "../bert/config.ts";
import { isLayerNorm, parameterShapes } from "../bert/names.ts";
import type { FisherParams } from "../analysis/fisher_information.ts";
import type { MaskGrouping } from "../analysis/mask_selection.ts";
import { runChange } from "../jobs/change_job.ts";
import { fisherConfig, runFisher } from "../jobs/fisher_job.ts";
import { type MaskMethod, runMask } from "../jobs/mask_job.ts";
import { getTask } from "../glue/mod.ts";
import type { GemmName } from "../backend/gemm_choice.ts";
import type { BackendName } from "../tf.ts";
import {
  type Hyperparameters,
  pickHyperparameters,
  resolveHyperparameters,
} from "../tuning/hyperparameters.ts";
import { DivergedError, finetune, type RunConfig, runPaths } from "../tuning/trainer.ts";
import { readJsonIfExists } from "../util/atomic.ts";
import { divergenceOf } from "./load.ts";
import type { CellContext, Executors } from "./runner.ts";
import { STUDY_BLAS_THREADS } from "./study.ts";

export interface ExecEnv {
  /** The resolved model folder (the one whose identity the cells hold). */
  modelDir: string;
  glueDir: string;
  backend?: BackendName;
  /** The wasm backend's product (the one the cells' ids were made with); OpenBLAS on one thread. */
  gemm?: GemmName;
  /** Show the trainer's progress lines (default: only when stderr is a terminal). */
  verbose?: boolean;
}

export const ARTEFACTS = {
  finetune: "delta.safetensors",
  fisher: "fisher.safetensors",
  mask: "mask.safetensors",
} as const;

/** Significant digits kept in records: enough for any plot, and the JSON stays small. */
function round(x: number, digits = 6): number {
  return Number.isFinite(x) ? Number(x.toPrecision(digits)) : x;
}

function roundAll<T>(value: T): T {
  return JSON.parse(
    JSON.stringify(value, (_k, v) => (typeof v === "number" && !Number.isInteger(v) ? round(v) : v)),
  );
}

/** A cell's configuration, with a message that names the cell when a field is wrong. */
function configOf(ctx: CellContext): Record<string, unknown> {
  const c = ctx.cell.config;
  if (typeof c !== "object" || c === null) throw new Error(`cell ${ctx.cell.id}: no configuration`);
  return c as Record<string, unknown>;
}

function field<T>(ctx: CellContext, name: string, ok: (v: unknown) => boolean, what: string): T {
  const v = configOf(ctx)[name];
  if (!ok(v)) {
    throw new Error(
      `cell ${ctx.cell.id} (${ctx.cell.kind}): "${name}" must be ${what}, got ${JSON.stringify(v)}`,
    );
  }
  return v as T;
}

const isString = (v: unknown) => typeof v === "string";
const isNumber = (v: unknown) => typeof v === "number" && Number.isFinite(v);
const optional = (test: (v: unknown) => boolean) => (v: unknown) => v === undefined || test(v);

/** Runs a step (its promise too), naming the cell in what it throws. */
function checked<T>(ctx: CellContext, make: () => T): T {
  const named = (err: unknown) =>
    new Error(`cell ${ctx.cell.id} (${ctx.cell.kind}): ${(err as Error).message}`);
  try {
    const r = make();
    return (r instanceof Promise ? r.catch((err) => Promise.reject(named(err))) : r) as T;
  } catch (err) {
    throw named(err);
  }
}

/**
 * Throws unless a cell was computed with what its configuration says (`backend`: "wasm",
 * "wasm+openblas-t1", ...): a record must never label one product's bits with another's identity.
 */
function computedAsDeclared(ctx: CellContext, computed: string): void {
  const declared = configOf(ctx).backend;
  if (typeof declared === "string" && declared !== computed) {
    throw new Error(
      `cell ${ctx.cell.id} (${ctx.cell.kind}) is declared for backend ${declared} but was computed with ` +
        `${computed}: run it with the --backend and --gemm its grid was made with`,
    );
  }
}

/**
 * A fine-tuning cell's configuration: task, mode, the mask's spec when it trains one, and the trainer's
 * hyperparameters (lib/tuning/hyperparameters.ts), checked by the trainer's own function.
 */
interface FinetuneCell {
  task: string;
  mode: string;
  mask?: Record<string, unknown>;
  hyper: Hyperparameters;
}

function finetuneCell(ctx: CellContext): FinetuneCell {
  const mode = field<string>(ctx, "mode", isString, "a mode name");
  return {
    task: field<string>(ctx, "task", isString, "a task name"),
    mode,
    mask: field<Record<string, unknown> | undefined>(
      ctx,
      "mask",
      optional((v) => typeof v === "object" && v !== null),
      "a mask spec",
    ),
    hyper: checked(ctx, () => resolveHyperparameters(pickHyperparameters(configOf(ctx)), mode)),
  };
}

async function runFinetune(ctx: CellContext, env: ExecEnv) {
  const c = finetuneCell(ctx);
  const maskDep = ctx.deps.mask;
  const quiet = !(env.verbose ?? isTerminal());
  const task = getTask(c.task);
  const maskResult = maskDep?.record.result as { selected?: number; share?: number } | undefined;
  // What every fine-tuning record starts with, finished or diverged.
  const head = {
    task: task.name,
    mode: c.mode,
    ...(c.hyper.init ? { init: c.hyper.init } : {}),
    seed: c.hyper.seed,
    ...(c.mask ? { mask: { ...c.mask, selected: maskResult?.selected, share: maskResult?.share } } : {}),
    metric: task.mainMetric,
  };
  let r;
  try {
    r = await finetune({
      ...c.hyper,
      model: env.modelDir,
      task: c.task,
      mode: c.mode,
      mask: maskDep ? join(maskDep.dir, ARTEFACTS.mask) : undefined,
      out: ctx.dir,
      backend: env.backend,
      gemm: env.gemm,
      gemmThreads: STUDY_BLAS_THREADS,
      glueDir: env.glueDir,
      quiet,
    });
  } catch (err) {
    if (!(err instanceof DivergedError)) throw err;
    return await divergedResult(ctx, head, err);
  }
  computedAsDeclared(ctx, r.config.identity.backend);
  const m = r.metrics;
  return {
    result: roundAll({
      ...head,
      /** The main dev score of the best epoch (what tables report), and of the last epoch. */
      score: m.best.main,
      finalScore: m.final.main,
      best: m.best,
      final: m.final,
      bestEpoch: m.bestEpoch,
      epochs: m.epochs.map((e) => ({ epoch: e.epoch, step: e.step, trainLoss: e.trainLoss, dev: e.dev })),
      steps: m.steps,
      trainSeconds: m.trainSeconds,
      evalSeconds: m.evalSeconds,
      secondsPerStep: m.steps > 0 ? m.trainSeconds / m.steps : null,
      trainExamples: r.config.trainExamples,
      devExamples: r.config.devExamples,
      trainable: m.trainable,
      resumedAt: m.resumedAt,
    }),
    artefacts: [ARTEFACTS.finetune],
  };
}

/**
 * The record of a fine-tuning that diverged: where, no score (`score: null`; load.ts `scoreOf` reads NaN),
 * the epochs it finished before, and the data sizes and trainable counts from the run's config.json
 * (written before training). No artefact: there is no delta. The run folder keeps the last saved state.
 */
async function divergedResult(ctx: CellContext, head: Record<string, unknown>, err: DivergedError) {
  ctx.log(
    `diverged at step ${err.step} (epoch ${err.epoch}, batch ${err.batch}): ${err.reason}; ` +
      "recorded as a finished run with no score",
  );
  const config = await readJsonIfExists<RunConfig>(runPaths(ctx.dir).config);
  return {
    result: roundAll({
      ...head,
      score: null,
      finalScore: null,
      diverged: { step: err.step, epoch: err.epoch, batch: err.batch, reason: err.reason },
      epochs: err.epochs.map((e) => ({ epoch: e.epoch, step: e.step, trainLoss: e.trainLoss, dev: e.dev })),
      steps: err.step - 1,
      trainExamples: config?.trainExamples,
      devExamples: config?.devExamples,
      trainable: config?.trainable,
    }),
    artefacts: [],
  };
}

async function runFisherCell(ctx: CellContext, env: ExecEnv) {
  // The same examples `normtune fisher --task` takes: a seeded subset of the train split, in file order;
  // a split smaller than N gives what it has (the profile's N is an upper bound).
  const config = checked(ctx, () =>
    fisherConfig({
      model: env.modelDir,
      task: field<string>(ctx, "task", isString, "a task name"),
      examples: field<number>(ctx, "examples", isNumber, "a number"),
      allowFewer: true,
      params: field<FisherParams>(ctx, "params", isString, "all, layernorm or elementwise"),
      labels: field<"true" | "sampled">(ctx, "labels", isString, "true or sampled"),
      seed: field<number>(ctx, "seed", isNumber, "a number"),
      maxLen: field<number>(ctx, "maxLen", isNumber, "a number"),
      glueDir: env.glueDir,
      backend: env.backend,
      gemm: env.gemm,
      gemmThreads: STUDY_BLAS_THREADS,
      out: join(ctx.dir, ARTEFACTS.fisher),
    }));
  const r = await runFisher(config);
  computedAsDeclared(ctx, r.summary.backend);
  return {
    result: roundAll({
      task: r.summary.task,
      state: "pretrained",
      N: r.summary.N,
      params: config.params,
      labels: config.labels,
      seconds: r.summary.seconds,
      // Other rankings: rankComponentsByFisher(records, {...}) in the notebook.
      records: r.records,
      ranking: r.ranking,
    }),
    artefacts: [ARTEFACTS.fisher],
  };
}

async function runChangeCell(ctx: CellContext, env: ExecEnv) {
  const task = field<string>(ctx, "task", isString, "a task name");
  const diverged = divergenceOf(ctx.deps.tuned.record);
  if (diverged) {
    throw new Error(
      `cell ${ctx.cell.id} (change): the full fine-tuning it compares, ${ctx.deps.tuned.cell.label} ` +
        `(${ctx.deps.tuned.cell.id}), diverged at step ${diverged.step} (${diverged.reason}): there are no ` +
        "fine-tuned weights to compare",
    );
  }
  const r = await runChange({ base: env.modelDir, delta: join(ctx.deps.tuned.dir, ARTEFACTS.finetune) });
  return {
    result: roundAll({
      task: getTask(task).name,
      tuned: { id: ctx.deps.tuned.cell.id, mode: "full", seed: ctx.deps.tuned.cell.config.seed },
      // Other rankings: rankComponents(records, {...}) in the notebook.
      records: r.records,
      ranking: r.ranking,
    }),
  };
}

async function runMaskCell(ctx: CellContext, env: ExecEnv) {
  const method = field<MaskMethod>(
    ctx,
    "method",
    (v) => ["fisher", "random", "union"].includes(v as string),
    "fisher, random or union",
  );
  const pct = field<number>(ctx, "pct", isNumber, "a number");
  const per = field<MaskGrouping>(ctx, "per", isString, "global, module or layer");
  const task = field<string | undefined>(ctx, "task", optional(isString), "a task name");
  const seed = field<number | undefined>(ctx, "seed", optional(isNumber), "a number");
  const heldOut = field<string | undefined>(ctx, "heldOut", optional(isString), "a task name");
  const tasks = field<string[] | undefined>(ctx, "tasks", optional(Array.isArray), "a list of tasks");
  const config = await readConfig(join(env.modelDir, "config.json"));
  // LayerNorm shapes do not depend on the number of labels.
  const shapes = new Map([...parameterShapes(config, 2)].filter(([name]) => isLayerNorm(name)));
  const masks = Object.entries(ctx.deps).filter(([role]) => role.startsWith("mask:"))
    .map(([, dep]) => join(dep.dir, ARTEFACTS.mask));
  const r = await checked(ctx, () =>
    runMask({
      method,
      pct,
      per,
      seed: method === "random" ? seed ?? 0 : undefined,
      shapes,
      // A missing dependency leaves the list empty: the mask's own checks then say what is missing.
      ...(method === "fisher" && ctx.deps.fisher
        ? { fisher: [join(ctx.deps.fisher.dir, ARTEFACTS.fisher)] }
        : {}),
      ...(method === "union" ? { masks } : {}),
      out: join(ctx.dir, ARTEFACTS.mask),
      record: {
        method,
        pct,
        per,
        ...(task ? { task } : {}),
        ...(seed !== undefined ? { seed } : {}),
        ...(heldOut ? { heldOut, tasks } : {}),
      },
    }));
  return {
    result: roundAll({ ...r.summary, byTensor: r.description.byTensor }),
    artefacts: [ARTEFACTS.mask],
  };
}

function isTerminal(): boolean {
  try {
    return Deno.stderr.isTerminal();
  } catch {
    return false;
  }
}

/** The executors of every study kind, bound to a model folder and GLUE root. */
export function studyExecutors(env: ExecEnv): Executors {
  return {
    finetune: { run: (ctx) => runFinetune(ctx, env) },
    fisher: { run: (ctx) => runFisherCell(ctx, env) },
    change: { run: (ctx) => runChangeCell(ctx, env) },
    mask: { run: (ctx) => runMaskCell(ctx, env) },
  };
}
