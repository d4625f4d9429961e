/**
 * A run folder's files and its resumable state. The state is one safetensors file (trained parameters
 * `param/NAME`, Adam moments `m/NAME` and `v/NAME`) whose metadata holds the step and the metrics so
 * far, so that saving it is a single atomic rename: a run killed at any moment finds either the previous
 * state or the new one, never half of each.
 */
import { dirname, join } from "node:path";
import {
  nonFiniteTensor,
  readSafetensorsWithMetadata,
  type TensorMap,
  writeSafetensors,
} from "../bert/safetensors.ts";
import { tf } from "../tf.ts";
import { removeStaleTemps } from "../util/atomic.ts";
import type { AdamW } from "./optimizer.ts";

/** The files of run folder `out`. */
export function runPaths(out: string) {
  return {
    out,
    config: join(out, "config.json"),
    metrics: join(out, "metrics.json"),
    delta: join(out, "delta.safetensors"),
    model: join(out, "model"),
    stateDir: join(out, "state"),
    state: join(out, "state", "state.safetensors"),
    /** Held by the process working in the folder (lib/util/lock.ts). */
    lock: join(out, ".lock"),
  };
}

export type RunPaths = ReturnType<typeof runPaths>;

export interface EpochRecord {
  epoch: number;
  /** Updates done at the end of this epoch. */
  step: number;
  /** Mean of the batch losses of this epoch. */
  trainLoss: number;
  dev: Record<string, number>;
  trainSeconds: number;
  evalSeconds: number;
  /** Training examples per second of this epoch. */
  examplesPerSecond: number;
}

/** What the state file's metadata holds besides the tensors. */
export interface SavedState {
  /** The run's identity (arguments that decide its result), checked on resume. */
  identity: unknown;
  step: number;
  epochs: EpochRecord[];
  /** Sum and count of batch losses of the epoch in progress. */
  lossSum: number;
  lossCount: number;
  /** Train seconds of the epoch in progress. */
  epochSeconds: number;
  /** Steps at which earlier processes resumed. */
  resumedAt: number[];
}

const STATE_KEY = "normtune_state";

/** Writes the state: the optimizer's trained parameters and moments plus `state`. */
export async function saveState(
  path: string,
  params: Map<string, tf.Variable>,
  optimizer: AdamW,
  state: SavedState,
): Promise<void> {
  const tensors: TensorMap = await optimizer.exportState();
  for (const name of optimizer.names) {
    const v = params.get(name)!;
    tensors.set(`param/${name}`, { shape: [...v.shape], data: (await v.data()) as Float32Array });
  }
  await writeSafetensors(path, tensors, { [STATE_KEY]: JSON.stringify(state) });
}

/**
 * Reads a state file, or `undefined` when there is none. Temporary files that a kill left behind in its
 * folder (a save cut short) are removed.
 */
export async function readState(
  path: string,
): Promise<{ state: SavedState; tensors: TensorMap } | undefined> {
  await removeStaleTemps(dirname(path));
  try {
    await Deno.stat(path);
  } catch {
    return undefined;
  }
  const { tensors, metadata } = await readSafetensorsWithMetadata(path);
  const raw = metadata[STATE_KEY];
  if (!raw) throw new Error(`${path}: not a normtune state file (no "${STATE_KEY}" metadata); use --fresh`);
  // Written before states were checked: resuming from it would only diverge again.
  const bad = nonFiniteTensor(tensors);
  if (bad) throw new Error(`${path}: ${bad}; this state is not usable, rerun with --fresh`);
  return { state: JSON.parse(raw) as SavedState, tensors };
}

/** Puts saved parameters and moments back into the model's variables and the optimizer. */
export function restoreState(
  path: string,
  saved: { state: SavedState; tensors: TensorMap },
  params: Map<string, tf.Variable>,
  optimizer: AdamW,
): void {
  for (const name of optimizer.names) {
    const t = saved.tensors.get(`param/${name}`);
    const v = params.get(name)!;
    if (!t || t.data.length !== v.size) {
      throw new Error(`${path}: "param/${name}" is missing or misshapen; use --fresh`);
    }
    tf.tidy(() => v.assign(tf.tensor(t.data, v.shape, "float32")));
  }
  optimizer.importState(saved.tensors, saved.state.step);
}

/** Removes what an earlier run left in the folder (only the files a run writes). */
export async function clearRun(paths: RunPaths): Promise<void> {
  for (const path of [paths.stateDir, paths.model, paths.delta, paths.metrics, paths.config]) {
    await Deno.remove(path, { recursive: true }).catch((err) => {
      if (!(err instanceof Deno.errors.NotFound)) throw err;
    });
  }
}
