/**
 * The training hyperparameters, listed once: their flag, default and check. The trainer resolves a run's
 * options through `resolveHyperparameters` (its identity is these values plus model, task, mode, mask and
 * backend), `normtune finetune` derives its flags from `HYPERPARAMETERS`, and a grid cell's configuration
 * is checked by the same function before it reaches the trainer.
 *
 * Defaults, sized for bert-tiny on CPU: 3 epochs, batch 32, 128 tokens, seed 42, lr `defaultLr(mode)`,
 * warm-up ratio 0.06, weight decay 0.01, gradient clip 1.0. `maxTrain` and `maxDev` subsets use seed 0,
 * not the run's seed, so runs compared across modes and seeds see the same examples.
 *
 * ```ts
 * const h = resolveHyperparameters({ lr: 1e-3, epochs: 1 }, "layernorm");
 * h.batchSize; // 32
 * ```
 */
import type { GemmName } from "../backend/gemm_choice.ts";
import { INIT_NAMES, type InitName } from "../bert/init.ts";
import { getMode, type ModeName } from "./modes.ts";
import { DEFAULT_WARMUP_RATIO, warmupSteps } from "./schedule.ts";

/** A run's resolved hyperparameters (what its identity holds besides model, task, mode, mask, backend). */
export interface Hyperparameters {
  /** Peak learning rate. */
  lr: number;
  epochs: number;
  batchSize: number;
  /** Tokens per example, specials included. */
  maxLen: number;
  /** Seeds the head initialisation, data order and dropout (and the random init). */
  seed: number;
  /** A fixed random subset of this many train examples (subset seed 0), or the whole split. */
  maxTrain: number | null;
  /** Likewise for the dev split. */
  maxDev: number | null;
  /** Warm-up ratio of the linear schedule. */
  warmup: number;
  /** AdamW decoupled weight decay (never on biases and LayerNorm). */
  weightDecay: number;
  /** Global gradient-norm clip; 0 turns clipping off. */
  clip: number;
  evalBatchSize: number;
  /**
   * Rows per gradient pass, gradients accumulated over the batch (bert-base full fine-tuning on wasm needs
   * 2). It changes the dropout draws. Present only when set, so runs saved before it existed still resume.
   */
  microBatch?: number;
  /**
   * Data-parallel Workers computing the gradients (lib/parallel/engine.ts). Dropout draws depend on the
   * split. Present only when above 1, likewise.
   */
  workers?: number;
  /**
   * Where the weights start: BERT's random initialisation seeded by `seed` (lib/bert/init.ts; the control
   * for what pretraining gives). Present only for random initialisation, likewise.
   */
  init?: "random";
}

/** What a caller may give: any hyperparameter, unset ones take their defaults. */
export interface HyperparameterOptions {
  lr?: number;
  epochs?: number;
  batchSize?: number;
  maxLen?: number;
  seed?: number;
  maxTrain?: number | null;
  maxDev?: number | null;
  warmup?: number;
  weightDecay?: number;
  clip?: number;
  evalBatchSize?: number;
  microBatch?: number;
  workers?: number;
  init?: InitName;
}

export type HyperparameterName = keyof HyperparameterOptions;

interface Entry {
  /** The command-line flag. */
  flag: string;
  kind: "number" | "string";
}

/** Every hyperparameter and its flag, in the order `--help` lists them. */
export const HYPERPARAMETERS: Record<HyperparameterName, Entry> = {
  init: { flag: "init", kind: "string" },
  lr: { flag: "lr", kind: "number" },
  epochs: { flag: "epochs", kind: "number" },
  batchSize: { flag: "batch-size", kind: "number" },
  maxLen: { flag: "max-len", kind: "number" },
  seed: { flag: "seed", kind: "number" },
  maxTrain: { flag: "max-train", kind: "number" },
  maxDev: { flag: "max-dev", kind: "number" },
  warmup: { flag: "warmup", kind: "number" },
  weightDecay: { flag: "weight-decay", kind: "number" },
  clip: { flag: "clip", kind: "number" },
  evalBatchSize: { flag: "eval-batch-size", kind: "number" },
  microBatch: { flag: "micro-batch", kind: "number" },
  workers: { flag: "workers", kind: "number" },
};

export const HYPERPARAMETER_NAMES = Object.keys(HYPERPARAMETERS) as HyperparameterName[];

export const DEFAULTS = {
  epochs: 3,
  batchSize: 32,
  maxLen: 128,
  seed: 42,
  warmup: DEFAULT_WARMUP_RATIO,
  weightDecay: 0.01,
  clip: 1,
  evalBatchSize: 64,
} as const;

function positiveInt(name: string, v: number): number {
  if (!Number.isInteger(v) || v < 1) throw new Error(`${name} must be a positive integer, got ${v}`);
  return v;
}

function optionalPositiveInt(name: string, v: number | null | undefined): number | null {
  return v === undefined || v === null ? null : positiveInt(name, v);
}

/**
 * Rows per data-parallel worker from which two workers are the default: at batch 32 x 128 (16 rows each)
 * two workers took 0.49-0.96x the time of one on an idle 2-core machine (the benchmark, tiny and mini,
 * every mode; README "Speed and memory"). Smaller shares were not measured, and a step's fixed costs
 * (messages, the update on the main thread) weigh more there, so they keep one worker unless `--workers`
 * says otherwise.
 */
export const MIN_ROWS_PER_WORKER = 16;

/** What else the default worker count depends on: the run's tuning mode and the resolved product. */
export interface WorkerContext {
  mode?: string;
  /** The product as resolved (`resolveGemm`): `auto` is decided by then. */
  gemm?: GemmName;
}

/**
 * The worker count `normtune finetune` uses when `--workers` is not given (`workers: "auto"`), once the
 * backend is known: on wasm and cpu, 2 where the machine has two cores or more and the batch gives each
 * worker `MIN_ROWS_PER_WORKER` rows, else 1; one process elsewhere (measured on wasm only: webgpu runs the
 * whole batch on one GPU, and native tensorflow has a thread pool of its own). Not a default of
 * `resolveHyperparameters`: grid cells keep their one worker (`--jobs` already spreads cells over the
 * cores) and their identities.
 *
 * One exception: full fine-tuning on OpenBLAS (the CLI's default product where it loads) keeps 1 worker,
 * whose products run on two OpenBLAS threads. Two workers exchange every weight each step (gradients out,
 * new values back: 17.5 MB a step for BERT-tiny, mostly the embedding table), and with the products
 * already on both cores the second worker gains less than that costs. In the idle whole-job benchmarks
 * (README "Speed and memory", docs/speed_history.md) one worker was faster for tiny full fine-tuning in all 8
 * runs (e.g. 2.11 against 2.32 s, 3.05 against 3.14, 2.44 against 3.62) and for mini in 4 of 5 (10.0 against
 * 10.4 s, 11.6 against 12.2, 13.4 against 13.7, 16.4 against 18.8; 14.2 against 13.3 the other way); two
 * workers stay faster for the sparse modes there, and for every mode on the wasm product (tiny full 3.52
 * against 4.86 s).
 */
export function autoWorkers(
  backend: string,
  batchSize: number,
  cores = navigator.hardwareConcurrency,
  context: WorkerContext = {},
): number {
  if (backend !== "wasm" && backend !== "cpu") return 1;
  if (cores < 2 || batchSize < 2 * MIN_ROWS_PER_WORKER) return 1;
  return context.gemm === "openblas" && context.mode === "full" ? 1 : 2;
}

/** Checks a save interval, a count of updates (not a hyperparameter: it does not change the result). */
export function checkSaveEvery(v: number | undefined): number {
  return positiveInt("save every", v ?? 50);
}

/**
 * Fills the defaults and checks every value (errors name the setting); `mode` gives the learning rate's
 * default. The result holds the optional members only when they change anything.
 */
export function resolveHyperparameters(o: HyperparameterOptions, mode: ModeName | string): Hyperparameters {
  const lr = o.lr ?? getMode(mode).defaultLr;
  if (!(lr >= 0) || !Number.isFinite(lr)) throw new Error(`lr must be a number >= 0, got ${lr}`);
  const warmup = o.warmup ?? DEFAULTS.warmup;
  warmupSteps(1, warmup); // validates the ratio
  const weightDecay = o.weightDecay ?? DEFAULTS.weightDecay;
  if (!(weightDecay >= 0)) throw new Error(`weight decay must be >= 0, got ${weightDecay}`);
  const clip = o.clip ?? DEFAULTS.clip;
  if (!(clip >= 0)) throw new Error(`clip must be >= 0 (0 = off), got ${clip}`);
  if (o.init !== undefined && !INIT_NAMES.includes(o.init)) {
    throw new Error(`init must be one of ${INIT_NAMES.join(", ")}, got ${JSON.stringify(o.init)}`);
  }
  const seed = o.seed ?? DEFAULTS.seed;
  if (!Number.isSafeInteger(seed) || seed < 0) throw new Error(`seed must be an integer >= 0, got ${seed}`);
  return {
    lr,
    epochs: positiveInt("epochs", o.epochs ?? DEFAULTS.epochs),
    batchSize: positiveInt("batch size", o.batchSize ?? DEFAULTS.batchSize),
    // Checked against the model's config.json by the trainer (maxLenProblem), which knows the model.
    maxLen: o.maxLen ?? DEFAULTS.maxLen,
    seed,
    maxTrain: optionalPositiveInt("max train", o.maxTrain),
    maxDev: optionalPositiveInt("max dev", o.maxDev),
    warmup,
    weightDecay,
    clip,
    evalBatchSize: positiveInt("eval batch size", o.evalBatchSize ?? DEFAULTS.evalBatchSize),
    ...(o.microBatch ? { microBatch: positiveInt("micro batch", o.microBatch) } : {}),
    ...((o.workers ?? 1) > 1 ? { workers: positiveInt("workers", o.workers!) } : {}),
    ...(o.init === "random" ? { init: "random" as const } : {}),
  };
}

/** The hyperparameters among `values` (a cell's configuration, an identity): every other key is left out. */
export function pickHyperparameters(values: Record<string, unknown>): HyperparameterOptions {
  const out: Record<string, unknown> = {};
  for (const name of HYPERPARAMETER_NAMES) if (values[name] !== undefined) out[name] = values[name];
  return out as HyperparameterOptions;
}
