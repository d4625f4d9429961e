/**
 * The measured cases of the benchmark: one training step per tuning mode (forward, backward of the
 * trained parameters only, AdamW update from lib/tuning/optimizer.ts), an evaluation forward pass,
 * and per-example Fisher scores of the LayerNorm parameters (the model's `overrides`: each LayerNorm
 * weight/bias tiled to [batch, ...], the summed loss differentiated w.r.t. the tiled copies).
 *
 * A training step runs in-process (`workers: 1`, the trainer's AdamW on the model's variables, optionally
 * accumulating gradients over micro-batches) or on the data-parallel engine (lib/parallel), whose
 * workers compute the gradients of their share of the batch while the main thread sums them, applies
 * AdamW (lib/parallel/adamw.ts, the same update on plain arrays) to its copy of the trained parameters
 * and sends the new values back.
 *
 * ```ts
 * const r = await benchTrainStep({ shape: SHAPES.tiny, mode: "layernorm", workers: 1, repeats: 5 });
 * r.timing.median; // seconds per step
 * ```
 */
import { BertClassifier } from "../bert/model.ts";
import { isLayerNorm, parameterShapes } from "../bert/names.ts";
import { elementCount } from "../util/shape.ts";
import type { TensorMap } from "../bert/safetensors.ts";
import { createGradientEngine } from "../parallel/engine.ts";
import { computeGrads, heapBytes } from "../parallel/replica.ts";
import { FlatAdamW } from "../parallel/adamw.ts";
import { type BackendName, tf } from "../tf.ts";
import { selectTrainable } from "../tuning/modes.ts";
import { AdamW } from "../tuning/optimizer.ts";
import { randomBatch, randomTensors } from "./inputs.ts";
import { formatProfile, type KernelProfile, profileKernels } from "./profile.ts";
import { type BenchMode, type BenchShape, NUM_LABELS, shapeConfig, stepFlops } from "./shapes.ts";
import { measure, measureAsync, type Timing } from "./timing.ts";

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

function trainedNames(mode: BenchMode, names: Iterable<string>): string[] {
  return [...selectTrainable(mode, names).keys()];
}

function countOf(names: string[], shapes: Map<string, number[]>): number {
  return names.reduce((n, name) => n + elementCount(shapes.get(name)!), 0);
}

const LR = 1e-4;

function result(
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

/** One training step of `mode`, in-process or on `workers` data-parallel workers. */
export async function benchTrainStep(
  o: CaseOptions & { mode: BenchMode; workers?: number },
): Promise<CaseResult> {
  const workers = o.workers ?? 1;
  const config = shapeConfig(o.shape);
  const batchSize = o.batch ?? o.shape.batch, seq = o.seq ?? o.shape.seq;
  const seed = o.seed ?? 0;
  const tensors = o.tensors ?? randomTensors(config, NUM_LABELS, seed);
  const shapes = parameterShapes(config, NUM_LABELS);
  const names = trainedNames(o.mode, shapes.keys());
  const { batch, labels } = randomBatch(batchSize, seq, seed);
  const flops = stepFlops(o.shape, o.mode, batchSize, seq).step;
  const losses: number[] = [];
  const timed = { warmup: o.warmup ?? 1, repeats: o.repeats ?? 3 };

  if (workers === 1) {
    const model = new BertClassifier(config, NUM_LABELS, tensors);
    const opt = new AdamW(model.params, selectTrainable(o.mode, model.params.keys()));
    const nameOf = new Map([...model.params].map(([name, v]) => [v.name, name]));
    let t = 0;
    const micro = o.microBatch ?? 0;
    // Accumulation buffers, made once (a fresh 440 MB array per bert-base step costs page faults).
    const into = micro > 0
      ? new Map(opt.names.map((n) => [n, new Float32Array(model.params.get(n)!.size)]))
      : undefined;
    const step = () => {
      if (micro > 0 && micro < batchSize) {
        // Gradient accumulation over micro-batches, then one update.
        const r = computeGrads(model, batch, labels, opt.names, t++, true, micro, into);
        const grads = new Map(
          opt.names.map((name) => [name, tf.tensor(r.grads.get(name)!, model.params.get(name)!.shape)]),
        );
        opt.apply(grads, LR);
        tf.dispose([...grads.values()]);
        losses.push(r.loss);
        return;
      }
      const { value, grads } = tf.variableGrads(
        () => model.loss(model.logits(batch, { training: true, seed: t++ }), labels),
        opt.variables(),
      );
      const named = new Map(Object.entries(grads).map(([k, g]) => [nameOf.get(k)!, g]));
      opt.apply(named, LR);
      losses.push(value.dataSync()[0]);
      tf.dispose([value, ...Object.values(grads)]);
    };
    try {
      const timing = measure(step, timed);
      const memory = memoryNow();
      const profile = o.profile ? await profileKernels(step) : undefined;
      return result(
        o,
        o.mode,
        1,
        countOf(names, shapes),
        timing,
        flops,
        losses.slice(-timed.repeats),
        memory,
        profile,
      );
    } finally {
      opt.dispose();
      model.dispose();
    }
  }

  // Data-parallel: the workers hold the model; the main thread holds only the trained parameters and
  // their AdamW moments, as plain arrays (lib/parallel/adamw.ts: no wasm heap on the main thread).
  const engine = await createGradientEngine({
    config,
    numLabels: NUM_LABELS,
    tensors,
    workers,
    backend: o.backend ?? "wasm",
    microBatch: o.microBatch,
  });
  const params = new Map(names.map((name) => [name, tensors.get(name)!.data.slice()]));
  const opt = new FlatAdamW(params);
  let t = 0;
  let workerHeapBytes: number[] | undefined;
  const step = async () => {
    const r = await engine.grads(batch, labels, names, t++);
    opt.apply(r.grads, LR);
    await engine.setParams(params);
    losses.push(r.loss);
    workerHeapBytes = r.heapBytes;
  };
  try {
    const timing = await measureAsync(step, timed);
    const memory = { ...memoryNow(), workerHeapBytes };
    return result(
      o,
      o.mode,
      workers,
      countOf(names, shapes),
      timing,
      flops,
      losses.slice(-timed.repeats),
      memory,
    );
  } finally {
    await engine.dispose();
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

/** An evaluation forward pass (logits read back), in-process. */
export async function benchEval(o: CaseOptions): Promise<CaseResult> {
  const { model, batch, labels, batchSize, seq } = inProcessCase(o);
  const losses: number[] = [];
  const step = () =>
    tf.tidy(() => {
      const logits = model.logits(batch);
      losses.push(model.loss(logits, labels).dataSync()[0]);
    });
  try {
    const timing = measure(step, { warmup: o.warmup ?? 1, repeats: o.repeats ?? 3 });
    const profile = o.profile ? await profileKernels(step) : undefined;
    const flops = stepFlops(o.shape, "layernorm", batchSize, seq).forward;
    return result(o, "eval", 1, 0, timing, flops, losses.slice(-(o.repeats ?? 3)), memoryNow(), profile);
  } finally {
    model.dispose();
  }
}

/**
 * Per-example Fisher of every LayerNorm parameter: the squared per-example gradients, from one backward
 * pass with each LayerNorm weight/bias tiled to [batch, h] through the model's overrides.
 */
export async function benchFisherLayerNorm(o: CaseOptions): Promise<CaseResult> {
  const { model, batch, labels, batchSize, seq } = inProcessCase(o);
  const names = [...model.params.keys()].filter(isLayerNorm);
  const losses: number[] = [];
  const step = () =>
    tf.tidy(() => {
      const tiled = names.map((name) => {
        const p = model.params.get(name)!; // [h]
        return tf.tile(tf.expandDims(p, 0), [batchSize, 1]); // [batch, h]
      });
      const f = (...xs: tf.Tensor[]) => {
        const overrides = new Map(names.map((name, i) => [name, xs[i]]));
        const loss = model.loss(model.logits(batch, { overrides }), labels);
        losses.push(loss.dataSync()[0]);
        return tf.mul(loss, batchSize) as tf.Scalar; // summed loss: copy b's gradient is example b's
      };
      const perExample = tf.grads(f)(tiled);
      // Fisher per example and parameter element: the squared gradient; read back to finish the work.
      for (const g of perExample) tf.square(g).dataSync();
    });
  try {
    const timing = measure(step, { warmup: o.warmup ?? 1, repeats: o.repeats ?? 3 });
    const profile = o.profile ? await profileKernels(step) : undefined;
    const flops = stepFlops(o.shape, "layernorm", batchSize, seq).step;
    const trainable = names.reduce((n, name) => n + model.params.get(name)!.size, 0);
    return result(
      o,
      "fisher-layernorm",
      1,
      trainable,
      timing,
      flops,
      losses.slice(-(o.repeats ?? 3)),
      memoryNow(),
      profile,
    );
  } finally {
    model.dispose();
  }
}

export { formatProfile };
