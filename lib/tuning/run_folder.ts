/**
 * A run folder's identity and state between processes: what the arguments resolve to (the identity a
 * resumed run must match), what OUT already holds (a finished run, one to redo because its delta does
 * not match its metrics, or a saved state), and the outputs written in an order that survives a kill at
 * any point. The epoch loop (lib/tuning/epochs.ts) and `finetune` (lib/tuning/trainer.ts) use these.
 *
 * ```ts
 * const identity = await identityOf({ model, task: "RTE", mode: "layernorm", epochs: 1 }, "wasm");
 * const { config, metrics, redo } = await existingRun(runPaths("runs/rte-ln"), identity);
 * ```
 */
import { join, resolve } from "node:path";
import { saveCheckpoint } from "../bert/checkpoint.ts";
import { maxLenProblem, readConfig } from "../bert/config.ts";
import type { BertClassifier } from "../bert/model.ts";
import { CLASSIFIER } from "../bert/names.ts";
import { getTask } from "../glue/mod.ts";
import { readJsonIfExists, writeJsonAtomic } from "../util/atomic.ts";
import { type Checksum, checksumMismatch, fileChecksum } from "../util/checksum.ts";
import { modelDir as resolveModelDir } from "../util/paths.ts";
import { type DeltaInfo, loadWithDelta, readDelta, writeDelta } from "./delta.ts";
import {
  type HyperparameterOptions,
  type Hyperparameters,
  resolveHyperparameters,
} from "./hyperparameters.ts";
import { getMode, type ModeName, type TrainableCounts } from "./modes.ts";
import type { EpochRecord, RunPaths, SavedState } from "./state.ts";
import type { Prepared } from "./train_data.ts";

/**
 * The arguments that decide a run's result; a resumed run must match them exactly: what is trained
 * (model, task, mode, mask and its content) on which backend, and the hyperparameters (lib/tuning/
 * hyperparameters.ts, where they are listed).
 */
export interface RunIdentity extends Hyperparameters {
  model: string;
  task: string;
  mode: ModeName;
  mask: string | null;
  maskSha256: string | null;
  backend: string;
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
  /** The OpenBLAS the products ran on (`--gemm openblas`): its build, core and threads. */
  gemm?: { gemm: "openblas"; threads: number; config: string; core: string };
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

/** What a run's identity is made of, as the caller gives it. */
export interface IdentityOptions extends HyperparameterOptions {
  model: string;
  task: string;
  mode: ModeName | string;
  mask?: string;
}

/** The identity of a run from its options (defaults filled, every value checked, paths absolute). */
export async function identityOf(o: IdentityOptions, backend: string): Promise<RunIdentity> {
  const mode = getMode(o.mode);
  if (mode.needsMask && !o.mask) throw new Error(`mode "mask" needs --mask FILE`);
  if (!mode.needsMask && o.mask) throw new Error(`--mask is only for mode "mask" (mode is "${mode.name}")`);
  const hyper = resolveHyperparameters(o, mode.name);
  const maskPath = o.mask ? resolve(o.mask) : null;
  const model = resolveModelDir(o.model);
  const tooLong = maxLenProblem(hyper.maxLen, await readConfig(join(model, "config.json")));
  if (tooLong) throw new Error(`max length ${tooLong} (${model})`);
  return {
    model,
    task: getTask(o.task).name,
    mode: mode.name,
    mask: maskPath,
    maskSha256: maskPath ? await sha256File(maskPath) : null,
    backend,
    ...hyper,
  };
}

async function sha256File(path: string): Promise<string> {
  try {
    return (await fileChecksum(path)).sha256;
  } catch (err) {
    throw new Error(`mask file ${(err as Error).message}`);
  }
}

/**
 * Fields that differ between two identities (the mask path may move if its content is the same). Keys of
 * either side count: an optional field (init, workers, micro-batch) set on one side only is a difference.
 */
export function identityDiff(saved: RunIdentity, now: RunIdentity): string[] {
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

export function metricsOf(
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

/**
 * What OUT holds: its config, and the metrics of a finished run whose delta is intact; a finished run
 * whose delta is missing or not the one written comes back as `redo` (why). A run with other arguments
 * is an error.
 */
export async function existingRun(paths: RunPaths, identity: RunIdentity): Promise<
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
export async function discardOutputs(paths: RunPaths): Promise<void> {
  for (const path of [paths.metrics, paths.delta, paths.model]) {
    await Deno.remove(path, { recursive: true }).catch((err) => {
      if (!(err instanceof Deno.errors.NotFound)) throw err;
    });
  }
}

/**
 * The outputs, in an order that survives a kill at any point: the delta (trained + head + freshly
 * initialised tensors), optionally the full model, then the metrics that mark the run finished, and
 * only then is the state removed.
 */
export async function writeOutputs(
  identity: RunIdentity,
  run: Prepared,
  paths: RunPaths,
  model: BertClassifier,
  state: SavedState,
  saveModel: boolean,
): Promise<{ out: string; metrics: RunMetrics; deltaPath: string; modelPath?: string }> {
  const tuned = await model.exportTensors();
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
  if (saveModel) {
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

/** For a finished run asked again with `saveModel`: writes OUT/model from base + delta if missing. */
export async function ensureModelFromDelta(
  identity: RunIdentity,
  paths: RunPaths,
  note: (text: string) => void,
): Promise<string> {
  try {
    await Deno.stat(join(paths.model, "model.safetensors"));
    return paths.model;
  } catch {
    // not written yet
  }
  const ck = await loadWithDelta(identity.model, paths.delta);
  await saveCheckpoint(paths.model, ck, { vocabFrom: identity.model, regression: ck.numLabels === 1 });
  note(`wrote ${paths.model} from ${paths.delta}`);
  return paths.model;
}
