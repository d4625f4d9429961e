/**
 * Fine-tuning a BERT classifier on a GLUE task, training only what the tuning mode selects, with
 * resumable state. `finetune(options)` is what the CLI, notebooks and the experiment runner call.
 *
 * One run writes, in its folder OUT:
 * - `config.json`: every argument, the model folder, backend, data sizes and trainable counts (and with
 *   `gemm: "openblas"` OpenBLAS's build and core);
 * - `state/state.safetensors`: trained parameters, Adam moments, step and metrics so far (one file, so
 *   one atomic rename); saved every `saveEvery` steps and at each epoch end, removed when the run ends;
 * - `metrics.json`: dev metrics and train loss per epoch, the best epoch, timings (`finished: true` once
 *   the run is complete, with the delta's sha256 and size);
 * - `delta.safetensors`: the tuned parameters (lib/tuning/delta.ts); `model/` with `saveModel`;
 * - `.lock` while a process works in OUT (lib/util/lock.ts): a second one waits for it.
 *
 * Nothing non-finite is kept: every update is checked (a huge learning rate gives a finite loss but
 * infinite weights), and an update that is not finite stops the run with the last saved state, which is,
 * by throwing `DivergedError` (lib/tuning/epochs.ts: where it diverged, and a message that says to lower
 * --lr).
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
 * The hyperparameters, their defaults and checks: lib/tuning/hyperparameters.ts. The state is saved every
 * 50 updates by default. The parts: the one update (step.ts), the run folder's identity, resume and
 * outputs (run_folder.ts), data loading (train_data.ts), the epoch loop (epochs.ts).
 *
 * ```ts
 * const result = await finetune({ model: "../shared/models/bert-tiny-mlm", task: "RTE", mode: "layernorm",
 *   out: "runs/rte-ln", epochs: 1, maxTrain: 500 });
 * result.metrics.best.main;
 * ```
 */
import { resolve } from "node:path";
import { BertClassifier } from "../bert/model.ts";
import { createGradientEngine, type GradientEngine } from "../parallel/engine.ts";
import { type GemmAsk, gemmDescription, gemmFromEnv, resolveGemm } from "../backend/gemm_choice.ts";
import { type BackendName, initBackend, initCompute } from "../tf.ts";
import { removeStaleTemps, writeJsonAtomic } from "../util/atomic.ts";
import { acquireLock } from "../util/lock.ts";
import { trainEpochs } from "./epochs.ts";
import { autoWorkers, checkSaveEvery, DEFAULTS, type HyperparameterOptions } from "./hyperparameters.ts";
import { describeCounts, type ModeName } from "./modes.ts";
import {
  discardOutputs,
  ensureModelFromDelta,
  existingRun,
  identityDiff,
  identityOf,
  type RunConfig,
  type RunIdentity,
  type RunMetrics,
  writeOutputs,
} from "./run_folder.ts";
import { warmupSteps } from "./schedule.ts";
import { clearRun, readState, restoreState, type RunPaths, runPaths, type SavedState } from "./state.ts";
import { StepRunner } from "./step.ts";
import { prepare } from "./train_data.ts";

export type { EpochRecord } from "./state.ts";
export { runPaths } from "./state.ts";
export type { RunConfig, RunIdentity, RunMetrics } from "./run_folder.ts";
export { NonFiniteError, StepRunner } from "./step.ts";
export { DivergedError } from "./epochs.ts";

export interface FinetuneOptions extends Omit<HyperparameterOptions, "workers"> {
  /** Data-parallel workers; "auto": `autoWorkers` for the backend and batch size (the CLI's default). */
  workers?: number | "auto";
  /** Model folder or name (resolved as `--model`: path, NORMTUNE_MODELS_DIR, cache). */
  model: string;
  /** GLUE task name ("RTE", "sst2", ...). */
  task: string;
  mode: ModeName | string;
  /** Mask file for mode `mask` (lib/tuning/mask_file.ts). */
  mask?: string;
  /** The run folder. */
  out: string;
  /** Save the state every this many updates (and at each epoch end); default 50. */
  saveEvery?: number;
  /** Also write the full fine-tuned model to OUT/model/. */
  saveModel?: boolean;
  /** Start over, discarding what OUT holds from an earlier run. */
  fresh?: boolean;
  /** Backend; default NORMTUNE_BACKEND, else auto. */
  backend?: BackendName;
  /**
   * The wasm backend's product (lib/backend/gemm_choice.ts); default NORMTUNE_GEMM, else wasm. OpenBLAS
   * gives the run another identity (backend "wasm+openblas-tN").
   */
  gemm?: GemmAsk;
  /** OpenBLAS threads; default `blasThreads(workers)`: 1 with several workers, else up to 2. */
  gemmThreads?: number;
  glueDir?: string;
  /** No progress lines or notes on stderr. */
  quiet?: boolean;
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

/**
 * Runs (or resumes, or returns the saved result of) one fine-tuning run. See the module comment for
 * what OUT holds.
 */
export async function finetune(options: FinetuneOptions): Promise<RunResult> {
  const o = options;
  const backend = await initBackend(o.backend);
  // Every argument is checked before anything is written to OUT. The product first (`auto` resolved
  // once, so its note is printed once): the default worker count depends on it.
  const gemm = resolveGemm(backend, { name: o.gemm ?? gemmFromEnv() });
  const workers = o.workers === "auto"
    ? autoWorkers(backend, o.batchSize ?? DEFAULTS.batchSize, undefined, { mode: o.mode, gemm })
    : o.workers;
  // With OpenBLAS its thread count, once the worker count is known.
  const compute = await initCompute({
    backend: o.backend,
    gemm,
    gemmThreads: o.gemmThreads,
    workers: workers ?? 1,
  });
  const identity = await identityOf({ ...o, workers }, compute.identity);
  if (backend === "webgpu" && identity.workers) {
    // The workers are CPU data parallelism (a wasm heap each); one GPU already runs the whole batch.
    throw new Error(
      `--workers ${identity.workers} is for CPU backends; on webgpu leave it out (one process)`,
    );
  }
  const paths = runPaths(resolve(o.out));
  const saveEvery = checkSaveEvery(o.saveEvery);
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
    const modelPath = o.saveModel
      ? await ensureModelFromDelta(identity, paths, (text) => note(o, text))
      : undefined;
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

  const run = await prepare(identity, { glueDir: o.glueDir, quiet: o.quiet, note: (text) => note(o, text) });
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
    ...(gemmDescription() ? { gemm: gemmDescription() } : {}),
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
      if (engine.identity !== identity.backend) {
        // Their gradients would carry other bits than the run's identity says.
        throw new Error(`the workers compute under ${engine.identity}, the run under ${identity.backend}`);
      }
      await engine.setParams(await runner.trainedValues()); // a resumed run's values
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
      quiet: o.quiet,
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
      ...await writeOutputs(identity, run, paths, model, state, o.saveModel ?? false),
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

function note(o: FinetuneOptions, text: string): void {
  if (!o.quiet) console.error(text);
}
