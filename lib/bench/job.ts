/**
 * The whole-job benchmark (`deno task bench --job`): the project's own `finetune` (lib/tuning/trainer.ts,
 * what `normtune finetune` runs), per model shape, tuning mode and worker count, on RTE: one epoch of a
 * fixed subset of 640 training examples (`--max-train 640`, subset seed 0), batch 32, max length 128,
 * batches bucketed by length as the trainer always does (lib/tuning/batches.ts), AdamW at 1e-4 (full) or
 * 1e-3 (bitfit, layernorm) with the default warm-up, weight decay 0.01 and clipping at 1, then the
 * epoch-end evaluation on the dev split; each run in a fresh temporary folder, removed afterwards. An
 * untimed one-batch job runs first, so that the first timed job does not alone pay the process's warm-up
 * (each job still starts its own workers, as a `normtune finetune` process does).
 *
 * Beside each mode's runs, PyTorch's same job (tools/torch_job.py, run as lib/bench/torch.ts runs the step
 * reference: Debian's python3-torch, OpenBLAS, 2 threads) on exactly the batches `finetune` trained on, in
 * its order, from the same starting weights: the batches and weights come from the trainer's own data
 * preparation (`prepare`, `trainBatches`, `makeBatch`), written to a temporary file the script reads. The
 * ratio compares the two epoch loops (`finetune`'s own trainSeconds, PyTorch's train_s); the whole call's
 * time is reported beside it.
 *
 * Models: tiny is `bert-tiny-v2` (or the folder `models.tiny` names); mini is a mini-shaped folder of
 * NORMTUNE_MODELS_DIR when one exists, else a random initialisation of the mini shape (BERT's
 * initialisation, lib/bert/init.ts) written as a model folder with tiny's vocabulary: speed does not depend
 * on the weights.
 *
 * ```ts
 * const job = await runJobs({ shapes: ["tiny"], modes: ["layernorm"], workers: [1] }, console.error);
 * job.cases[0].trainSeconds; job.cases[0].torchRatio;
 * ```
 */
import { basename, join } from "node:path";
import { batchLabels, makeBatch } from "../bert/batch.ts";
import { saveCheckpoint } from "../bert/checkpoint.ts";
import { parseConfig, readConfig } from "../bert/config.ts";
import { randomWeights } from "../bert/init.ts";
import { writeSafetensors } from "../bert/safetensors.ts";
import { getTask } from "../glue/mod.ts";
import { currentGemm, type GemmName, restoreGemm } from "../backend/gemm_choice.ts";
import type { BackendName } from "../tf.ts";
import { paddingShare, trainBatches } from "../tuning/batches.ts";
import { decays } from "../tuning/optimizer.ts";
import { identityOf } from "../tuning/run_folder.ts";
import { warmupSteps } from "../tuning/schedule.ts";
import { prepare } from "../tuning/train_data.ts";
import { finetune, type FinetuneOptions } from "../tuning/trainer.ts";
import { modelDir, modelsDir } from "../util/paths.ts";
import type { JobCase, JobReport, JobSettings } from "./report.ts";
import { type BenchMode, type BenchShape, getShape, type ShapeName } from "./shapes.ts";
import { cpuSeconds } from "./timing.ts";
import { runTorchJob, type TorchJobResult } from "./torch.ts";

/** The job of the goal: RTE, 640 examples, 1 epoch, batch 32, 128 tokens. */
export const JOB: Readonly<JobSettings> = {
  task: "RTE",
  examples: 640,
  devExamples: null,
  epochs: 1,
  batch: 32,
  maxLen: 128,
  seed: 42,
  lr: { full: 1e-4, sparse: 1e-3 },
  weightDecay: 0.01,
  clip: 1,
};

/** `--quick --job`: a smoke run, 64 examples (2 batches of 32), 32 dev examples. */
export const QUICK_JOB = { examples: 64, devExamples: 32 } as const;

/** The shapes a job runs on; `--job` without `--shapes` runs `DEFAULT_JOB_SHAPES`. */
export const JOB_SHAPES: readonly ShapeName[] = ["tiny", "mini", "base"];
export const DEFAULT_JOB_SHAPES: readonly ShapeName[] = ["tiny", "mini"];

/**
 * bert-base's job, where not given otherwise: the 8 x 128 batches, and 64 training and 64 dev
 * examples (8 steps), since its 640-example epoch takes about 4 minutes a run even on OpenBLAS (each mode
 * runs 2 worker counts and PyTorch). Full fine-tuning runs in micro-batches of 2 rows on wasm heaps, as
 * the step bench does (the whole batch's activations and AdamW state overflow the 4 GiB heap).
 */
export const BASE_JOB: Readonly<Partial<JobSettings>> = { batch: 8, examples: 64, devExamples: 64 };

/** Rows per pass of a job: 2 for bert-base full fine-tuning off the GPU (`BASE_JOB`), else the batch. */
export function jobMicroBatch(shape: ShapeName, mode: BenchMode, backend?: BackendName): number | undefined {
  return shape === "base" && mode === "full" && backend !== "webgpu" ? 2 : undefined;
}

/** A shape's job: `JOB`, base's own sizes for bert-base, then what was given. */
export function jobSettings(shape: ShapeName, given: Partial<JobSettings> = {}): JobSettings {
  return { ...JOB, ...(shape === "base" ? BASE_JOB : {}), ...given };
}

/** The default model folder of the tiny shape. */
export const TINY_MODEL = "bert-tiny-v2";

export interface JobOptions {
  shapes: ShapeName[];
  modes: BenchMode[];
  /** Worker counts (default 1 and 2). */
  workers?: number[];
  /** Settings that differ from `JOB` (and for base from `BASE_JOB`). */
  settings?: Partial<JobSettings>;
  /** Model folder (path or name under NORMTUNE_MODELS_DIR) per shape. */
  models?: Partial<Record<ShapeName, string>>;
  /** Run PyTorch's job after each mode's runs (default true). */
  torch?: boolean;
  /**
   * First an untimed one-batch job (the first shape and mode, one worker), so that the first timed job
   * does not alone pay this process's first compilation of the trainer's code (default true).
   */
  warmup?: boolean;
  backend?: BackendName;
  /**
   * Runs of every job and of PyTorch's (default 1), interleaved: each figure is the median run's, the
   * times of all runs beside it (`trainRuns`). Two-core cloud machines vary by tens of percent between
   * runs of the same job, on both sides.
   */
  repeats?: number;
  /**
   * Products to run each job on, in turn (default ["wasm"]); OpenBLAS on the threads `finetune` gives
   * it (1 with two workers, else up to 2).
   */
  gemms?: GemmName[];
  glueDir?: string;
}

/** What `finetune` is run with beside the job's settings. */
export interface JobRunOptions {
  backend?: BackendName;
  gemm?: GemmName;
  /** Rows per pass, gradients accumulated (`jobMicroBatch`). */
  microBatch?: number;
  glueDir?: string;
}

export function jobLr(s: JobSettings, mode: BenchMode): number {
  return mode === "full" ? s.lr.full : s.lr.sparse;
}

/** The arguments `finetune` gets for one job: what `normtune finetune` would be given. */
export function jobOptions(
  s: JobSettings,
  model: string,
  mode: BenchMode,
  workers: number,
  out: string,
  o: JobRunOptions = {},
): FinetuneOptions {
  return {
    model,
    task: s.task,
    mode,
    out,
    epochs: s.epochs,
    batchSize: s.batch,
    maxLen: s.maxLen,
    maxTrain: s.examples,
    maxDev: s.devExamples,
    seed: s.seed,
    lr: jobLr(s, mode),
    weightDecay: s.weightDecay,
    clip: s.clip,
    workers,
    ...(o.microBatch ? { microBatch: o.microBatch } : {}),
    backend: o.backend ?? "wasm",
    gemm: o.gemm ?? "wasm",
    glueDir: o.glueDir,
    fresh: true,
    quiet: true,
  };
}

function sameShape(
  c: { num_hidden_layers: number; hidden_size: number; num_attention_heads: number },
  s: BenchShape,
) {
  return c.num_hidden_layers === s.layers && c.hidden_size === s.hidden && c.num_attention_heads === s.heads;
}

/** A model folder of NORMTUNE_MODELS_DIR with the shape (first by name), or undefined. */
async function findModelOfShape(shape: BenchShape): Promise<string | undefined> {
  const names: string[] = [];
  try {
    for await (const e of Deno.readDir(modelsDir())) if (e.isDirectory) names.push(e.name);
  } catch {
    return undefined;
  }
  for (const name of names.sort()) {
    try {
      const c = await readConfig(join(modelsDir(), name, "config.json"));
      if (sameShape(c, shape) && c.intermediate_size === shape.ffn) return join(modelsDir(), name);
    } catch {
      // not a model folder
    }
  }
  return undefined;
}

/**
 * The model folder for a shape and what it is: the folder given, else tiny's default or a folder of the
 * shape, else a random initialisation of the shape written under `tmp` (tiny's config and vocabulary,
 * the shape's sizes).
 */
export async function jobModel(
  shape: ShapeName,
  tmp: string,
  given: Partial<Record<ShapeName, string>> = {},
): Promise<{ path: string; about: string }> {
  const s = getShape(shape);
  const named = given[shape] ?? (shape === "tiny" ? TINY_MODEL : undefined);
  const path = named ? modelDir(named) : await findModelOfShape(s);
  if (path) {
    const c = await readConfig(join(path, "config.json"));
    const fits = sameShape(c, s)
      ? ""
      : ` (its shape is ${c.num_hidden_layers}x${c.hidden_size}, not ${shape}'s)`;
    return { path, about: `${basename(path)}${fits}` };
  }
  const from = modelDir(given.tiny ?? TINY_MODEL);
  const raw = JSON.parse(await Deno.readTextFile(join(from, "config.json"))) as Record<string, unknown>;
  const config = parseConfig({
    ...raw,
    num_hidden_layers: s.layers,
    hidden_size: s.hidden,
    num_attention_heads: s.heads,
    intermediate_size: s.ffn,
  }, `${shape} shape`);
  const numLabels = getTask(JOB.task).numLabels;
  const dir = join(tmp, `random-${shape}`);
  await Deno.mkdir(dir, { recursive: true });
  await saveCheckpoint(dir, { config, numLabels, tensors: randomWeights(config, numLabels, 0) }, {
    vocabFrom: from,
  });
  return {
    path: dir,
    about: `random ${shape} (${s.layers}x${s.hidden}; no ${shape}-shaped folder in ${modelsDir()}), ` +
      `${basename(from)}'s vocabulary`,
  };
}

/** The epoch's batches as `finetune` makes them, and what they are. */
export interface JobPlan {
  examples: number;
  steps: number;
  paddingShare: number;
}

/**
 * The epoch's batches of one job, from the trainer's own preparation (`prepare`, `trainBatches`,
 * `makeBatch`), so they are the ones `finetune` trains on with the same options. With `files`, also writes
 * PyTorch's input (tools/torch_job.py reads it): the starting weights (checkpoint and fresh head, as
 * `finetune` starts) to `files.weights`, and to `files.input` the config, trained and decayed names,
 * schedule and every batch of the epoch in the trainer's order.
 */
export async function jobPlan(
  options: FinetuneOptions,
  files?: { input: string; weights: string },
): Promise<JobPlan> {
  const identity = await identityOf({ ...options, workers: undefined }, options.backend ?? "wasm");
  const run = await prepare(identity, { glueDir: options.glueDir, quiet: true, note: () => {} });
  const order = trainBatches(run.train.lengths, {
    batchSize: identity.batchSize,
    seed: identity.seed,
    epoch: 0,
  });
  const plan = {
    examples: run.train.rows.length,
    steps: order.length,
    paddingShare: paddingShare(run.train.lengths, order),
  };
  if (!files) return plan;
  for (const [name, sel] of run.selection) {
    if (sel !== "all") throw new Error(`jobPlan: "${name}" is trained through a mask, not supported`);
  }
  const batches = order.map((indices) => {
    const b = makeBatch(run.train, indices);
    return {
      rows: b.batchSize,
      seq: b.seqLen,
      input_ids: Array.from(b.inputIds),
      token_type_ids: Array.from(b.tokenTypeIds),
      attention_mask: Array.from(b.attentionMask),
      labels: Array.from(batchLabels(run.train, indices, run.numLabels)),
    };
  });
  await writeSafetensors(files.weights, run.ck.tensors);
  const trained = [...run.selection.keys()];
  await Deno.writeTextFile(
    files.input,
    JSON.stringify({
      config: run.ck.config,
      num_labels: run.numLabels,
      weights: files.weights,
      seed: identity.seed,
      trained,
      decayed: trained.filter(decays),
      lr: identity.lr,
      weight_decay: identity.weightDecay,
      clip: identity.clip,
      total_steps: run.totalSteps,
      warmup_steps: warmupSteps(run.totalSteps, identity.warmup),
      batches,
    }),
  );
  return plan;
}

const runsText = (runs?: number[]) => runs ? ` (runs ${runs.map((t) => t.toFixed(2)).join(", ")})` : "";

/** The run with the median value (of an even count, the lower middle: always a measured run). */
export function medianRun<T>(runs: T[], value: (r: T) => number): T | undefined {
  const sorted = [...runs].sort((a, b) => value(a) - value(b));
  return sorted[Math.floor((sorted.length - 1) / 2)];
}

/** One job: `finetune` in a fresh folder under `tmp` (removed after), timed whole and by its own clock. */
export async function runJob(
  s: JobSettings,
  model: { path: string; about: string },
  shape: ShapeName,
  mode: BenchMode,
  workers: number,
  tmp: string,
  o: JobRunOptions = {},
): Promise<JobCase> {
  const out = await Deno.makeTempDir({ dir: tmp, prefix: `${shape}-${mode}-${workers}-` });
  try {
    const options = jobOptions(s, model.path, mode, workers, out, o);
    const c0 = cpuSeconds(), t0 = performance.now();
    const r = await finetune(options);
    const wholeSeconds = (performance.now() - t0) / 1000;
    const cpu = cpuSeconds() - c0;
    const epoch = r.metrics.epochs[0];
    const sizes = { examples: r.config.trainExamples, steps: r.metrics.steps };
    return {
      shape,
      model: model.about,
      mode,
      workers,
      gemm: gemmLabelOf(r.config.identity.backend),
      ...sizes,
      batch: s.batch,
      maxLen: s.maxLen,
      paddingShare: NaN, // the plan's, filled by runJobs
      trainable: r.config.trainable.trainable,
      trainSeconds: r.metrics.trainSeconds,
      evalSeconds: r.metrics.evalSeconds,
      devExamples: r.config.devExamples,
      wholeSeconds,
      cpuSeconds: cpu,
      examplesPerSecond: sizes.examples / r.metrics.trainSeconds,
      trainLoss: epoch.trainLoss,
      rssBytes: Deno.memoryUsage().rss,
    };
  } finally {
    await Deno.remove(out, { recursive: true });
  }
}

/**
 * The table's name of the product a run's identity names: "openblas-t1" of "wasm+openblas-t1", else the
 * backend's own ("wasm", "cpu", "webgpu").
 */
export function gemmLabelOf(identity: string): string {
  return identity.split("+")[1] ?? identity;
}

function errorJob(
  s: JobSettings,
  about: string,
  shape: string,
  mode: string,
  workers: number,
  err: unknown,
  gemm = "wasm",
) {
  const message = err instanceof Error ? err.message : String(err);
  return {
    shape,
    model: about,
    mode,
    workers,
    gemm,
    examples: s.examples,
    steps: 0,
    batch: s.batch,
    maxLen: s.maxLen,
    paddingShare: NaN,
    trainable: 0,
    trainSeconds: NaN,
    evalSeconds: NaN,
    devExamples: 0,
    wholeSeconds: NaN,
    cpuSeconds: NaN,
    examplesPerSecond: 0,
    trainLoss: NaN,
    rssBytes: Deno.memoryUsage().rss,
    error: message.split("\n")[0],
  } satisfies JobCase;
}

/**
 * Every job: per shape and mode, `finetune` with each worker count, then (with `torch`) PyTorch's same
 * job right after, so both see the same load on the machine. `log` gets a line per job.
 */
export async function runJobs(o: JobOptions, log: (line: string) => void): Promise<JobReport> {
  const warmup = (o.warmup ?? true) && o.shapes.length > 0 && o.modes.length > 0;
  const repeats = o.repeats ?? 1;
  // The report's settings are tiny's and mini's; base's own sizes are in its model line and its cases.
  const report: JobReport = { settings: jobSettings("tiny", o.settings), models: {}, warmup, cases: [] };
  const tmp = await Deno.makeTempDir({ prefix: "normtune-bench-job-" });
  const runOpts = { backend: o.backend, glueDir: o.glueDir };
  const optsFor = (shape: ShapeName, mode: BenchMode) => ({
    ...runOpts,
    microBatch: jobMicroBatch(shape, mode, o.backend),
  });
  // The jobs of each mode, in report order: every worker count on every product.
  const jobs = (o.workers ?? [1, 2]).flatMap((workers) =>
    (o.gemms ?? ["wasm"] as GemmName[]).map((gemm) => ({ workers, gemm, key: `${workers}/${gemm}` }))
  );
  // Each job chooses its product (finetune does): the process gets back the one it had.
  const gemmBefore = currentGemm();
  try {
    for (const shape of o.shapes) {
      if (!JOB_SHAPES.includes(shape)) {
        throw new Error(`--job runs on ${JOB_SHAPES.join(", ")}, not ${shape}`);
      }
      const settings = jobSettings(shape, o.settings);
      const model = await jobModel(shape, tmp, o.models);
      report.models[shape] = model.about +
        (shape === "base"
          ? `; batch ${settings.batch} x ${settings.maxLen}, ${settings.examples} examples`
          : "");
      log(`bench job ${shape}: ${model.about} (${model.path})`);
      if (warmup && shape === o.shapes[0]) {
        const one = { ...settings, examples: settings.batch, devExamples: settings.batch };
        await runJob(one, model, shape, o.modes[0], 1, tmp, optsFor(shape, o.modes[0])).catch((err) => {
          log(`bench job warm-up: ${err instanceof Error ? err.message : err}`);
        });
      }
      for (const mode of o.modes) {
        const modeOpts = optsFor(shape, mode);
        const files = {
          input: join(tmp, "torch-job.json"),
          weights: join(tmp, "torch-job-weights.safetensors"),
        };
        const torch = o.torch ?? true;
        const cases: JobCase[] = [];
        let plan: JobPlan | undefined;
        try {
          plan = await jobPlan(
            jobOptions(settings, model.path, mode, 1, tmp, modeOpts),
            torch ? files : undefined,
          );
          // Each repeat runs every job, then PyTorch's, so that both sides see the same spells of load.
          const runs = new Map<string, JobCase[]>();
          const failed = new Map<string, JobCase>();
          const torchRuns: { result: TorchJobResult; wallSeconds: number }[] = [];
          let torchReason: string | undefined;
          for (let rep = 0; rep < repeats; rep++) {
            for (const { workers, gemm, key } of jobs) {
              if (failed.has(key)) continue;
              try {
                const c = await runJob(settings, model, shape, mode, workers, tmp, { ...modeOpts, gemm });
                runs.set(key, [...runs.get(key) ?? [], { ...c, paddingShare: plan.paddingShare }]);
              } catch (err) {
                failed.set(key, errorJob(settings, model.about, shape, mode, workers, err, gemm));
              }
            }
            if (torch) {
              const t = await runTorchJob(files.input);
              if (t.available) torchRuns.push(t);
              else torchReason = t.reason;
            }
          }
          const t = medianRun(torchRuns, (r) => r.result.train_s);
          for (const { key } of jobs) {
            const mine = runs.get(key) ?? [];
            const c = failed.get(key) ?? medianRun(mine, (r) => r.trainSeconds)!;
            if (!c.error && repeats > 1) c.trainRuns = mine.map((r) => r.trainSeconds);
            if (!c.error && t) {
              const r = t.result;
              c.torch = {
                trainSeconds: r.train_s,
                setupSeconds: r.setup_s,
                wallSeconds: t.wallSeconds,
                runtime: r.runtime,
                threads: r.threads,
                trainable: r.trainable,
                steps: r.steps,
                trainLoss: r.train_loss,
                ...(repeats > 1 ? { trainRuns: torchRuns.map((x) => x.result.train_s) } : {}),
              };
              c.torchRatio = c.trainSeconds / r.train_s;
            } else if (!c.error && torch && torchReason) c.torchNote = torchReason;
            cases.push(c);
          }
          if (torch && !t && torchReason) log(`bench job ${shape} ${mode}: ${torchReason}`);
        } catch (err) {
          cases.push(errorJob(settings, model.about, shape, mode, 0, err));
        } finally {
          for (const f of Object.values(files)) await Deno.remove(f).catch(() => {});
        }
        for (const c of cases) {
          report.cases.push(c);
          log(
            c.error
              ? `bench job ${shape} ${mode} ${c.gemm} workers ${c.workers}: error: ${c.error}`
              : `bench job ${shape} ${mode} ${c.gemm} workers ${c.workers}: train ${
                c.trainSeconds.toFixed(2)
              } s${runsText(c.trainRuns)}, whole ${c.wholeSeconds.toFixed(2)} s` +
                (c.torch
                  ? `; PyTorch ${c.torch.trainSeconds.toFixed(2)} s${runsText(c.torch.trainRuns)}, ${
                    c.torchRatio!.toFixed(2)
                  }x`
                  : ""),
          );
        }
      }
    }
  } finally {
    restoreGemm(gemmBefore);
    await Deno.remove(tmp, { recursive: true });
  }
  return report;
}
