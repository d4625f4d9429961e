/**
 * The measured cases of the benchmark, each running the code users run:
 * - a training step per tuning mode: the trainer's update (lib/tuning/step.ts `StepRunner`: gradients of
 *   the trained parameters only, the mode's mask, global-norm clipping at 1, AdamW with weight decay
 *   0.01, the non-finite check), in-process (`workers: 1`, optionally over micro-batches) or with the
 *   gradients computed by the data-parallel engine (lib/parallel), exactly as `finetune --workers N`;
 *   on webgpu the same in-process step (its reads are asynchronous, so a timed step ends once the GPU
 *   has run its update);
 * - an evaluation forward pass;
 * - per-example Fisher scores of the LayerNorm parameters: lib/analysis/fisher_information.ts
 *   `computeFisher` with the defaults `normtune fisher` and the study use (batched method, 8 examples
 *   per pass).
 *
 * ```ts
 * const r = await benchTrainStep({ shape: SHAPES.tiny, mode: "layernorm", workers: 1, repeats: 5 });
 * r.timing.median; // seconds per step
 * ```
 */
import type { Batch } from "../bert/batch.ts";
import { BertClassifier } from "../bert/model.ts";
import { parameterShapes } from "../bert/names.ts";
import type { TensorMap } from "../bert/safetensors.ts";
import { computeFisher } from "../analysis/fisher_information.ts";
import { createGradientEngine, type GradientEngine } from "../parallel/engine.ts";
import { heapBytes } from "../parallel/replica.ts";
import { gemmLabel } from "../backend/gemm_choice.ts";
import { type BackendName, tf } from "../tf.ts";
import { countTrainable, selectTrainable } from "../tuning/modes.ts";
import { StepRunner } from "../tuning/step.ts";
import { randomBatch, randomTensors } from "./inputs.ts";
import { formatProfile, type KernelProfile, profileKernels } from "./profile.ts";
import { type BenchMode, type BenchShape, NUM_LABELS, shapeConfig, stepFlops } from "./shapes.ts";
import { measureAsync, type Timing } from "./timing.ts";

export type CaseKind = BenchMode | "eval" | "fisher-layernorm";

export interface CaseOptions {
  shape: BenchShape;
  /** Rows per batch (default the shape's). */
  batch?: number;
  seq?: number;
  warmup?: number;
  repeats?: number;
  seed?: number;
  /** Parameters (default: random ones of the shape, from `seed`). */
  tensors?: TensorMap;
  /** Also profile one step per kernel (in-process cases only). */
  profile?: boolean;
  /** The data-parallel workers' backend (default wasm). */
  backend?: BackendName;
  /**
   * Rows per forward/backward pass, gradients accumulated over the batch (0 = the whole batch at once):
   * bounds activation memory (bert-base full fine-tuning on the 4 GiB wasm heap).
   */
  microBatch?: number;
}

export interface MemoryFigures {
  /** The data-parallel replicas' wasm heaps (each its own), when on the engine. */
  workerHeapBytes?: number[];
  /** Bytes held by tfjs tensors after the measured steps. */
  tfBytes: number;
  /** Most bytes held at once during the profiled step (when profiled). */
  tfPeakBytes?: number;
  /** Size of the wasm heap (its high-water mark: it never shrinks), when on wasm. */
  wasmHeapBytes?: number;
  /** Resident memory of the whole process (workers included). */
  rssBytes: number;
}

export interface CaseResult {
  kind: CaseKind;
  shape: string;
  workers: number;
  /**
   * The product the case ran on (lib/backend/gemm_choice.ts `gemmLabel`): "wasm", "openblas-t1"; off the
   * wasm backend, the backend's name.
   */
  gemm: string;
  batch: number;
  seq: number;
  /** Trained parameter count (0 for eval). */
  trainable: number;
  /** Rows per forward/backward pass when gradients were accumulated over micro-batches. */
  microBatch?: number;
  timing: Timing;
  examplesPerSecond: number;
  /** Matrix-product FLOPs of one step (lib/bench/shapes.ts). */
  flops: number;
  /** flops / median step time / 1e9. */
  gflops: number;
  /** Losses of the timed steps (a smoke check: finite, and they move when training). */
  losses: number[];
  memory: MemoryFigures;
  profile?: KernelProfile;
}

/** Bytes of the wasm heap, or undefined on another backend. */
export function wasmHeapBytes(): number | undefined {
  return heapBytes();
}

function memoryNow(): MemoryFigures {
  return { tfBytes: tf.memory().numBytes, wasmHeapBytes: wasmHeapBytes(), rssBytes: Deno.memoryUsage().rss };
}

const LR = 1e-4;

/** A case's figures from its timing: the one place a `CaseResult` is put together. */
export function caseResult(
  o: CaseOptions,
  kind: CaseKind,
  workers: number,
  trainable: number,
  timing: Timing,
  flops: number,
  losses: number[],
  memory: MemoryFigures,
  profile?: KernelProfile,
): CaseResult {
  const batch = o.batch ?? o.shape.batch, seq = o.seq ?? o.shape.seq;
  return {
    kind,
    shape: o.shape.name,
    workers,
    // Off wasm the backend runs its own products: its name says so.
    gemm: tf.getBackend() === "wasm" ? gemmLabel() : tf.getBackend(),
    batch,
    seq,
    trainable,
    timing,
    examplesPerSecond: batch / timing.median,
    flops,
    gflops: flops / timing.median / 1e9,
    losses,
    memory: profile ? { ...memory, tfPeakBytes: profile.peakBytes } : memory,
    profile,
    ...(o.microBatch ? { microBatch: o.microBatch } : {}),
  };
}

/** One training step of `mode`: the trainer's update, in-process or on `workers` data-parallel workers. */
export async function benchTrainStep(
  o: CaseOptions & { mode: BenchMode; workers?: number },
): Promise<CaseResult> {
  const workers = o.workers ?? 1;
  const config = shapeConfig(o.shape);
  const batchSize = o.batch ?? o.shape.batch, seq = o.seq ?? o.shape.seq;
  const seed = o.seed ?? 0;
  const tensors = o.tensors ?? randomTensors(config, NUM_LABELS, seed);
  const shapes = parameterShapes(config, NUM_LABELS);
  const selection = selectTrainable(o.mode, shapes.keys());
  const { batch, labels } = randomBatch(batchSize, seq, seed);
  const flops = stepFlops(o.shape, o.mode, batchSize, seq).step;
  const losses: number[] = [];
  const timed = { warmup: o.warmup ?? 1, repeats: o.repeats ?? 3 };
  // What `finetune` builds: the model on this thread, the runner on its trained selection, and with
  // several workers the engine holding replicas (lib/tuning/trainer.ts).
  const model = new BertClassifier(config, NUM_LABELS, tensors);
  const runner = new StepRunner(model, selection, { microBatch: o.microBatch });
  let engine: GradientEngine | undefined;
  let workerHeapBytes: number[] | undefined;
  let t = 0;
  try {
    if (workers > 1) {
      engine = await createGradientEngine({
        config,
        numLabels: NUM_LABELS,
        tensors,
        workers,
        backend: o.backend ?? "wasm",
        microBatch: o.microBatch,
      });
    }
    const step = async () => {
      const r = engine
        ? await runner.stepOn(engine, batch, labels, LR, t++)
        : await runner.step(batch, labels, LR, t++);
      losses.push(r.loss);
      workerHeapBytes = r.heapBytes;
    };
    const timing = await measureAsync(step, timed);
    const timedLosses = losses.slice(-timed.repeats); // before the profiled steps add theirs
    const memory = { ...memoryNow(), ...(workerHeapBytes ? { workerHeapBytes } : {}) };
    const profile = o.profile && !engine ? await profileKernels(step) : undefined;
    const trainable = countTrainable(selection, shapes).trainable;
    return caseResult(
      o,
      o.mode,
      workers,
      trainable,
      timing,
      flops,
      timedLosses,
      memory,
      profile,
    );
  } finally {
    await engine?.dispose();
    runner.dispose();
    model.dispose();
  }
}

/** The model (the case's weights, or random ones) and a random batch of an in-process case. */
function inProcessCase(o: CaseOptions) {
  const config = shapeConfig(o.shape);
  const batchSize = o.batch ?? o.shape.batch, seq = o.seq ?? o.shape.seq;
  const model = new BertClassifier(
    config,
    NUM_LABELS,
    o.tensors ?? randomTensors(config, NUM_LABELS, o.seed ?? 0),
  );
  return { model, batchSize, seq, ...randomBatch(batchSize, seq, o.seed ?? 0) };
}

/** The loss of `model` on a batch, read asynchronously (webgpu cannot read synchronously). */
async function lossOf(model: BertClassifier, batch: Batch, labels: Int32Array): Promise<number> {
  const loss = tf.tidy(() => model.loss(model.logits(batch), labels));
  try {
    return (await loss.data())[0];
  } finally {
    loss.dispose();
  }
}

/** An evaluation forward pass (its loss read back, which waits for the pass), in-process. */
export async function benchEval(o: CaseOptions): Promise<CaseResult> {
  const { model, batch, labels, batchSize, seq } = inProcessCase(o);
  const losses: number[] = [];
  const step = async () => {
    losses.push(await lossOf(model, batch, labels));
  };
  try {
    const timing = await measureAsync(step, { warmup: o.warmup ?? 1, repeats: o.repeats ?? 3 });
    const timedLosses = losses.slice(-(o.repeats ?? 3));
    const profile = o.profile ? await profileKernels(step) : undefined;
    const flops = stepFlops(o.shape, "layernorm", batchSize, seq).forward;
    return caseResult(o, "eval", 1, 0, timing, flops, timedLosses, memoryNow(), profile);
  } finally {
    model.dispose();
  }
}

/**
 * Per-example Fisher of every LayerNorm parameter, as `normtune fisher --params layernorm` computes it
 * (`computeFisher`, batched: each LayerNorm weight/bias tiled per example, 8 examples per pass). Its
 * "losses" are the batch's loss at these weights, once (a smoke check that the model ran finite).
 */
export async function benchFisherLayerNorm(o: CaseOptions): Promise<CaseResult> {
  const { model, batch, labels, batchSize, seq } = inProcessCase(o);
  const examples = [{ batch, labels: Array.from(labels) }];
  let trainable = 0;
  const step = async () => {
    const fisher = await computeFisher(model, examples, {
      params: "layernorm",
      examples: batchSize,
      seed: o.seed ?? 0,
    });
    trainable = [...fisher.values()].reduce((n, t) => n + t.data.length, 0);
  };
  try {
    const timing = await measureAsync(step, { warmup: o.warmup ?? 1, repeats: o.repeats ?? 3 });
    const profile = o.profile ? await profileKernels(step) : undefined;
    const flops = stepFlops(o.shape, "layernorm", batchSize, seq).step;
    const loss = await lossOf(model, batch, labels);
    return caseResult(o, "fisher-layernorm", 1, trainable, timing, flops, [loss], memoryNow(), profile);
  } finally {
    model.dispose();
  }
}

export { formatProfile };
