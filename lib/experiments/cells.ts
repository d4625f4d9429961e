/**
 * The executors of the study's cell kinds: what a cell does with its configuration (lib/experiments/
 * study.ts) and its dependencies' artefacts, and the small summary it returns for the record.
 *
 * - `finetune`: lib/tuning/trainer.ts `finetune()` with the cell's runs folder as OUT (so a killed cell
 *   resumes from the trainer's state); artefact `delta.safetensors`.
 * - `fisher`: empirical Fisher of the pretrained model with a fresh head (lib/analysis/fisher.ts);
 *   artefact `fisher.safetensors`; the record holds the per component x layer x kind records and rankings.
 * - `change`: base checkpoint vs base + the full fine-tuning's delta (lib/analysis/change.ts).
 * - `mask`: top-k% by Fisher, random of the same size, or the union of other tasks' masks
 *   (lib/analysis/masks.ts); artefact `mask.safetensors`; the record holds where the elements sit.
 *
 * ```ts
 * const runner = new Runner({ store, executors: studyExecutors({ modelDir, glueDir }) });
 * ```
 */
import { batchFromEncoded } from "../bert/batch.ts";
import { join } from "node:path";
import { loadCheckpoint } from "../bert/checkpoint.ts";
import { readConfig } from "../bert/config.ts";
import { BertClassifier } from "../bert/model.ts";
import { isLayerNorm, parameterShapes } from "../bert/names.ts";
import { readSafetensors, type TensorMap, writeSafetensors } from "../bert/safetensors.ts";
import { WordPieceTokenizer } from "../bert/tokenizer.ts";
import { computeChange, rankComponents } from "../analysis/change.ts";
import {
  aggregateFisher,
  computeFisher,
  type FisherParams,
  rankComponentsByFisher,
} from "../analysis/fisher.ts";
import {
  combineMasks,
  countForPct,
  describeMask,
  type MaskGrouping,
  randomMask,
  topMask,
} from "../analysis/masks.ts";
import { getTask, loadSplit } from "../glue/mod.ts";
import { type BackendName, initBackend } from "../tf.ts";
import { loadWithDelta } from "../tuning/delta.ts";
import { readMask, writeMask } from "../tuning/masks.ts";
import { finetune, type RunIdentity } from "../tuning/trainer.ts";
import type { CellContext, Executors } from "./runner.ts";

export interface ExecEnv {
  /** The resolved model folder (the one whose identity the cells hold). */
  modelDir: string;
  glueDir: string;
  backend?: BackendName;
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

function cfg<T>(ctx: CellContext): T {
  return ctx.cell.config as T;
}

/** A fine-tuning cell's configuration: the trainer's run identity, less what the executor supplies. */
type FinetuneConfig = Omit<RunIdentity, "model" | "mode" | "mask" | "maskSha256" | "backend"> & {
  mode: string;
  mask?: Record<string, unknown>;
};

async function runFinetune(ctx: CellContext, env: ExecEnv) {
  const c = cfg<FinetuneConfig>(ctx);
  const maskDep = ctx.deps.mask;
  const quiet = !(env.verbose ?? isTerminal());
  const r = await finetune({
    model: env.modelDir,
    task: c.task,
    mode: c.mode,
    mask: maskDep ? join(maskDep.dir, ARTEFACTS.mask) : undefined,
    init: c.init,
    lr: c.lr,
    epochs: c.epochs,
    batchSize: c.batchSize,
    maxLen: c.maxLen,
    seed: c.seed,
    out: ctx.dir,
    maxTrain: c.maxTrain ?? undefined,
    maxDev: c.maxDev ?? undefined,
    warmup: c.warmup,
    weightDecay: c.weightDecay,
    clip: c.clip,
    evalBatchSize: c.evalBatchSize,
    backend: env.backend,
    glueDir: env.glueDir,
    quiet,
  });
  const m = r.metrics;
  const task = getTask(c.task);
  const maskResult = maskDep?.record.result as { selected?: number; share?: number } | undefined;
  return {
    result: roundAll({
      task: task.name,
      mode: c.mode,
      ...(c.init ? { init: c.init } : {}),
      seed: c.seed,
      ...(c.mask ? { mask: { ...c.mask, selected: maskResult?.selected, share: maskResult?.share } } : {}),
      metric: task.mainMetric,
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

interface FisherConfig {
  task: string;
  examples: number;
  params: FisherParams;
  labels: "true" | "sampled";
  seed: number;
  maxLen: number;
}

async function runFisher(ctx: CellContext, env: ExecEnv) {
  const c = cfg<FisherConfig>(ctx);
  await initBackend(env.backend);
  const task = getTask(c.task);
  // The same examples `normtune fisher --task` takes: a seeded subset of the train split, in file order.
  const { examples } = await loadSplit(task, "train", {
    glueDir: env.glueDir,
    maxExamples: c.examples,
    seed: c.seed,
  });
  const tok = await WordPieceTokenizer.fromModelDir(env.modelDir);
  const rows = examples.map((e) => tok.encode(e.textA, e.textB, { maxLen: c.maxLen }));
  const ck = await loadCheckpoint(env.modelDir, { numLabels: task.numLabels, seed: c.seed, quiet: true });
  const model = new BertClassifier(ck.config, ck.numLabels, ck.tensors);
  const t0 = performance.now();
  let fisher: TensorMap;
  try {
    fisher = await computeFisher(model, [{
      batch: batchFromEncoded(rows),
      labels: examples.map((e) => e.label),
    }], {
      params: c.params,
      examples: examples.length,
      seed: c.seed,
      labels: c.labels,
      maxLen: c.maxLen,
    });
  } finally {
    model.dispose();
  }
  const seconds = (performance.now() - t0) / 1000;
  await writeSafetensors(join(ctx.dir, ARTEFACTS.fisher), fisher, {
    normtune: JSON.stringify({
      kind: "fisher",
      task: task.name,
      N: examples.length,
      params: c.params,
      seed: c.seed,
    }),
  });
  const records = aggregateFisher(fisher);
  return {
    result: roundAll({
      task: task.name,
      state: "pretrained",
      N: examples.length,
      params: c.params,
      labels: c.labels,
      seconds,
      // Other rankings: rankComponentsByFisher(records, {...}) in the notebook.
      records,
      ranking: rankComponentsByFisher(records),
    }),
    artefacts: [ARTEFACTS.fisher],
  };
}

async function runChange(ctx: CellContext, env: ExecEnv) {
  const c = cfg<{ task: string }>(ctx);
  const tuned = await loadWithDelta(env.modelDir, join(ctx.deps.tuned.dir, ARTEFACTS.finetune));
  const base = await loadCheckpoint(env.modelDir, { numLabels: tuned.numLabels, quiet: true });
  // What the base did not hold (head, a missing pooler) was made up by the loader: measure it from zero.
  for (const name of base.initialized) base.tensors.delete(name);
  const records = computeChange(base.tensors, tuned.tensors);
  return {
    result: roundAll({
      task: getTask(c.task).name,
      tuned: { id: ctx.deps.tuned.cell.id, mode: "full", seed: ctx.deps.tuned.cell.config.seed },
      // Other rankings: rankComponents(records, {...}) in the notebook.
      records,
      ranking: rankComponents(records),
    }),
  };
}

interface MaskConfig {
  method: "fisher" | "random" | "union";
  pct: number;
  per: MaskGrouping;
  task?: string;
  seed?: number;
  heldOut?: string;
  tasks?: string[];
}

async function runMask(ctx: CellContext, env: ExecEnv) {
  const c = cfg<MaskConfig>(ctx);
  const config = await readConfig(join(env.modelDir, "config.json"));
  // LayerNorm shapes do not depend on the number of labels.
  const shapes = new Map([...parameterShapes(config, 2)].filter(([name]) => isLayerNorm(name)));
  let candidates = 0;
  for (const s of shapes.values()) candidates += s.reduce((a, b) => a * b, 1);
  let mask: TensorMap;
  if (c.method === "fisher") {
    const fisher = await readSafetensors(join(ctx.deps.fisher.dir, ARTEFACTS.fisher));
    mask = topMask(fisher, c.pct, { per: c.per });
  } else if (c.method === "random") {
    mask = randomMask(shapes, c.pct, c.seed ?? 0, { per: c.per });
  } else {
    const parts: TensorMap[] = [];
    for (const [role, dep] of Object.entries(ctx.deps)) {
      if (!role.startsWith("mask:")) continue;
      parts.push((await readMask(join(dep.dir, ARTEFACTS.mask))).masks);
    }
    mask = combineMasks(parts, "union");
  }
  const d = describeMask(mask);
  const summary = {
    method: c.method,
    pct: c.pct,
    per: c.per,
    ...(c.task ? { task: c.task } : {}),
    ...(c.seed !== undefined ? { seed: c.seed } : {}),
    ...(c.heldOut ? { heldOut: c.heldOut, tasks: c.tasks } : {}),
    candidates,
    target: countForPct(candidates, c.pct),
    selected: d.selected,
    share: candidates ? d.selected / candidates : 0,
    byLayer: d.byLayer,
    byKind: d.byKind,
    byLnType: d.byLnType,
    byComponent: d.byComponent,
  };
  await writeMask(join(ctx.dir, ARTEFACTS.mask), mask, summary);
  return { result: roundAll({ ...summary, byTensor: d.byTensor }), artefacts: [ARTEFACTS.mask] };
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
    fisher: { run: (ctx) => runFisher(ctx, env) },
    change: { run: (ctx) => runChange(ctx, env) },
    mask: { run: (ctx) => runMask(ctx, env) },
  };
}
