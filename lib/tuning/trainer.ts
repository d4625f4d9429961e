/**
 * Fine-tuning a BERT classifier on a GLUE task, training only what the tuning mode selects, with
 * resumable state. `finetune(options)` is what the CLI, notebooks and the experiment runner call.
 *
 * One run writes, in its folder OUT:
 * - `config.json`: every argument, the model folder, backend, data sizes and trainable counts;
 * - `state/state.safetensors`: trained parameters, Adam moments, step and metrics so far (one file, so
 *   one atomic rename); saved every `saveEvery` steps and at each epoch end, removed when the run ends;
 * - `metrics.json`: dev metrics and train loss per epoch, the best epoch, timings (`finished: true` once
 *   the run is complete, with the delta's sha256 and size);
 * - `delta.safetensors`: the tuned parameters (lib/tuning/delta.ts); `model/` with `saveModel`;
 * - `.lock` while a process works in OUT (lib/util/lock.ts): a second one waits for it.
 *
 * Nothing non-finite is kept: every update is checked (a huge learning rate gives a finite loss but
 * infinite weights), and an update that is not finite stops the run with the last saved state, which is.
 *
 * Reproducibility: the data order of epoch `e` depends only on `(seed, e)` and the dropout of update `t`
 * only on `(seed, t)`, and the state holds the exact float32 parameters and moments, so a run killed at
 * any moment and started again with the same arguments ends with the same delta bytes as one that was
 * never interrupted (same backend). A finished run is not redone, unless its delta does not match its
 * metrics (truncated, changed): then it is trained again. A run folder whose arguments differ is refused.
 *
 * `init: "random"` starts from BERT's random initialisation (lib/bert/init.ts, seeded by the run's seed)
 * instead of the checkpoint's weights; it is part of the run's identity.
 *
 * Defaults, sized for bert-tiny on CPU: 3 epochs, batch 32, 128 tokens, seed 42, lr `defaultLr(mode)`,
 * warm-up ratio 0.06, weight decay 0.01, gradient clip 1.0, state saved every 50 updates. `maxTrain` and
 * `maxDev` subsets use seed 0, not the run's seed, so runs compared across modes and seeds see the
 * same examples.
 *
 * ```ts
 * const result = await finetune({ model: "../shared/models/bert-tiny-mlm", task: "RTE", mode: "layernorm",
 *   out: "runs/rte-ln", epochs: 1, maxTrain: 500 });
 * result.metrics.best.main;
 * ```
 */
import { join, resolve } from "node:path";
import { type Checkpoint, loadCheckpoint, saveCheckpoint } from "../bert/checkpoint.ts";
import { maxLenProblem, readConfig } from "../bert/config.ts";
import { type Batch, BertClassifier } from "../bert/model.ts";
import { INIT_NAMES, type InitName, randomCheckpoint } from "../bert/init.ts";
import { CLASSIFIER, parameterShapes } from "../bert/names.ts";
import { createGradientEngine, type GradientEngine } from "../parallel/engine.ts";
import { computeGrads } from "../parallel/replica.ts";
import type { TensorMap } from "../bert/safetensors.ts";
import { WordPieceTokenizer } from "../bert/tokenizer.ts";
import { getTask, type GlueTask, loadSplit } from "../glue/mod.ts";
import { type BackendName, initBackend, tf } from "../tf.ts";
import { readJsonIfExists, removeStaleTemps, writeJsonAtomic } from "../util/atomic.ts";
import { type Checksum, checksumMismatch, fileChecksum } from "../util/checksum.ts";
import { acquireLock } from "../util/lock.ts";
import { modelDir as resolveModelDir } from "../util/paths.ts";
import { type Progress, progress } from "../util/progress.ts";
import { batchesPerEpoch, deriveSeed, trainBatches } from "./batches.ts";
import { type DeltaInfo, loadWithDelta, readDelta, writeDelta } from "./delta.ts";
import { batchLabels, type EncodedSet, encodeExamples, evaluateModel, makeBatch } from "./evaluate.ts";
import { readMask } from "./masks.ts";
import {
  countTrainable,
  describeCounts,
  getMode,
  type ModeName,
  type Selection,
  selectTrainable,
  type TrainableCounts,
} from "./modes.ts";
import { AdamW, clipByGlobalNorm } from "./optimizer.ts";
import { DEFAULT_WARMUP_RATIO, linearSchedule, warmupSteps } from "./schedule.ts";
import {
  clearRun,
  type EpochRecord,
  readState,
  restoreState,
  type RunPaths,
  runPaths,
  type SavedState,
  saveState,
} from "./state.ts";

export type { EpochRecord } from "./state.ts";
export { runPaths } from "./state.ts";

export interface FinetuneOptions {
  /** Model folder or name (resolved as `--model`: path, NORMTUNE_MODELS_DIR, cache). */
  model: string;
  /** GLUE task name ("RTE", "sst2", ...). */
  task: string;
  mode: ModeName | string;
  /** Mask file for mode `mask` (lib/tuning/masks.ts). */
  mask?: string;
  /**
   * Where the weights start: the checkpoint (default), or BERT's random initialisation seeded by `seed`
   * (lib/bert/init.ts; a control for what pretraining gives). Random-init deltas hold every tensor.
   */
  init?: InitName;
  /** Peak learning rate; default `defaultLr(mode)`. */
  lr?: number;
  /** Default 3. */
  epochs?: number;
  /** Default 32. */
  batchSize?: number;
  /** Tokens per example, specials included; default 128. */
  maxLen?: number;
  /** Seeds the head initialisation, data order and dropout; default 42. */
  seed?: number;
  /** The run folder. */
  out: string;
  /** Train on a fixed random subset of this many examples (subset seed 0, the same for every run). */
  maxTrain?: number;
  /** Evaluate on a fixed random subset of this many dev examples (subset seed 0). */
  maxDev?: number;
  /** Warm-up ratio of the linear schedule; default 0.06. */
  warmup?: number;
  /** AdamW decoupled weight decay; default 0.01 (never on biases and LayerNorm). */
  weightDecay?: number;
  /** Global gradient-norm clip; default 1.0; 0 turns clipping off. */
  clip?: number;
  /** Evaluation batch size; default 64. */
  evalBatchSize?: number;
  /**
   * Rows per gradient pass, with gradients accumulated over the batch: activation memory follows this
   * instead of the batch size (bert-base full fine-tuning on wasm needs 2). Off by default. It changes the
   * dropout draws, so it is part of the run's identity.
   */
  microBatch?: number;
  /**
   * Data-parallel Workers computing the gradients (lib/parallel/engine.ts), each on its own core; default
   * 1 (in-process). Dropout draws depend on the split, so it is part of the run's identity.
   */
  workers?: number;
  /** Save the state every this many updates (and at each epoch end); default 50. */
  saveEvery?: number;
  /** Also write the full fine-tuned model to OUT/model/. */
  saveModel?: boolean;
  /** Start over, discarding what OUT holds from an earlier run. */
  fresh?: boolean;
  /** Backend; default NORMTUNE_BACKEND, else auto. */
  backend?: BackendName;
  glueDir?: string;
  /** No progress lines or notes on stderr. */
  quiet?: boolean;
}

/** The arguments that decide a run's result; a resumed run must match them exactly. */
export interface RunIdentity {
  model: string;
  task: string;
  mode: ModeName;
  mask: string | null;
  maskSha256: string | null;
  lr: number;
  epochs: number;
  batchSize: number;
  maxLen: number;
  seed: number;
  maxTrain: number | null;
  maxDev: number | null;
  warmup: number;
  weightDecay: number;
  clip: number;
  evalBatchSize: number;
  backend: string;
  /** Present only when set, so runs saved before it existed still resume. */
  microBatch?: number;
  /** Present only when above 1, likewise. */
  workers?: number;
  /** Present only for random initialisation, likewise. */
  init?: "random";
}

export interface RunConfig {
  normtune: 1;
  identity: RunIdentity;
  saveEvery: number;
  saveModel: boolean;
  numLabels: number;
  trainExamples: number;
  devExamples: number;
  devSplit: string;
  batchesPerEpoch: number;
  totalSteps: number;
  warmupSteps: number;
  trainable: TrainableCounts;
  trainedTensors: string[];
  maskInfo?: Record<string, unknown>;
  createdAt: string;
}

export interface RunMetrics {
  task: string;
  mode: string;
  finished: boolean;
  epochs: EpochRecord[];
  /** 1-based epoch with the highest main dev score (the earliest of equals). */
  bestEpoch: number;
  best: Record<string, number>;
  final: Record<string, number>;
  steps: number;
  trainSeconds: number;
  evalSeconds: number;
  /** Steps at which the run was resumed after an interruption. */
  resumedAt: number[];
  trainable: TrainableCounts;
  /** sha256 and size of delta.safetensors as written (finished runs; absent in runs from before it). */
  delta?: Checksum;
}

export interface RunResult {
  out: string;
  config: RunConfig;
  metrics: RunMetrics;
  deltaPath: string;
  modelPath?: string;
  /** True when OUT already held this finished run and nothing was trained. */
  alreadyDone: boolean;
  /** The step training continued from (0 for a fresh start). */
  resumedFrom: number;
}

const DROPOUT_SALT = 0xd509;

/** A loss or gradient that is NaN or infinite: training cannot go on. */
export class NonFiniteError extends Error {}

/** One training update at a time: gradients of the trained parameters only, mask, clip, AdamW. */
export class StepRunner {
  readonly optimizer: AdamW;
  #model: BertClassifier;
  #clip: number;
  #microBatch: number;
  #nameOf = new Map<string, string>();

  constructor(
    model: BertClassifier,
    selection: Selection,
    opts: { weightDecay?: number; clip?: number; microBatch?: number } = {},
  ) {
    this.#model = model;
    this.#clip = opts.clip ?? 1;
    this.#microBatch = opts.microBatch ?? 0;
    this.optimizer = new AdamW(model.params, selection, { weightDecay: opts.weightDecay });
    for (const [name, v] of model.params) this.#nameOf.set(v.name, name);
  }

  /**
   * One update at learning rate `lr`. Returns the batch loss, the gradient norm before clipping and the
   * names gradients were computed for. A non-finite loss or gradient throws `NonFiniteError` before
   * anything changes; an update that makes a parameter non-finite throws it after (the model's values
   * are then unusable: the run stops, its last saved state was finite).
   */
  step(
    batch: Batch,
    labels: Int32Array | Float32Array,
    lr: number,
    dropoutSeed: number,
  ): { loss: number; gradNorm: number; gradNames: string[] } {
    const { value, named } = this.#gradients(batch, labels, dropoutSeed);
    return this.#update(value, named, lr);
  }

  /**
   * The same update with the gradients computed by a data-parallel engine (lib/parallel/engine.ts,
   * replicas in Workers that each take part of the batch); the replicas then get the new values.
   */
  async stepOn(
    engine: GradientEngine,
    batch: Batch,
    labels: Int32Array | Float32Array,
    lr: number,
    dropoutSeed: number,
  ): Promise<{ loss: number; gradNorm: number; gradNames: string[] }> {
    const variables = this.optimizer.variables();
    const names = variables.map((v) => this.#nameOf.get(v.name) ?? v.name);
    const r = await engine.grads(batch, labels, names, dropoutSeed);
    const named = new Map<string, tf.Tensor>();
    names.forEach((name, i) => named.set(name, tf.tensor(r.grads.get(name)!, variables[i].shape)));
    const out = this.#update(tf.scalar(r.loss), named, lr);
    await engine.setParams(this.trainedValues());
    return out;
  }

  /** The trained parameters' current values, by name (what replicas need after an update or a resume). */
  trainedValues(): Map<string, Float32Array> {
    return new Map(
      this.optimizer.variables().map((
        v,
      ) => [this.#nameOf.get(v.name) ?? v.name, v.dataSync() as Float32Array]),
    );
  }

  /**
   * Masks, clips and applies gradients; a non-finite loss or norm throws before anything changes, a
   * non-finite result of the update after it.
   */
  #update(
    value: tf.Tensor,
    named: Map<string, tf.Tensor>,
    lr: number,
  ): { loss: number; gradNorm: number; gradNames: string[] } {
    const owned = new Set<tf.Tensor>([value, ...named.values()]);
    try {
      const loss = value.dataSync()[0];
      if (!Number.isFinite(loss)) throw new NonFiniteError(`loss is ${loss}`);
      const masked = this.optimizer.maskGradients(named);
      for (const g of masked.values()) owned.add(g);
      const { grads: clipped, norm } = clipByGlobalNorm(masked, this.#clip);
      for (const g of clipped.values()) owned.add(g);
      if (!Number.isFinite(norm)) throw new NonFiniteError(`gradient norm is ${norm} (loss ${loss})`);
      this.optimizer.apply(clipped, lr);
      const bad = this.optimizer.nonFinite();
      if (bad) {
        throw new NonFiniteError(
          `the update made "${bad}" non-finite (lr ${lr}, loss ${loss}, gradient norm ${norm})`,
        );
      }
      return { loss, gradNorm: norm, gradNames: [...named.keys()] };
    } finally {
      tf.dispose([...owned]);
    }
  }

  /** The batch's mean loss and the trained parameters' gradients, by name. */
  #gradients(
    batch: Batch,
    labels: Int32Array | Float32Array,
    seed: number,
  ): { value: tf.Tensor; named: Map<string, tf.Tensor> } {
    const model = this.#model;
    const variables = this.optimizer.variables();
    const named = new Map<string, tf.Tensor>();
    if (this.#microBatch > 0 && this.#microBatch < batch.batchSize) {
      // Gradient accumulation over micro-batches (lib/parallel/replica.ts), then back into tensors.
      const names = variables.map((v) => this.#nameOf.get(v.name) ?? v.name);
      const r = computeGrads(model, batch, labels, names, seed, true, this.#microBatch);
      names.forEach((name, i) => named.set(name, tf.tensor(r.grads.get(name)!, variables[i].shape)));
      return { value: tf.scalar(r.loss), named };
    }
    // Only the trained variables are passed: tfjs then runs no gradient thunk for frozen parameters.
    const { value, grads } = tf.variableGrads(
      () => model.loss(model.logits(batch, { training: true, seed }), labels),
      variables,
    );
    for (const [varName, g] of Object.entries(grads)) named.set(this.#nameOf.get(varName) ?? varName, g);
    return { value, named };
  }

  dispose(): void {
    this.optimizer.dispose();
  }
}

async function sha256File(path: string): Promise<string> {
  try {
    return (await fileChecksum(path)).sha256;
  } catch (err) {
    throw new Error(`mask file ${(err as Error).message}`);
  }
}

function positiveInt(name: string, v: number): number {
  if (!Number.isInteger(v) || v < 1) throw new Error(`${name} must be a positive integer, got ${v}`);
  return v;
}

function seedOf(v: number): number {
  if (!Number.isSafeInteger(v) || v < 0) throw new Error(`seed must be an integer >= 0, got ${v}`);
  return v;
}

function optionalPositiveInt(name: string, v: number | undefined): number | null {
  return v === undefined ? null : positiveInt(name, v);
}

/** The identity of a run from its options (defaults filled, paths absolute). */
async function identityOf(o: FinetuneOptions, backend: string): Promise<RunIdentity> {
  const mode = getMode(o.mode);
  if (mode.needsMask && !o.mask) throw new Error(`mode "mask" needs --mask FILE`);
  if (!mode.needsMask && o.mask) throw new Error(`--mask is only for mode "mask" (mode is "${mode.name}")`);
  const lr = o.lr ?? mode.defaultLr;
  if (!(lr >= 0) || !Number.isFinite(lr)) throw new Error(`lr must be a number >= 0, got ${lr}`);
  const warmup = o.warmup ?? DEFAULT_WARMUP_RATIO;
  warmupSteps(1, warmup); // validates the ratio
  const weightDecay = o.weightDecay ?? 0.01;
  if (!(weightDecay >= 0)) throw new Error(`weight decay must be >= 0, got ${weightDecay}`);
  const clip = o.clip ?? 1;
  if (!(clip >= 0)) throw new Error(`clip must be >= 0 (0 = off), got ${clip}`);
  const maskPath = o.mask ? resolve(o.mask) : null;
  if (o.init !== undefined && !INIT_NAMES.includes(o.init)) {
    throw new Error(`init must be one of ${INIT_NAMES.join(", ")}, got ${JSON.stringify(o.init)}`);
  }
  const model = resolveModelDir(o.model);
  const maxLen = o.maxLen ?? 128;
  const tooLong = maxLenProblem(maxLen, await readConfig(join(model, "config.json")));
  if (tooLong) throw new Error(`max length ${tooLong} (${model})`);
  return {
    model,
    task: getTask(o.task).name,
    mode: mode.name,
    mask: maskPath,
    maskSha256: maskPath ? await sha256File(maskPath) : null,
    lr,
    epochs: positiveInt("epochs", o.epochs ?? 3),
    batchSize: positiveInt("batch size", o.batchSize ?? 32),
    maxLen,
    seed: seedOf(o.seed ?? 42),
    maxTrain: optionalPositiveInt("max train", o.maxTrain),
    maxDev: optionalPositiveInt("max dev", o.maxDev),
    warmup,
    weightDecay,
    clip,
    evalBatchSize: positiveInt("eval batch size", o.evalBatchSize ?? 64),
    backend,
    ...(o.microBatch ? { microBatch: positiveInt("micro batch", o.microBatch) } : {}),
    ...((o.workers ?? 1) > 1 ? { workers: positiveInt("workers", o.workers!) } : {}),
    ...(o.init === "random" ? { init: "random" as const } : {}),
  };
}

/**
 * Fields that differ between two identities (the mask path may move if its content is the same). Keys of
 * either side count: an optional field (init, workers, micro-batch) set on one side only is a difference.
 */
function identityDiff(saved: RunIdentity, now: RunIdentity): string[] {
  const keys = [...new Set([...Object.keys(saved), ...Object.keys(now)])] as (keyof RunIdentity)[];
  const text = (v: unknown) => JSON.stringify(v ?? null);
  return keys.filter((k) => k !== "mask" && text(saved[k]) !== text(now[k]))
    .map((k) => `${k}: saved ${text(saved[k])}, now ${text(now[k])}`);
}

function bestOf(epochs: EpochRecord[]): number {
  let best = 0;
  for (let i = 1; i < epochs.length; i++) if (epochs[i].dev.main > epochs[best].dev.main) best = i;
  return best;
}

function metricsOf(
  identity: RunIdentity,
  epochs: EpochRecord[],
  resumedAt: number[],
  trainable: TrainableCounts,
  finished: boolean,
): RunMetrics {
  const b = epochs.length > 0 ? bestOf(epochs) : -1;
  return {
    task: identity.task,
    mode: identity.mode,
    finished,
    epochs,
    bestEpoch: b + 1,
    best: b >= 0 ? epochs[b].dev : {},
    final: epochs.at(-1)?.dev ?? {},
    steps: epochs.at(-1)?.step ?? 0,
    trainSeconds: epochs.reduce((a, e) => a + e.trainSeconds, 0),
    evalSeconds: epochs.reduce((a, e) => a + e.evalSeconds, 0),
    resumedAt,
    trainable,
  };
}

function note(o: FinetuneOptions, text: string): void {
  if (!o.quiet) console.error(text);
}

/** Everything a run needs besides the model: data, selection, schedule. */
interface Prepared {
  task: GlueTask;
  numLabels: number;
  ck: Checkpoint;
  selection: Selection;
  trainable: TrainableCounts;
  maskInfo?: Record<string, unknown>;
  train: EncodedSet;
  dev: EncodedSet;
  perEpoch: number;
  totalSteps: number;
}

async function prepare(identity: RunIdentity, o: FinetuneOptions): Promise<Prepared> {
  const task = getTask(identity.task);
  const numLabels = task.numLabels;
  const loaded = await loadCheckpoint(identity.model, { numLabels, seed: identity.seed, quiet: o.quiet });
  const ck = identity.init === "random" ? randomCheckpoint(loaded, identity.seed) : loaded;
  const shapes = parameterShapes(ck.config, numLabels);
  let maskInfo: Record<string, unknown> | undefined;
  let masks: TensorMap | undefined;
  if (identity.mask) ({ masks, info: maskInfo } = await readMask(identity.mask, shapes));
  const selection = selectTrainable(identity.mode, shapes.keys(), masks);
  const tokenizer = await WordPieceTokenizer.fromModelDir(identity.model);
  const train = await loadEncoded(task, "train", identity.maxTrain, identity, tokenizer, o);
  const dev = await loadEncoded(task, task.mainSplit, identity.maxDev, identity, tokenizer, o);
  if (train.rows.length === 0) throw new Error(`${task.name} train split has no examples`);
  if (dev.rows.length === 0) throw new Error(`${task.name} ${task.mainSplit} split has no examples`);
  const perEpoch = batchesPerEpoch(train.rows.length, identity.batchSize);
  return {
    task,
    numLabels,
    ck,
    selection,
    trainable: countTrainable(selection, shapes),
    maskInfo,
    train,
    dev,
    perEpoch,
    totalSteps: perEpoch * identity.epochs,
  };
}

/**
 * What OUT holds: its config, and the metrics of a finished run whose delta is intact; a finished run
 * whose delta is missing or not the one written comes back as `redo` (why). A run with other arguments
 * is an error.
 */
async function existingRun(paths: RunPaths, identity: RunIdentity): Promise<
  { config?: RunConfig; metrics?: RunMetrics; redo?: string }
> {
  const config = await readJsonIfExists<RunConfig>(paths.config);
  if (!config) return {};
  const diff = identityDiff(config.identity, identity);
  if (diff.length > 0) {
    throw new Error(
      `${paths.out} holds a run with other arguments (${diff.join("; ")}). Use --fresh to discard it, ` +
        `or another --out.`,
    );
  }
  const metrics = await readJsonIfExists<RunMetrics>(paths.metrics);
  if (!metrics?.finished) return { config };
  const redo = await deltaProblem(paths, metrics);
  return redo ? { config, redo } : { config, metrics };
}

/** Why a finished run's delta is not the one its metrics describe, or `undefined`. */
async function deltaProblem(paths: RunPaths, metrics: RunMetrics): Promise<string | undefined> {
  if (metrics.delta) return await checksumMismatch(paths.delta, metrics.delta);
  // Finished before metrics recorded the delta's checksum: it must at least exist and read whole.
  try {
    await readDelta(paths.delta);
    return undefined;
  } catch (err) {
    return (err as Error).message;
  }
}

/** Removes a finished run's outputs (not its config or state), so that it is written again. */
async function discardOutputs(paths: RunPaths): Promise<void> {
  for (const path of [paths.metrics, paths.delta, paths.model]) {
    await Deno.remove(path, { recursive: true }).catch((err) => {
      if (!(err instanceof Deno.errors.NotFound)) throw err;
    });
  }
}

/**
 * Runs (or resumes, or returns the saved result of) one fine-tuning run. See the module comment for
 * what OUT holds.
 */
export async function finetune(options: FinetuneOptions): Promise<RunResult> {
  const o = options;
  const backend = await initBackend(o.backend);
  // Every argument is checked before anything is written to OUT.
  const identity = await identityOf(o, backend);
  const paths = runPaths(resolve(o.out));
  const saveEvery = positiveInt("save every", o.saveEvery ?? 50);
  // One process per run folder: a second one waits, then finds the run finished (or resumes it).
  const lock = await acquireLock(paths.lock, {
    onWait: (holder) => note(o, `${paths.out} is in use by another process (${holder}); waiting for it`),
  });
  try {
    // Nothing else writes here now: temporary files are what killed writes left.
    for (const dir of [paths.out, paths.stateDir, paths.model]) {
      const removed = await removeStaleTemps(dir);
      if (removed.length) note(o, `${dir}: removed ${removed.join(", ")} (left by a write cut short)`);
    }
    return await finetuneIn(o, identity, paths, saveEvery);
  } finally {
    await lock.release();
  }
}

/** `finetune` once OUT is locked. */
async function finetuneIn(
  o: FinetuneOptions,
  identity: RunIdentity,
  paths: RunPaths,
  saveEvery: number,
): Promise<RunResult> {
  if (o.fresh) await clearRun(paths);
  const existing = await existingRun(paths, identity);
  if (existing.redo) {
    note(o, `${paths.out}: ${existing.redo}; the run is done again`);
    await discardOutputs(paths);
  }
  if (existing.config && existing.metrics) {
    const modelPath = o.saveModel ? await ensureModelFromDelta(identity, paths, o) : undefined;
    return {
      out: paths.out,
      config: existing.config,
      metrics: existing.metrics,
      deltaPath: paths.delta,
      modelPath,
      alreadyDone: true,
      resumedFrom: existing.metrics.steps,
    };
  }

  const run = await prepare(identity, o);
  const config: RunConfig = existing.config ?? {
    normtune: 1,
    identity,
    saveEvery,
    saveModel: o.saveModel ?? false,
    numLabels: run.numLabels,
    trainExamples: run.train.rows.length,
    devExamples: run.dev.rows.length,
    devSplit: run.task.mainSplit,
    batchesPerEpoch: run.perEpoch,
    totalSteps: run.totalSteps,
    warmupSteps: warmupSteps(run.totalSteps, identity.warmup),
    trainable: run.trainable,
    trainedTensors: [...run.selection.keys()],
    ...(run.maskInfo ? { maskInfo: run.maskInfo } : {}),
    createdAt: new Date().toISOString(),
  };
  if (!existing.config) await writeJsonAtomic(paths.config, config);

  const model = new BertClassifier(run.ck.config, run.numLabels, run.ck.tensors);
  const runner = new StepRunner(model, run.selection, {
    weightDecay: identity.weightDecay,
    clip: identity.clip,
    microBatch: identity.microBatch,
  });
  let engine: GradientEngine | undefined;
  try {
    let state: SavedState = {
      identity,
      step: 0,
      epochs: [],
      lossSum: 0,
      lossCount: 0,
      epochSeconds: 0,
      resumedAt: [],
    };
    const saved = await readState(paths.state);
    if (saved) {
      const diff = identityDiff(saved.state.identity as RunIdentity, identity);
      if (diff.length > 0) {
        throw new Error(`${paths.state} was saved with other arguments (${diff.join("; ")}); use --fresh`);
      }
      restoreState(paths.state, saved, model.params, runner.optimizer);
      state = { ...saved.state, resumedAt: [...saved.state.resumedAt, saved.state.step] };
      note(o, `${paths.out}: resuming at step ${state.step} of ${run.totalSteps}`);
    }
    if (identity.workers) {
      engine = await createGradientEngine({
        config: run.ck.config,
        numLabels: run.numLabels,
        tensors: run.ck.tensors,
        workers: identity.workers,
        backend: o.backend,
        microBatch: identity.microBatch,
      });
      await engine.setParams(runner.trainedValues()); // a resumed run's values
    }
    const resumedFrom = state.step;
    note(
      o,
      `${identity.task} ${identity.mode}: ${
        describeCounts(run.trainable)
      }; ${run.train.rows.length} train, ` +
        `${run.dev.rows.length} ${run.task.mainSplit}; ${run.totalSteps} steps; backend ${identity.backend}`,
    );
    await trainEpochs({
      o,
      identity,
      run,
      paths,
      model,
      runner,
      engine,
      state,
      saveEvery,
      hasState: !!saved,
    });
    return {
      ...await writeOutputs(identity, run, paths, model, state, o),
      config,
      resumedFrom,
      alreadyDone: false,
    };
  } finally {
    await engine?.dispose();
    runner.dispose();
    model.dispose();
  }
}

interface Loop {
  o: FinetuneOptions;
  identity: RunIdentity;
  run: Prepared;
  paths: RunPaths;
  model: BertClassifier;
  runner: StepRunner;
  /** Computes the gradients when training runs on several Workers. */
  engine?: GradientEngine;
  /** Updated in place as training goes. */
  state: SavedState;
  saveEvery: number;
  /** Whether a state file exists (for the message when training diverges). */
  hasState: boolean;
}

/** Trains from `state` to the last epoch, evaluating and saving at each epoch end. */
async function trainEpochs(l: Loop): Promise<void> {
  const { o, identity, run, paths, model, runner, engine, state } = l;
  const schedule = linearSchedule({
    lr: identity.lr,
    totalSteps: run.totalSteps,
    warmupRatio: identity.warmup,
  });
  const save = async () => {
    await Deno.mkdir(paths.stateDir, { recursive: true });
    await saveState(paths.state, model.params, runner.optimizer, state);
    l.hasState = true;
  };
  while (state.epochs.length < identity.epochs) {
    const epoch = state.epochs.length;
    const batches = trainBatches(run.train.lengths, {
      batchSize: identity.batchSize,
      seed: identity.seed,
      epoch,
    });
    const first = state.step - epoch * run.perEpoch;
    const bar: Progress | undefined = o.quiet ? undefined : progress(
      `${identity.task} ${identity.mode} epoch ${epoch + 1}/${identity.epochs}`,
      run.perEpoch,
      { unit: "steps", initial: first },
    );
    // This process's share of the epoch's training time (state.epochSeconds holds the saved share).
    let t0 = performance.now();
    let examples = 0;
    for (let b = first; b < run.perEpoch; b++) {
      const indices = batches[b];
      let r;
      try {
        const args = [
          makeBatch(run.train, indices),
          batchLabels(run.train, indices, run.numLabels),
          schedule(state.step),
          deriveSeed(DROPOUT_SALT, identity.seed, state.step),
        ] as const;
        r = engine ? await runner.stepOn(engine, ...args) : runner.step(...args);
      } catch (err) {
        if (!(err instanceof NonFiniteError)) throw err;
        bar?.done("stopped");
        const kept = l.hasState
          ? `its last saved state is kept in ${paths.state}`
          : "no state had been saved yet";
        throw new Error(
          `training diverged at step ${state.step + 1} (epoch ${epoch + 1}, batch ${b + 1}): ` +
            `${err.message}. The run stopped; ${kept}. Lower --lr (now ${identity.lr}), then rerun with --fresh.`,
        );
      }
      state.step++;
      state.lossSum += r.loss;
      state.lossCount++;
      examples += indices.length;
      const seconds = (performance.now() - t0) / 1000;
      bar?.update(b + 1, {
        loss: state.lossSum / state.lossCount,
        "ex/s": Math.round(examples / Math.max(1e-9, seconds)),
      });
      if (state.step % l.saveEvery === 0 && b + 1 < run.perEpoch) {
        state.epochSeconds += seconds;
        t0 = performance.now();
        examples = 0;
        await save();
      }
    }
    state.epochSeconds += (performance.now() - t0) / 1000;
    const ev = evaluateModel(model, run.task, run.dev, { batchSize: identity.evalBatchSize });
    const trainLoss = state.lossSum / state.lossCount;
    state.epochs.push({
      epoch: epoch + 1,
      step: state.step,
      trainLoss,
      dev: ev.metrics,
      trainSeconds: state.epochSeconds,
      evalSeconds: ev.seconds,
      examplesPerSecond: run.train.rows.length / Math.max(1e-9, state.epochSeconds),
    });
    state.lossSum = state.lossCount = state.epochSeconds = 0;
    const scores = Object.entries(ev.metrics).filter(([k]) => k !== "main");
    bar?.done(
      `train loss ${trainLoss.toFixed(4)}; ${run.task.mainSplit} ` +
        scores.map(([k, v]) => `${k} ${v.toFixed(4)}`).join(" "),
    );
    await save();
    await writeJsonAtomic(
      paths.metrics,
      metricsOf(identity, state.epochs, state.resumedAt, run.trainable, false),
    );
  }
}

/**
 * The outputs, in an order that survives a kill at any point: the delta (trained + head + freshly
 * initialised tensors), optionally the full model, then the metrics that mark the run finished, and
 * only then is the state removed.
 */
async function writeOutputs(
  identity: RunIdentity,
  run: Prepared,
  paths: RunPaths,
  model: BertClassifier,
  state: SavedState,
  o: FinetuneOptions,
): Promise<Omit<RunResult, "config" | "resumedFrom" | "alreadyDone">> {
  const tuned = model.exportTensors();
  const names = new Set([...run.selection.keys(), ...run.ck.initialized]);
  for (const name of tuned.keys()) if (name.startsWith(`${CLASSIFIER}.`)) names.add(name);
  const info: DeltaInfo = {
    kind: "delta",
    task: identity.task,
    mode: identity.mode,
    numLabels: run.numLabels,
    baseModel: identity.model,
    trained: [...run.selection.keys()],
    ...(identity.init ? { init: identity.init } : {}),
  };
  await writeDelta(paths.delta, new Map([...tuned].filter(([name]) => names.has(name))), info);
  let modelPath: string | undefined;
  if (o.saveModel) {
    await saveCheckpoint(paths.model, { config: run.ck.config, numLabels: run.numLabels, tensors: tuned }, {
      vocabFrom: identity.model,
      regression: run.numLabels === 1,
    });
    modelPath = paths.model;
  }
  const metrics = {
    ...metricsOf(identity, state.epochs, state.resumedAt, run.trainable, true),
    delta: await fileChecksum(paths.delta),
  };
  await writeJsonAtomic(paths.metrics, metrics);
  await Deno.remove(paths.stateDir, { recursive: true }).catch(() => {});
  return { out: paths.out, metrics, deltaPath: paths.delta, modelPath };
}

async function loadEncoded(
  task: GlueTask,
  split: string,
  max: number | null,
  identity: RunIdentity,
  tokenizer: WordPieceTokenizer,
  o: FinetuneOptions,
): Promise<EncodedSet> {
  const { examples, skipped } = await loadSplit(task, split, {
    glueDir: o.glueDir,
    maxExamples: max ?? undefined,
    seed: 0,
  });
  if (skipped > 0) note(o, `${task.name} ${split}: skipped ${skipped} malformed rows`);
  return encodeExamples(tokenizer, examples, identity.maxLen);
}

/** For a finished run asked again with `saveModel`: writes OUT/model from base + delta if missing. */
async function ensureModelFromDelta(
  identity: RunIdentity,
  paths: RunPaths,
  o: FinetuneOptions,
): Promise<string> {
  try {
    await Deno.stat(join(paths.model, "model.safetensors"));
    return paths.model;
  } catch {
    // not written yet
  }
  const ck = await loadWithDelta(identity.model, paths.delta);
  await saveCheckpoint(paths.model, ck, { vocabFrom: identity.model, regression: ck.numLabels === 1 });
  note(o, `wrote ${paths.model} from ${paths.delta}`);
  return paths.model;
}
