/**
 * Profiles: how big the study runs. Each is plain data (model, tasks, seeds, subsets, hyperparameters,
 * Fisher and mask settings) that lib/experiments/study.ts turns into grids; every value that changes a
 * result ends up in the cells' configurations and so in their ids.
 *
 * - `smoke`: minutes. Two tasks, 64 train / 64 dev examples, one epoch, max length 64, one seed,
 *   k in {10, 100}, and every control (`CONTROLS`). CI executes every notebook on it.
 * - `cpu` (default): the small stand-in model (`bert-tiny-mlm`, 2 layers, 128 hidden) on CoLA, SST-2
 *   (train subsampled to 8,000), MRPC, STS-B and RTE, three seeds; sized for a few hours on two CPU cores
 *   (`normtune grid --estimate` prints the expected cost from measured step times).
 * - `paper`: bert-base-uncased, all nine GLUE tasks, five seeds: for GPU machines. Hyperparameters below.
 *
 * The paper's hyperparameters. The body of arXiv 2403.20284 could not be read from this project (no
 * internet), so `paper` follows what the paper builds on, BitFit (Ben Zaken et al., 2022; its released
 * `run_glue.py`: AdamW, max length 128, learning rate 1e-3 for bias-only training) for the sparse methods,
 * and BERT's recipe (Devlin et al., 2019: lr 2e-5, 3 epochs, batch 32) for full fine-tuning. Sparse
 * methods get more epochs (10; 3 on the four large tasks) because they move few parameters with a large
 * rate. Batch 32 everywhere (BitFit's script defaults to 8; 32 keeps MNLI/QQP affordable). Change it here
 * if you have the paper's table of settings: the cells' ids follow.
 *
 * Overrides: `NORMTUNE_MODEL` (or `--model`) replaces the profile's model; `GLUE_DIR` and
 * `NORMTUNE_MODELS_DIR` say where data and models are (lib/util/paths.ts).
 */
import type { Hyperparameters } from "../tuning/hyperparameters.ts";
import type { TaskName } from "../glue/tasks.ts";

export type ProfileName = "smoke" | "cpu" | "paper";
export const PROFILE_NAMES: readonly ProfileName[] = ["smoke", "cpu", "paper"];
export const DEFAULT_PROFILE: ProfileName = "cpu";

/** The study's grids in run order (lib/experiments/study.ts builds them). */
export const GRID_NAMES = ["fisher", "main", "change", "topk", "crosstask"] as const;
export type GridName = typeof GRID_NAMES[number];

/** The four whole-model methods of the main comparison (Table / notebook 3). */
export const MAIN_MODES = ["full", "bitfit", "layernorm", "layernorm-output"] as const;
export type MainMode = typeof MAIN_MODES[number];

/**
 * Controls beside the main methods, by the method name the results use (lib/experiments/load.ts
 * `methodOf`): only the head; the pooler and head (the stand-ins' pooler was never pretrained); and full
 * and LayerNorm-only fine-tuning from BERT's random initialisation (same architecture, no pretraining,
 * seeded by the run's seed). A random-init control takes its pretrained counterpart's learning rate and
 * epochs, so only the starting weights differ.
 */
export const CONTROLS = {
  head: { mode: "head", init: "pretrained" },
  "head-pooler": { mode: "head-pooler", init: "pretrained" },
  "full-random-init": { mode: "full", init: "random" },
  "layernorm-random-init": { mode: "layernorm", init: "random" },
} as const;
export type ControlName = keyof typeof CONTROLS;
export const CONTROL_NAMES = Object.keys(CONTROLS) as ControlName[];

/**
 * Learning-rate and epoch classes: the main modes, `mask` for Fisher / random / cross-task masks, and the
 * head-only controls.
 */
export type TrainClass = MainMode | "mask" | "head" | "head-pooler";

/**
 * A profile's training settings: the hyperparameters that are the same for every cell (their meaning and
 * checks are lib/tuning/hyperparameters.ts's), and those that vary by task or training class.
 */
export interface TrainSettings
  extends
    Pick<Hyperparameters, "maxLen" | "batchSize" | "evalBatchSize" | "warmup" | "weightDecay" | "clip"> {
  /** Train subset: one size for every task, or per task (missing: the whole split). */
  maxTrain: number | Partial<Record<TaskName, number>>;
  /** Dev subset for every task (undefined: the whole split). */
  maxDev?: number;
  lr: Record<TrainClass, number>;
  epochs: Record<TrainClass, number>;
  /** Epochs per task that replace `epochs` for that task (large tasks). */
  epochsByTask?: Partial<Record<TaskName, Partial<Record<TrainClass, number>>>>;
}

export interface FisherSettings {
  /** Examples N (fewer if the train split is smaller). */
  examples: number;
  /** Which parameters are scored: "all" gives every component's Fisher (notebook 2) and the LayerNorm part. */
  params: "all" | "layernorm";
  labels: "true" | "sampled";
  /** Seed of the subset and of the fresh head. */
  seed: number;
  maxLen: number;
}

export interface Profile {
  name: ProfileName;
  about: string;
  /** Model folder or name (resolved like `--model`). */
  model: string;
  tasks: TaskName[];
  seeds: number[];
  train: TrainSettings;
  fisher: FisherSettings;
  /** Top-k% of LayerNorm elements by Fisher (and random masks of the same size), notebook 4. */
  topk: number[];
  /** k of the cross-task masks (notebook 5). */
  crossTaskK: number;
  /** Where masks rank elements (lib/analysis/mask_selection.ts). */
  maskPer: "global" | "module" | "layer";
  /** Seed of the change analysis' fine-tuned run (full fine-tuning, notebook 1). */
  changeSeed: number;
  /** Controls run in the main grid after the main methods, every seed (none: the grid is unchanged). */
  controls: ControlName[];
  /**
   * Seconds per cost unit (a training step, a Fisher example) by cost class, measured on the machine the
   * profile targets; used for estimates until this machine's own timings exist.
   */
  nominalSecondsPerUnit: Record<string, number>;
}

const SMALL_TASKS: TaskName[] = ["CoLA", "SST-2", "MRPC", "STS-B", "RTE"];
const ALL_TASKS: TaskName[] = ["CoLA", "SST-2", "MRPC", "STS-B", "QQP", "MNLI", "QNLI", "RTE", "WNLI"];

const COMMON = { evalBatchSize: 64, warmup: 0.06, weightDecay: 0.01, clip: 1 };

/** Every class but full fine-tuning: few trained parameters, so a larger rate and more epochs. */
const SPARSE_CLASSES = ["bitfit", "layernorm", "layernorm-output", "mask", "head", "head-pooler"] as const;

/** One value for every sparse class. */
function sparse(value: number): Record<typeof SPARSE_CLASSES[number], number> {
  return Object.fromEntries(SPARSE_CLASSES.map((c) => [c, value])) as Record<
    typeof SPARSE_CLASSES[number],
    number
  >;
}

/** A learning rate or epoch count per class: one for full fine-tuning, one for every sparse class. */
function fullAndSparse(full: number, sparseValue: number): Record<TrainClass, number> {
  return { full, ...sparse(sparseValue) };
}

/**
 * Seconds per cost unit with bert-tiny-mlm on the wasm backend, one core (CPU time measured on the
 * 2-core development machine: LayerNorm-only ~33 ms per unit, full fine-tuning ~1.5x that, Fisher of
 * every parameter ~46 ms per RTE example). A unit is about one training step of 32 short sentences
 * (lib/experiments/study.ts `trainingCost`). Used until cells of this machine have been timed.
 */
const CPU_RATES = { "finetune/full": 0.05, "finetune/sparse": 0.033, fisher: 0.05, change: 1.5, mask: 0.5 };

export const PROFILES: Record<ProfileName, Profile> = {
  smoke: {
    name: "smoke",
    about: "minutes: 2 tasks, 64 train/dev examples, 1 epoch, max length 64, 1 seed, k in {10, 100}",
    model: "bert-tiny-mlm",
    tasks: ["SST-2", "STS-B"],
    seeds: [0],
    train: {
      ...COMMON,
      maxLen: 64,
      batchSize: 16,
      maxTrain: 64,
      maxDev: 64,
      lr: fullAndSparse(1e-4, 1e-3),
      epochs: fullAndSparse(1, 1),
    },
    fisher: { examples: 32, params: "all", labels: "true", seed: 0, maxLen: 64 },
    topk: [10, 100],
    crossTaskK: 10,
    maskPer: "global",
    changeSeed: 0,
    // Every control on smoke, so CI runs them end to end; cpu and paper add them with issue 15's
    // recompute (new cells, so their ids are new; the existing cells keep theirs).
    controls: [...CONTROL_NAMES],
    nominalSecondsPerUnit: CPU_RATES,
  },
  cpu: {
    name: "cpu",
    about: "bert-tiny-mlm on CoLA, SST-2 (8,000 train), MRPC, STS-B, RTE; 3 seeds; a few hours on 2 cores",
    model: "bert-tiny-mlm",
    tasks: SMALL_TASKS,
    seeds: [0, 1, 2],
    train: {
      ...COMMON,
      maxLen: 128,
      batchSize: 32,
      maxTrain: { "SST-2": 8000 },
      lr: fullAndSparse(1e-4, 1e-3),
      epochs: fullAndSparse(2, 2),
    },
    fisher: { examples: 512, params: "all", labels: "true", seed: 0, maxLen: 128 },
    topk: [1, 5, 10, 25, 50, 100],
    crossTaskK: 10,
    maskPer: "global",
    changeSeed: 0,
    controls: [],
    nominalSecondsPerUnit: CPU_RATES,
  },
  paper: {
    name: "paper",
    about: "bert-base-uncased, all nine GLUE tasks, 5 seeds; for GPU machines (docs/gpu.md)",
    model: "bert-base-uncased",
    tasks: ALL_TASKS,
    seeds: [0, 1, 2, 3, 4],
    train: {
      ...COMMON,
      maxLen: 128,
      batchSize: 32,
      maxTrain: {},
      lr: fullAndSparse(2e-5, 1e-3),
      epochs: fullAndSparse(3, 10),
      epochsByTask: {
        QQP: sparse(3),
        MNLI: sparse(3),
        QNLI: sparse(3),
        "SST-2": sparse(3),
      },
    },
    fisher: { examples: 1024, params: "all", labels: "true", seed: 0, maxLen: 128 },
    topk: [1, 5, 10, 25, 50, 100],
    crossTaskK: 10,
    maskPer: "global",
    changeSeed: 0,
    controls: [],
    // A guess for bert-base on one GPU with the tensorflow backend (a step of 32 x 128 tokens is ~17
    // units); measured rates replace it after the first cells.
    nominalSecondsPerUnit: {
      "finetune/full": 0.012,
      "finetune/sparse": 0.008,
      fisher: 0.05,
      change: 30,
      mask: 5,
    },
  },
};

/** `--profile`, else `NORMTUNE_PROFILE`, else `cpu`. */
export function profileName(flag?: string): ProfileName {
  const name = flag ?? Deno.env.get("NORMTUNE_PROFILE") ?? DEFAULT_PROFILE;
  if (!(PROFILE_NAMES as readonly string[]).includes(name)) {
    throw new Error(
      `unknown profile "${name}"; use one of ${
        PROFILE_NAMES.join(", ")
      } (flag --profile or NORMTUNE_PROFILE)`,
    );
  }
  return name as ProfileName;
}

/** The profile, with the model replaced by `--model` or `NORMTUNE_MODEL` when given. */
export function getProfile(name: ProfileName, modelFlag?: string): Profile {
  const p = PROFILES[name];
  const model = modelFlag ?? Deno.env.get("NORMTUNE_MODEL") ?? p.model;
  return { ...p, model };
}

/** The train subset size of a task, or undefined for the whole split. */
export function maxTrainFor(train: TrainSettings, task: TaskName): number | undefined {
  return typeof train.maxTrain === "number" ? train.maxTrain : train.maxTrain[task];
}

/** Epochs of a training class on a task. */
export function epochsFor(train: TrainSettings, task: TaskName, cls: TrainClass): number {
  return train.epochsByTask?.[task]?.[cls] ?? train.epochs[cls];
}
