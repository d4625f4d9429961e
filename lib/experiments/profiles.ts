/**
 * Profiles: how big the study runs. Each is plain data (model, tasks, seeds, subsets, hyperparameters,
 * Fisher and mask settings) that lib/experiments/study.ts turns into grids; every value that changes a
 * result ends up in the cells' configurations and so in their ids.
 *
 * - `smoke`: minutes. Two tasks, 64 train / 64 dev examples, one epoch (two for sparse classes), max
 *   length 64, one seed, two learning rates per class, k in {10, 100}, and every control (`CONTROLS`). CI
 *   executes every notebook on it.
 * - `cpu` (default): the stronger small stand-in (`bert-tiny-v2`, 2 layers, 128 hidden; its README has
 *   the recipe and numbers) on CoLA, SST-2, MRPC, STS-B and RTE; sized for a few hours on two CPU cores
 *   with `--jobs 2` (`normtune grid --estimate` prints the expected cost; README has the numbers).
 * - `paper`: bert-base-uncased, all nine GLUE tasks, five seeds: for GPU machines.
 *
 * Learning-rate search (every profile): each training class has a list of rates; the main grid runs every
 * main method and every control at every rate of its class with every seed, and the reported score per
 * task and method is the rate with the best mean dev score over seeds (lib/experiments/rates.ts, what
 * BitFit reports). Random-init controls search the rates of their pretrained counterpart's class, head
 * controls the sparse rates: every method gets the same care. The topk and crosstask grids train at the
 * LayerNorm rate chosen per task, and `change` reads the full fine-tuning at the chosen full rate, so
 * those cells are declared once main's runs of that task and class have finished (study.ts).
 *
 * Epochs, one rule for every profile (`sparseEpochs`): full fine-tuning trains `epochs` epochs; every
 * other class (few trained parameters, larger rates, so slower to move) trains half again as many,
 * rounded up (1 -> 2, 2 -> 3, 3 -> 5).
 *
 * The paper's hyperparameters. The body of arXiv 2403.20284 could not be read from this project (no
 * internet), so `paper` follows what the paper builds on: BERT's recipe for full fine-tuning (Devlin et
 * al., 2019: lr {2e-5, 3e-5, 5e-5}, 3 epochs, batch 32) and BitFit's published grid for the sparse
 * methods (Ben Zaken et al., 2022: lr {1e-4, 4e-4, 7e-4, 1e-3}; used for LayerNorm, masks and the head
 * controls too: nothing here says they need wider), max length 128, AdamW. Batch 32 everywhere (BitFit's
 * script defaults to 8; 32 keeps MNLI/QQP affordable). Change it here if you have the paper's table of
 * settings: the cells' ids follow.
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
 * seeded by the run's seed). A random-init control searches its pretrained counterpart's rates with its
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

/** The classes with a learning-rate search; `mask` trains at the LayerNorm rate chosen per task. */
export type SearchClass = Exclude<TrainClass, "mask">;

/** The grids' classes whose chosen rate other grids train at: LayerNorm (topk, crosstask), full (change). */
export type ChosenClass = "full" | "layernorm";

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
  /** Learning rates searched per class, ascending: every rate runs with every seed. */
  lr: Record<SearchClass, number[]>;
  /** Epochs of full fine-tuning; every other class trains `sparseEpochs` of it (one rule, every profile). */
  epochs: number;
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
  /** Controls run in the main grid beside the main methods, every rate of their class and every seed. */
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

/** Every searched class but full fine-tuning: few trained parameters, so larger rates and more epochs. */
const SPARSE_CLASSES = ["bitfit", "layernorm", "layernorm-output", "head", "head-pooler"] as const;

/** The rates per class: one list for full fine-tuning, one for every sparse class. */
function fullAndSparse(full: number[], sparse: number[]): Record<SearchClass, number[]> {
  return { full, ...Object.fromEntries(SPARSE_CLASSES.map((c) => [c, sparse])) } as Record<
    SearchClass,
    number[]
  >;
}

/** The epoch rule (module doc): sparse classes train half again as many epochs as full, rounded up. */
export function sparseEpochs(fullEpochs: number): number {
  return Math.ceil(1.5 * fullEpochs);
}

/**
 * Seconds per cost unit with the 2-layer stand-ins on the wasm backend, one core: the first cpu profile's
 * records (bert-tiny-mlm, the same shape; 2-core development machine, two cells at once) give full
 * fine-tuning 91 ms per unit, BitFit/LayerNorm 46, masks 25, Fisher of every parameter 45 per example; the
 * head controls measured 0.63x LayerNorm's step time (SST-2, 50 steps each). A unit is about one training
 * step of 32 short sentences (lib/experiments/study.ts `trainingCost`). Used until cells of this machine
 * have been timed.
 */
const CPU_RATES = {
  "finetune/full": 0.091,
  "finetune/sparse": 0.046,
  "finetune/head": 0.029,
  "finetune/mask": 0.025,
  fisher: 0.045,
  change: 1.5,
  mask: 0.5,
};

export const PROFILES: Record<ProfileName, Profile> = {
  smoke: {
    name: "smoke",
    about:
      "minutes: 2 tasks, 64 train/dev examples, 1-2 epochs, max length 64, 1 seed, 2 rates, k in {10, 100}",
    model: "bert-tiny-mlm",
    tasks: ["SST-2", "STS-B"],
    seeds: [0],
    train: {
      ...COMMON,
      maxLen: 64,
      batchSize: 16,
      maxTrain: 64,
      maxDev: 64,
      // Two rates per class: enough to run the search, its choice and the sensitivity plot end to end.
      lr: fullAndSparse([1e-4, 1e-3], [1e-3, 1e-2]),
      epochs: 1,
    },
    fisher: { examples: 32, params: "all", labels: "true", seed: 0, maxLen: 64 },
    topk: [10, 100],
    crossTaskK: 10,
    maskPer: "global",
    changeSeed: 0,
    controls: [...CONTROL_NAMES],
    nominalSecondsPerUnit: CPU_RATES,
  },
  // Sized for the stand-in and for at most ~8 CPU-hours estimated (`grid --estimate`, README), i.e. a few
  // hours with `--jobs 2` on two cores. Rates: the model's README measured SST-2 full fine-tuning at 71.0
  // with lr 1e-4 and 78.1 with 5e-4, so full searches {1e-4, 3e-4, 1e-3} (5e-4 inside, 1e-4 as the
  // previous profile's rate); LayerNorm-only measured 58.4 at 1e-3 and 60.6 at 1e-2 (one seed, about
  // one run's noise apart), so the sparse classes search {1e-3, 3e-3, 1e-2}. The search triples the main
  // grid and the controls double it again, so to stay in budget: two seeds (a spread over seeds remains
  // for every rate), the two largest single-sentence train sets subsampled to 4,000 (CoLA has 8,551,
  // SST-2 67k), 2 epochs of full fine-tuning (3 for sparse classes), and k in {1, 10, 50, 100}: 7:54
  // CPU-hours estimated from the first cpu profile's measured step times (README has the split by grid).
  cpu: {
    name: "cpu",
    about:
      "bert-tiny-v2 on CoLA, SST-2 (4,000 train each), MRPC, STS-B, RTE; 3 rates per method x 2 seeds; " +
      "a few hours on 2 cores with --jobs 2",
    model: "bert-tiny-v2",
    tasks: SMALL_TASKS,
    seeds: [0, 1],
    train: {
      ...COMMON,
      maxLen: 128,
      batchSize: 32,
      maxTrain: { CoLA: 4000, "SST-2": 4000 },
      lr: fullAndSparse([1e-4, 3e-4, 1e-3], [1e-3, 3e-3, 1e-2]),
      epochs: 2,
    },
    fisher: { examples: 512, params: "all", labels: "true", seed: 0, maxLen: 128 },
    topk: [1, 10, 50, 100],
    crossTaskK: 10,
    maskPer: "global",
    changeSeed: 0,
    controls: [...CONTROL_NAMES],
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
      lr: fullAndSparse([2e-5, 3e-5, 5e-5], [1e-4, 4e-4, 7e-4, 1e-3]),
      epochs: 3,
    },
    fisher: { examples: 1024, params: "all", labels: "true", seed: 0, maxLen: 128 },
    topk: [1, 5, 10, 25, 50, 100],
    crossTaskK: 10,
    maskPer: "global",
    changeSeed: 0,
    controls: [...CONTROL_NAMES],
    // A guess for bert-base on one GPU with the tensorflow backend (a step of 32 x 128 tokens is ~17
    // units); measured rates replace it after the first cells.
    nominalSecondsPerUnit: {
      "finetune/full": 0.012,
      "finetune/sparse": 0.008,
      "finetune/head": 0.005,
      "finetune/mask": 0.008,
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

/** Epochs of a training class: the profile's for full fine-tuning, `sparseEpochs` of them for the rest. */
export function epochsFor(train: TrainSettings, cls: TrainClass): number {
  return cls === "full" ? train.epochs : sparseEpochs(train.epochs);
}

/** The rates a class searches; masks (no search of their own) have none. */
export function ratesFor(train: TrainSettings, cls: TrainClass): number[] {
  return cls === "mask" ? [] : train.lr[cls];
}
