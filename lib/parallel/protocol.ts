/**
 * Messages between the data-parallel gradient engine (engine.ts) and its workers (worker.ts). Tensors
 * travel as `[name, shape, Float32Array]`: at start-up transferred; afterwards views of
 * SharedArrayBuffers that the engine allocated once (gradients out, parameters in), so a step moves no
 * data through messages.
 */
import type { GemmRequest } from "../backend/gemm_choice.ts";
import type { BackendName } from "../tf.ts";
import type { BertConfig } from "../bert/config.ts";

export type WireTensor = [name: string, shape: number[], data: Float32Array];

/** A batch shard: row-major [rows, seqLen] inputs and the rows' labels. */
export interface WireBatch {
  inputIds: Int32Array;
  tokenTypeIds: Int32Array;
  attentionMask: Int32Array;
  batchSize: number;
  seqLen: number;
  labels: Int32Array | Float32Array;
}

export type ToWorker =
  | {
    type: "init";
    config: BertConfig;
    numLabels: number;
    tensors: WireTensor[];
    backend: BackendName;
    /** The main thread's product (and OpenBLAS's library file), so that both compute alike. */
    gemm: GemmRequest;
  }
  | {
    type: "grads";
    id: number;
    batch: WireBatch;
    names: string[];
    seed: number;
    training: boolean;
    microBatch: number;
    /** Where to write each gradient (shared buffers of this worker). */
    out: WireTensor[];
  }
  | { type: "set"; id: number; tensors: WireTensor[] }
  | { type: "close" };

export type FromWorker =
  /** `backend`: the identity the worker computes under, e.g. "wasm" or "wasm+openblas-t1". */
  | { type: "ready"; backend: string }
  | { type: "grads"; id: number; loss: number; heapBytes?: number }
  | { type: "set"; id: number }
  | { type: "error"; id?: number; message: string };

/** The buffers of typed arrays, for a postMessage transfer list (they are plain ArrayBuffers here). */
export function buffers(arrays: ArrayBufferView[]): Transferable[] {
  return arrays.map((a) => a.buffer as ArrayBuffer);
}
