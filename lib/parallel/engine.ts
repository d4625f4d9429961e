/**
 * A data-parallel gradient engine: the gradients of a batch's mean loss with respect to the trained
 * parameters, computed by N Deno Workers that each hold a model replica (own TensorFlow.js, own wasm
 * heap, own core) and take a contiguous share of the rows. The main thread sums the shares (weighted by
 * their row counts, in worker order, so a fixed worker count gives the same bits every time), applies
 * its optimizer, and sends the updated trained parameters back with `setParams`.
 *
 * Why workers: the threaded tfjs-wasm build does not start under Deno (its pthread pool hands a blob:
 * URL to worker_threads), so one process uses one core. In-process training needs no engine: it calls
 * `computeGrads` (replica.ts, which the workers run too) on its own model.
 *
 * Data movement: gradients and parameters go through SharedArrayBuffers allocated once per parameter
 * (one gradient buffer per worker, one parameter buffer for all), so a step allocates nothing and
 * messages carry only the batch. The arrays `grads` returns are the engine's own and are overwritten by
 * the next call: consume (or copy) them first.
 *
 * Dropout: shard i of a call with seed s uses seed s + 1000003 i, so results depend on the worker count
 * (as they would on the batch split of any data-parallel trainer) but are deterministic for a given one.
 *
 * Product: the workers run the calling thread's product choice (lib/backend/gemm_choice.ts; `gemm`), so
 * `--gemm openblas` reaches them; they share the process's one OpenBLAS and its thread count.
 *
 * ```ts
 * const engine = await createGradientEngine({ config, numLabels: 2, tensors, workers: 2 });
 * const { loss, grads } = await engine.grads(batch, labels, ["classifier.weight"], 7);
 * // ... optimizer step on the main thread, then:
 * await engine.setParams(new Map([["classifier.weight", updated]]));
 * await engine.dispose();
 * ```
 */
import { type Batch, sliceRows } from "../bert/batch.ts";
import type { BertConfig } from "../bert/config.ts";
import { parameterShapes } from "../bert/names.ts";
import type { TensorMap } from "../bert/safetensors.ts";
import { currentGemm, type GemmRequest } from "../backend/gemm_choice.ts";
import { backendFromEnv, type BackendName } from "../tf.ts";
import { elementCount } from "../util/shape.ts";
import type { GradResult } from "./replica.ts";
import { buffers, type FromWorker, type ToWorker, type WireBatch, type WireTensor } from "./protocol.ts";

export interface EngineOptions {
  config: BertConfig;
  numLabels: number;
  /** Initial parameters (every name of `parameterShapes`); copied into each worker. */
  tensors: TensorMap;
  /** Number of Deno Workers (default 1). */
  workers?: number;
  /** The workers' backend; default NORMTUNE_BACKEND, else auto. */
  backend?: BackendName;
  /**
   * The workers' product (lib/backend/gemm_choice.ts); default the calling thread's, with its OpenBLAS
   * thread count (process-wide: callers choose 1 for several workers, `blasThreads`).
   */
  gemm?: GemmRequest;
  /**
   * Rows per forward/backward pass inside each replica (gradient accumulation; 0 = all of its share):
   * bounds activation memory, e.g. for bert-base on the 4 GiB wasm heap.
   */
  microBatch?: number;
}

export interface GradientEngine {
  readonly workers: number;
  /** What the workers compute under (the same for all): "wasm", "wasm+openblas-t1", ... */
  readonly identity: string;
  /**
   * Mean loss over the batch and its gradients for `names` (trained parameters only). `training`
   * turns dropout on (default true); `seed` fixes its masks. The gradient arrays belong to the engine
   * and are overwritten by the next call.
   */
  grads(
    batch: Batch,
    labels: Int32Array | Float32Array,
    names: readonly string[],
    seed: number,
    training?: boolean,
  ): Promise<GradResult>;
  /** New values for some parameters (after an optimizer step), on every replica. */
  setParams(params: Map<string, Float32Array>): Promise<void>;
  dispose(): Promise<void>;
}

/** Row counts of each shard: `rows` split as evenly as possible, the larger shares first, no empty ones. */
export function shardSizes(rows: number, workers: number): number[] {
  const n = Math.max(1, Math.min(workers, rows));
  const base = Math.floor(rows / n), extra = rows % n;
  return Array.from({ length: n }, (_, i) => base + (i < extra ? 1 : 0));
}

/**
 * Rows [start, start + count) of a batch, as a message. Copies, not views: posting a view would clone
 * the whole batch's buffer.
 */
function shard(batch: Batch, labels: Int32Array | Float32Array, start: number, count: number): WireBatch {
  const rows = sliceRows(batch, start, count);
  return {
    inputIds: rows.inputIds.slice(),
    tokenTypeIds: rows.tokenTypeIds.slice(),
    attentionMask: rows.attentionMask.slice(),
    batchSize: count,
    seqLen: rows.seqLen,
    labels: labels.slice(start, start + count),
  };
}

export const SHARD_SEED_STRIDE = 1000003;

/** Float32Arrays of each parameter's size, made on first use and kept (`shared`: over SharedArrayBuffers). */
class Buffers {
  #map = new Map<string, Float32Array>();
  constructor(private sizes: Map<string, number>, private shared: boolean) {}

  get(name: string): Float32Array {
    let b = this.#map.get(name);
    if (!b) {
      const n = this.sizes.get(name);
      if (n === undefined) throw new Error(`gradient engine: "${name}" is not a parameter of the model`);
      b = new Float32Array(this.shared ? new SharedArrayBuffer(4 * n) : new ArrayBuffer(4 * n));
      this.#map.set(name, b);
    }
    return b;
  }

  pick(names: readonly string[]): Map<string, Float32Array> {
    return new Map(names.map((name) => [name, this.get(name)]));
  }
}

interface Pending {
  resolve: (m: FromWorker) => void;
  reject: (e: Error) => void;
}

/** One worker: request/response by id, errors become rejections that name the worker. */
class WorkerHandle {
  readonly worker: Worker;
  #pending = new Map<number, Pending>();
  #ready: Promise<string>;
  #failed?: Error;

  constructor(readonly index: number, init: ToWorker, transfer: Transferable[]) {
    this.worker = new Worker(new URL("./worker.ts", import.meta.url).href, { type: "module" });
    let readyResolve!: (identity: string) => void, readyReject!: (e: Error) => void;
    this.#ready = new Promise((res, rej) => {
      readyResolve = res;
      readyReject = rej;
    });
    this.worker.onmessage = (e: MessageEvent<FromWorker>) => {
      const m = e.data;
      if (m.type === "ready") return readyResolve(m.backend);
      if (m.type === "error" && m.id === undefined) {
        const err = this.fail(`worker ${index}: ${m.message}`);
        return readyReject(err);
      }
      const id = (m as { id: number }).id;
      const p = this.#pending.get(id);
      if (!p) return;
      this.#pending.delete(id);
      if (m.type === "error") p.reject(new Error(`gradient worker ${index}: ${m.message}`));
      else p.resolve(m);
    };
    this.worker.onerror = (e: ErrorEvent) => {
      e.preventDefault();
      readyReject(this.fail(`worker ${index} crashed: ${e.message}`));
    };
    this.worker.postMessage(init, transfer);
  }

  private fail(message: string): Error {
    const err = new Error(`gradient engine: ${message}`);
    this.#failed = err;
    for (const p of this.#pending.values()) p.reject(err);
    this.#pending.clear();
    return err;
  }

  /** Resolves with the identity the worker computes under. */
  ready(): Promise<string> {
    return this.#ready;
  }

  request(msg: ToWorker & { id: number }, transfer: Transferable[] = []): Promise<FromWorker> {
    if (this.#failed) return Promise.reject(this.#failed);
    return new Promise((resolve, reject) => {
      this.#pending.set(msg.id, { resolve, reject });
      this.worker.postMessage(msg, transfer);
    });
  }

  close(): void {
    try {
      this.worker.postMessage({ type: "close" } satisfies ToWorker);
    } catch {
      // already gone
    }
    this.worker.terminate();
  }
}

class WorkerEngine implements GradientEngine {
  #nextId = 1;
  #grads: Buffers[];
  #params: Buffers;
  #sum: Buffers;

  constructor(
    private handles: WorkerHandle[],
    private microBatch: number,
    private shapes: Map<string, number[]>,
    readonly identity: string,
  ) {
    const sizes = new Map([...shapes].map(([name, shape]) => [name, elementCount(shape)]));
    this.#grads = handles.map(() => new Buffers(sizes, true));
    this.#params = new Buffers(sizes, true);
    this.#sum = new Buffers(sizes, false);
  }

  get workers(): number {
    return this.handles.length;
  }

  async grads(
    batch: Batch,
    labels: Int32Array | Float32Array,
    names: readonly string[],
    seed: number,
    training = true,
  ): Promise<GradResult> {
    if (labels.length !== batch.batchSize) {
      throw new Error(`gradient engine: ${labels.length} labels for a batch of ${batch.batchSize} rows`);
    }
    const sizes = shardSizes(batch.batchSize, this.handles.length);
    let start = 0;
    const replies = await Promise.all(sizes.map((count, i) => {
      const b = shard(batch, labels, start, count);
      start += count;
      const out: WireTensor[] = names.map((
        name,
      ) => [name, this.shapes.get(name) ?? [], this.#grads[i].get(name)]);
      const msg = {
        type: "grads" as const,
        id: this.#nextId++,
        batch: b,
        names: [...names],
        seed: seed + SHARD_SEED_STRIDE * i,
        training,
        microBatch: this.microBatch,
        out,
      };
      return this.handles[i].request(msg, buffers([b.inputIds, b.tokenTypeIds, b.attentionMask]));
    })) as Extract<FromWorker, { type: "grads" }>[];
    // Weighted sum in worker order: the same bits for the same worker count.
    const total = batch.batchSize;
    const weights = sizes.map((n) => n / total);
    const loss = replies.reduce((acc, r, i) => acc + weights[i] * r.loss, 0);
    const grads = this.#sum.pick(names);
    for (const [name, acc] of grads) {
      const parts = sizes.map((_, i) => this.#grads[i].get(name));
      const g0 = parts[0], w0 = weights[0];
      for (let j = 0; j < acc.length; j++) acc[j] = w0 * g0[j];
      for (let i = 1; i < parts.length; i++) {
        const g = parts[i], w = weights[i];
        for (let j = 0; j < acc.length; j++) acc[j] += w * g[j];
      }
    }
    const heaps = replies.map((r) => r.heapBytes);
    return heaps.every((h) => h !== undefined)
      ? { loss, grads, heapBytes: heaps as number[] }
      : { loss, grads };
  }

  async setParams(params: Map<string, Float32Array>): Promise<void> {
    // One shared copy that every worker reads into its own variables.
    const tensors: WireTensor[] = [...params].map(([name, data]) => {
      const shared = this.#params.get(name);
      if (data.length !== shared.length) {
        throw new Error(`gradient engine: "${name}" has ${shared.length} values, got ${data.length}`);
      }
      shared.set(data);
      return [name, this.shapes.get(name)!, shared];
    });
    await Promise.all(this.handles.map((h) => h.request({ type: "set", id: this.#nextId++, tensors })));
  }

  dispose(): Promise<void> {
    for (const h of this.handles) h.close();
    return Promise.resolve();
  }
}

/** The calling thread's product as a request: the same product, threads and OpenBLAS library file. */
function mainGemm(): GemmRequest {
  const s = currentGemm();
  return s.blas ? { name: s.name, threads: s.threads, paths: [s.blas.path] } : { name: s.name };
}

/** Starts the engine: one Deno Worker per requested worker, each initialised with a copy of `tensors`. */
export async function createGradientEngine(opts: EngineOptions): Promise<GradientEngine> {
  const workers = opts.workers ?? 1;
  if (!Number.isInteger(workers) || workers < 1) {
    throw new Error(`gradient engine: workers must be a positive integer, got ${workers}`);
  }
  const backend = opts.backend ?? backendFromEnv();
  const gemm = opts.gemm ?? mainGemm();
  const microBatch = opts.microBatch ?? 0;
  if (!Number.isInteger(microBatch) || microBatch < 0) {
    throw new Error(`gradient engine: microBatch must be an integer >= 0, got ${microBatch}`);
  }
  const handles: WorkerHandle[] = [];
  let identities: string[];
  try {
    for (let i = 0; i < workers; i++) {
      const wire: WireTensor[] = [...opts.tensors].map(([name, t]) => [name, [...t.shape], t.data.slice()]);
      const init: ToWorker = {
        type: "init",
        config: opts.config,
        numLabels: opts.numLabels,
        tensors: wire,
        backend,
        gemm,
      };
      handles.push(new WorkerHandle(i, init, buffers(wire.map((t) => t[2]))));
    }
    identities = await Promise.all(handles.map((h) => h.ready()));
    if (new Set(identities).size > 1) {
      throw new Error(
        `gradient engine: the workers compute under different backends: ${identities.join(", ")}`,
      );
    }
  } catch (err) {
    for (const h of handles) h.close();
    throw err;
  }
  return new WorkerEngine(handles, microBatch, parameterShapes(opts.config, opts.numLabels), identities[0]);
}
