/**
 * How the fused kernels (lib/backend/fused_kernels.ts) touch backend memory: read and allocate float32
 * data on the wasm or cpu backend, and run plain row-major products on it (one XNNPACK product on wasm,
 * a JavaScript loop on cpu).
 *
 * The JavaScript parts work on the backend's own memory: on wasm a view of the heap (re-taken after any
 * call that may allocate, since growing the heap detaches earlier views), on cpu the stored array.
 */
import type { tf } from "../tf.ts";
import { elementCount } from "../util/shape.ts";

export type TI = tf.TensorInfo;
// deno-lint-ignore no-explicit-any
export type AnyBackend = any;

export const F32 = "float32";

interface WasmCalls {
  matMul: (...args: unknown[]) => void;
  fusedMatMul: (...args: unknown[]) => void;
}

const wasmCalls = new WeakMap<object, WasmCalls>();

/** Reads and allocates float32 data on the wasm or cpu backend, and runs plain products on it. */
export class Io {
  readonly wasm: boolean;
  constructor(readonly backend: AnyBackend) {
    this.wasm = typeof backend.typedArrayFromHeap === "function";
  }

  /** The values of `t`: on wasm a heap view, valid until the next allocation on the heap. */
  data(t: TI): Float32Array {
    if (t.dtype !== F32) throw new Error(`normtune kernels: expected a float32 tensor, got ${t.dtype}`);
    if (this.wasm) return this.backend.typedArrayFromHeap(t);
    const v = this.backend.readSync(t.dataId);
    return v instanceof Float32Array ? v : Float32Array.from(v as ArrayLike<number>);
  }

  alloc(shape: number[]): TI {
    if (this.wasm) return this.backend.makeOutput(shape, F32);
    return this.backend.makeTensorInfo(shape, F32, new Float32Array(elementCount(shape)));
  }

  free(t: TI): void {
    this.backend.disposeData(t.dataId);
  }

  private calls(): WasmCalls {
    const wasm = this.backend.wasm;
    let c = wasmCalls.get(wasm);
    if (!c) {
      const n = "number", a = "array";
      c = {
        matMul: wasm.cwrap("BatchMatMul", null, [n, a, n, n, a, n, n, n, n]),
        fusedMatMul: wasm.cwrap("_FusedMatMul", null, [n, a, n, n, a, n, n, n, n, n, n, n, n]),
      };
      wasmCalls.set(wasm, c);
    }
    return c;
  }

  /** A tensor registered over `len` floats of `t` from element `off` (no copy; release with `unview`). */
  private view(t: TI, off: number, len: number): { info: TI; id: number } {
    const base = this.backend.dataIdMap.get(t.dataId).memoryOffset as number;
    const info = this.backend.makeOutput([len], F32, base + 4 * off) as TI;
    return { info, id: this.backend.dataIdMap.get(info.dataId).id };
  }

  private unview(v: { info: TI; id: number }): void {
    // Not disposeData: that would free() memory the view does not own.
    this.backend.wasm.tfjs.disposeData(v.id);
    this.backend.dataIdMap.delete(v.info.dataId);
  }

  /**
   * C[m, n] = A[m, k] B[k, n] (+ bias[n]), each operand row-major and contiguous from its element
   * offset. On wasm one XNNPACK product; B and the bias are fresh views, so XNNPACK's per-weight
   * operator cache is dropped right after (no packed copies accumulate: caching the packing of frozen
   * weights saved under 7% of a bert-base step for 1 GB more heap).
   */
  gemm(
    a: TI,
    aOff: number,
    b: TI,
    bOff: number,
    c: TI,
    cOff: number,
    m: number,
    k: number,
    n: number,
    bias?: TI,
  ): void {
    if (!this.wasm) {
      return gemmJs(
        this.data(a),
        aOff,
        this.data(b),
        bOff,
        this.data(c),
        cOff,
        m,
        k,
        n,
        bias && this.data(bias),
      );
    }
    const calls = this.calls();
    const av = this.view(a, aOff, m * k), bv = this.view(b, bOff, k * n), cv = this.view(c, cOff, m * n);
    const aShape = new Uint8Array(new Int32Array([1, m, k]).buffer);
    const bShape = new Uint8Array(new Int32Array([1, k, n]).buffer);
    if (bias) {
      const biasView = this.view(bias, 0, n);
      calls.fusedMatMul(av.id, aShape, 3, bv.id, bShape, 3, 0, 0, 0, /* linear */ biasView.id, 0, 0, cv.id);
      this.unview(biasView);
    } else {
      calls.matMul(av.id, aShape, 3, bv.id, bShape, 3, 0, 0, cv.id);
    }
    this.unview(av);
    this.unview(bv);
    this.unview(cv);
  }
}

/** The cpu backend's product: a plain loop (the cpu backend's own matMul is JavaScript too). */
function gemmJs(
  a: Float32Array,
  aOff: number,
  b: Float32Array,
  bOff: number,
  c: Float32Array,
  cOff: number,
  m: number,
  k: number,
  n: number,
  bias?: Float32Array,
): void {
  for (let i = 0; i < m; i++) {
    const ci = cOff + i * n;
    if (bias) { for (let j = 0; j < n; j++) c[ci + j] = bias[j]; }
    else c.fill(0, ci, ci + n);
    for (let p = 0; p < k; p++) {
      const av = a[aOff + i * k + p];
      if (av === 0) continue;
      const bp = bOff + p * n;
      for (let j = 0; j < n; j++) c[ci + j] += av * b[bp + j];
    }
  }
}
