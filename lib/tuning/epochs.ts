/**
 * The epoch loop: from a run's state to its last epoch, one update per batch (lib/tuning/step.ts) at the
 * schedule's learning rate, the state saved every `saveEvery` updates and at each epoch end, the dev set
 * evaluated and the metrics written at each epoch end.
 *
 * The data order of epoch `e` depends only on `(seed, e)` and the dropout of update `t` only on
 * `(seed, t)`, so a run resumed from its state takes the same steps as one never interrupted.
 *
 * An update that is not finite (lib/tuning/step.ts `NonFiniteError`) stops the loop with a `DivergedError`:
 * its message tells a command-line user what to do (lower --lr, rerun with --fresh); its fields say where
 * the run diverged, which a study cell records (lib/experiments/cells.ts) instead of failing.
 *
 * ```ts
 * await trainEpochs({ identity, run, paths, model, runner, state, saveEvery: 50, hasState: false });
 * ```
 */
import { type BertClassifier } from "../bert/model.ts";
import { batchLabels, makeBatch } from "../bert/batch.ts";
import type { GradientEngine } from "../parallel/engine.ts";
import { writeJsonAtomic } from "../util/atomic.ts";
import { type Progress, progress } from "../util/progress.ts";
import { deriveSeed, trainBatches } from "./batches.ts";
import { evaluateModel } from "./evaluate.ts";
import { metricsOf, type RunIdentity } from "./run_folder.ts";
import { linearSchedule } from "./schedule.ts";
import { type EpochRecord, type RunPaths, type SavedState, saveState } from "./state.ts";
import { NonFiniteError, type StepRunner } from "./step.ts";
import type { Prepared } from "./train_data.ts";

/** Training diverged: an update was not finite (`NonFiniteError`). The last saved state, if any, is kept. */
export class DivergedError extends Error {
  /** The 1-based update that was not finite, its 1-based epoch and batch within the epoch. */
  readonly step: number;
  readonly epoch: number;
  readonly batch: number;
  /** The run's peak learning rate. */
  readonly lr: number;
  /** What was not finite (the `NonFiniteError`'s message), e.g. `loss is NaN`. */
  readonly reason: string;
  /** The epochs finished before it diverged (each evaluated on the dev set). */
  readonly epochs: EpochRecord[];

  constructor(
    message: string,
    where: { step: number; epoch: number; batch: number; lr: number; reason: string; epochs: EpochRecord[] },
  ) {
    super(message);
    this.name = "DivergedError";
    this.step = where.step;
    this.epoch = where.epoch;
    this.batch = where.batch;
    this.lr = where.lr;
    this.reason = where.reason;
    this.epochs = where.epochs;
  }
}

/** Salt of the dropout seeds: update t's dropout depends only on (seed, t). */
const DROPOUT_SALT = 0xd509;

export interface Loop {
  /** No progress bar. */
  quiet?: boolean;
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

/**
 * Trains from `state` to the last epoch, evaluating and saving at each epoch end; throws `DivergedError`
 * when an update is not finite.
 */
export async function trainEpochs(l: Loop): Promise<void> {
  const { identity, run, paths, model, runner, engine, state } = l;
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
    const bar: Progress | undefined = l.quiet ? undefined : progress(
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
        r = engine ? await runner.stepOn(engine, ...args) : await runner.step(...args);
      } catch (err) {
        if (!(err instanceof NonFiniteError)) throw err;
        bar?.done("stopped");
        const kept = l.hasState
          ? `its last saved state is kept in ${paths.state}`
          : "no state had been saved yet";
        throw new DivergedError(
          `training diverged at step ${state.step + 1} (epoch ${epoch + 1}, batch ${b + 1}): ` +
            `${err.message}. The run stopped; ${kept}. Lower --lr (now ${identity.lr}), then rerun with --fresh.`,
          {
            step: state.step + 1,
            epoch: epoch + 1,
            batch: b + 1,
            lr: identity.lr,
            reason: err.message,
            epochs: state.epochs.map((e) => ({ ...e })),
          },
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
    const ev = await evaluateModel(model, run.task, run.dev, { batchSize: identity.evalBatchSize });
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
