/**
 * Replacements for three stock wasm kernels that are slow or copy where BERT training needs neither.
 * Each wraps the stock kernel and hands it the cases it does not cover; `installBackend`
 * (lib/backend/install.ts) swaps them in when the wasm backend starts.
 *
 * - SplitV: the stock kernel copies its whole input once per piece (readSync); this one reads the input
 *   in place, which makes per-(batch, head) attention products cheap on the op-by-op path.
 * - GatherV2 (axis 0, float32 table): one row copy per index instead of a source index per element.
 * - Identity: shares the input's buffer (reference counted, as the cpu backend does) instead of copying
 *   it, so the engine's saving of a tensor for the backward pass no longer copies it.
 */
import type { tf } from "../tf.ts";
import { elementCount } from "../util/shape.ts";
import { type AnyBackend, F32, type TI } from "./kernel_io.ts";

type Tfjs = typeof tf;

/** A stock kernel of a backend and what replaces it (built from the stock one, which it may call). */
export interface KernelReplacement {
  kernelName: string;
  replace: (stock: tf.KernelFunc) => tf.KernelFunc;
}

/** SplitV that reads the input in place. Falls back to the stock kernel for strings. */
function splitInPlace(tf: Tfjs, stock: tf.KernelFunc): tf.KernelFunc {
  return (args) => {
    const x = args.inputs.x as tf.TensorInfo;
    const backend = args.backend as AnyBackend;
    const { numOrSizeSplits, axis } = args.attrs as unknown as {
      numOrSizeSplits: number | number[];
      axis: number;
    };
    if (x.dtype === "string" || typeof backend.typedArrayFromHeap !== "function") return stock(args);
    const ax = tf.util.parseAxisParam(axis, x.shape)[0];
    const sizes = tf.backend_util.prepareSplitSize(
      x as unknown as tf.Tensor,
      numOrSizeSplits,
      ax,
    ) as number[];
    const outer = x.shape.slice(0, ax).reduce((p, q) => p * q, 1);
    const inner = x.shape.slice(ax + 1).reduce((p, q) => p * q, 1);
    const dim = x.shape[ax];
    // Allocate every output first: an allocation may grow the heap, which invalidates earlier views.
    const outs: tf.TensorInfo[] = sizes.map((s) => {
      const shape = x.shape.slice();
      shape[ax] = s;
      return backend.makeOutput(shape, x.dtype);
    });
    const xv = backend.typedArrayFromHeap(x);
    let begin = 0;
    outs.forEach((out, k) => {
      const s = sizes[k];
      const ov = backend.typedArrayFromHeap(out);
      const chunk = s * inner;
      for (let o = 0; o < outer; o++) {
        const src = (o * dim + begin) * inner;
        ov.set(xv.subarray(src, src + chunk), o * chunk);
      }
      begin += s;
    });
    return outs;
  };
}

/**
 * GatherV2 along axis 0 of a float32 table (embedding lookups) as one row copy per index; the stock
 * kernel computes every element's source index separately (~30 ns per element). Anything else goes to
 * the stock kernel.
 */
function rowGather(stock: tf.KernelFunc): tf.KernelFunc {
  const gather = (
    args: { inputs: Record<string, TI>; backend: AnyBackend; attrs: Record<string, unknown> },
  ) => {
    const { x, indices } = args.inputs;
    const { axis, batchDims } = args.attrs as { axis: number; batchDims: number };
    const ax = axis < 0 ? axis + x.shape.length : axis;
    if (x.dtype !== F32 || indices.dtype !== "int32" || ax !== 0 || batchDims !== 0) {
      return stock(args as unknown as Parameters<tf.KernelFunc>[0]) as TI;
    }
    const backend = args.backend;
    const rows = x.shape[0], width = elementCount(x.shape) / rows;
    const out = backend.makeOutput([...indices.shape, ...x.shape.slice(1)], F32) as TI;
    const table = backend.typedArrayFromHeap(x) as Float32Array;
    const ids = backend.typedArrayFromHeap(indices) as Int32Array;
    const dst = backend.typedArrayFromHeap(out) as Float32Array;
    for (let i = 0; i < ids.length; i++) {
      const r = ids[i];
      if (r < 0 || r >= rows) {
        backend.disposeData(out.dataId);
        throw new Error(`gather: index ${r} at position ${i} is outside the table's ${rows} rows`);
      }
      dst.set(table.subarray(r * width, (r + 1) * width), i * width);
    }
    return out;
  };
  return gather as unknown as tf.KernelFunc;
}

/** Identity that shares the buffer (reference counted) instead of copying it. */
function sharedIdentity(): tf.KernelFunc {
  const identity = ({ inputs: { x }, backend }: { inputs: Record<string, TI>; backend: AnyBackend }) => {
    backend.incRef(x.dataId);
    return { dataId: x.dataId, shape: x.shape.slice(), dtype: x.dtype };
  };
  return identity as unknown as tf.KernelFunc;
}

/** The wasm backend's replaced kernels. */
export function wasmReplacements(tf: Tfjs): KernelReplacement[] {
  return [
    { kernelName: "SplitV", replace: (stock) => splitInPlace(tf, stock) },
    { kernelName: "GatherV2", replace: rowGather },
    { kernelName: "Identity", replace: sharedIdentity },
  ];
}
