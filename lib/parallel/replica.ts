/**
 * What one model replica does for data-parallel training: the mean loss of a batch and the gradients
 * of the named (trained) parameters only, written into Float32Arrays (the engine's shared buffers), in
 * micro-batches when asked; and taking new parameter values. The workers (worker.ts) and the in-process
 * trainer's gradient accumulation run the same `computeGrads`, so both compute exactly the same thing.
 */
import { type Batch, sliceRows } from "../bert/batch.ts";
import type { BertClassifier } from "../bert/model.ts";
import { tf } from "../tf.ts";

export interface GradResult {
  /** Mean loss over the batch's rows. */
  loss: number;
  /** d(mean loss)/d(parameter), for each requested name. */
  grads: Map<string, Float32Array>;
  /** Size of each replica's wasm heap after the pass (its high-water mark), when on wasm. */
  heapBytes?: number[];
}

/** Size of this thread's wasm heap, or undefined on another backend. */
export function heapBytes(): number | undefined {
  // deno-lint-ignore no-explicit-any
  const heap = (tf.backend() as any)?.wasm?.HEAPU8;
  return heap ? heap.length : undefined;
}

/** Seed offset of micro-batch i (its dropout masks differ from the other micro-batches'). */
export const MICRO_SEED_STRIDE = 7919;

/**
 * The mean loss of `batch` and its gradients for `names`, `microBatch` rows at a time when given
 * (gradient accumulation: activation memory scales with `microBatch` instead of the batch size;
 * micro-batch i uses dropout seed seed + 7919 i; the result is the row-weighted mean, as for the whole
 * batch). Gradients are written into `into` when given (arrays of the parameters' sizes, e.g. shared
 * buffers), else into new arrays.
 */
export async function computeGrads(
  model: BertClassifier,
  batch: Batch,
  labels: Int32Array | Float32Array,
  names: readonly string[],
  seed: number,
  training = true,
  microBatch = 0,
  into?: Map<string, Float32Array>,
): Promise<GradResult> {
  const vars = names.map((name) => {
    const v = model.params.get(name);
    if (!v) throw new Error(`gradient engine: "${name}" is not a parameter of the model`);
    return v;
  });
  const out = new Map<string, Float32Array>();
  names.forEach((name, i) => {
    const buf = into?.get(name) ?? new Float32Array(vars[i].size);
    if (buf.length !== vars[i].size) {
      throw new Error(`gradient engine: buffer for "${name}" has ${buf.length} values, not ${vars[i].size}`);
    }
    out.set(name, buf);
  });
  const rows = batch.batchSize;
  const step = microBatch > 0 && microBatch < rows ? microBatch : rows;
  let loss = 0;
  for (let start = 0, i = 0; start < rows; start += step, i++) {
    const count = Math.min(step, rows - start);
    const part = step === rows ? batch : sliceRows(batch, start, count);
    const partLabels = step === rows ? labels : labels.subarray(start, start + count);
    const w = count / rows;
    const microSeed = seed + MICRO_SEED_STRIDE * i;
    loss += w * await gradsInto(model, part, partLabels, names, vars, microSeed, training, out, w, i > 0);
  }
  const h = heapBytes();
  return h === undefined ? { loss, grads: out } : { loss, grads: out, heapBytes: [h] };
}

/**
 * A tensor's values: on wasm a view of its heap (no copy; valid until the next allocation, so it is
 * used before any `await`), elsewhere read with `await data()` (webgpu cannot read synchronously).
 */
function valuesOf(t: tf.Tensor): Float32Array | Promise<Float32Array> {
  // deno-lint-ignore no-explicit-any
  const backend = tf.backend() as any;
  if (typeof backend.typedArrayFromHeap === "function") return backend.typedArrayFromHeap(t);
  return t.data() as Promise<Float32Array>;
}

/** One forward/backward pass: out[name] = w * grad (or += when `add`); returns the pass's mean loss. */
async function gradsInto(
  model: BertClassifier,
  batch: Batch,
  labels: Int32Array | Float32Array,
  names: readonly string[],
  vars: tf.Variable[],
  seed: number,
  training: boolean,
  out: Map<string, Float32Array>,
  w: number,
  add: boolean,
): Promise<number> {
  const { value, grads } = tf.variableGrads(
    () => model.loss(model.logits(batch, { training, seed }), labels),
    vars,
  );
  try {
    const loss = (await value.data())[0];
    for (let i = 0; i < names.length; i++) {
      const found = valuesOf(grads[vars[i].name]);
      // A wasm heap view is used at once: an await in between could let an allocation move the heap.
      const g = found instanceof Promise ? await found : found, o = out.get(names[i])!;
      if (add) { for (let j = 0; j < g.length; j++) o[j] += w * g[j]; }
      else if (w === 1) o.set(g);
      else for (let j = 0; j < g.length; j++) o[j] = w * g[j];
    }
    return loss;
  } finally {
    tf.dispose([value, ...Object.values(grads)]);
  }
}

/** Overwrites parameters with new values (same shapes). */
export function assignParams(model: BertClassifier, values: Iterable<[string, Float32Array]>): void {
  for (const [name, data] of values) {
    const v = model.params.get(name);
    if (!v) throw new Error(`gradient engine: "${name}" is not a parameter of the model`);
    if (data.length !== v.size) {
      throw new Error(`gradient engine: "${name}" has ${v.size} values, got ${data.length}`);
    }
    // The cpu backend keeps the array it is given: hand it a private copy (data may be shared).
    const own = tf.getBackend() === "wasm" ? data : data.slice();
    tf.tidy(() => v.assign(tf.tensor(own, v.shape, "float32")));
  }
}
