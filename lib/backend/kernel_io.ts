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
import { type GemmExports, simdGemm } from "./simd_gemm.ts";

export type TI = tf.TensorInfo;
// deno-lint-ignore no-explicit-any
export type AnyBackend = any;

export const F32 = "float32";

interface WasmCalls {
  matMul: (...args: unknown[]) => void;
  fusedMatMul: (...args: unknown[]) => void;
}

const wasmCalls = new WeakMap<object, WasmCalls>();

/** A matrix inside a tensor: element (i, j) at element `off + i * rs + j * cs` of `t`. */
export interface Mat {
  t: TI;
  off: number;
  rs: number;
  cs: number;
}

/** A row-major output matrix inside a tensor: element (i, j) at `off + i * ld + j`. */
export interface Out {
  t: TI;
  off: number;
  ld: number;
}

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

  /** The relaxed-SIMD product on this wasm heap, if it runs here (lib/backend/simd_gemm.ts). */
  private simd(): GemmExports | undefined {
    return this.wasm ? simdGemm(this.backend.wasm) : undefined;
  }

  /** Byte address of element `off` of `t` on the wasm heap. */
  private address(t: TI, off = 0): number {
    return (this.backend.dataIdMap.get(t.dataId).memoryOffset as number) + 4 * off;
  }

  /**
   * Working memory for `product`s whose right operand is at most k x n (allocate once, pass to each
   * product of a kernel, free at the end); undefined where `product` needs none.
   */
  productScratch(k: number, n: number): TI | undefined {
    const simd = this.simd();
    return simd ? this.alloc([simd.packedBytes(k, n) / 4 + 8]) : undefined;
  }

  /**
   * C[m, n] = alpha A[m, k] B[k, n] (+ bias[n]) on strided operands (a head's columns, a transpose), C
   * row-major. On wasm the relaxed-SIMD product (B packed into `scratch` from `productScratch`, or a
   * buffer of its own), on cpu a JavaScript loop.
   */
  product(a: Mat, b: Mat, c: Out, m: number, k: number, n: number, alpha = 1, bias?: TI, scratch?: TI): void {
    const simd = this.simd();
    if (!simd) {
      const data = (t: TI) => this.data(t);
      return productJs(a, data(a.t), b, data(b.t), c, data(c.t), m, k, n, alpha, bias && data(bias));
    }
    const own = scratch ? undefined : this.productScratch(k, n);
    const buf = this.address((scratch ?? own)!);
    const packed = buf + 32;
    simd.packB(this.address(b.t, b.off), b.rs, b.cs, k, n, packed);
    simd.gemm(
      this.address(a.t, a.off),
      a.rs,
      a.cs,
      packed,
      this.address(c.t, c.off),
      c.ld,
      m,
      k,
      n,
      alpha,
      bias ? this.address(bias) : 0,
      buf,
    );
    if (own) this.free(own);
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

/** `Io.product` where the SIMD product cannot run: a plain loop over strided operands. */
function productJs(
  a: Mat,
  av: Float32Array,
  b: Mat,
  bv: Float32Array,
  c: Out,
  cv: Float32Array,
  m: number,
  k: number,
  n: number,
  alpha: number,
  bias?: Float32Array,
): void {
  const row = new Float32Array(n);
  for (let i = 0; i < m; i++) {
    row.fill(0);
    for (let p = 0; p < k; p++) {
      const x = av[a.off + i * a.rs + p * a.cs];
      if (x === 0) continue;
      const bp = b.off + p * b.rs;
      for (let j = 0; j < n; j++) row[j] += x * bv[bp + j * b.cs];
    }
    const ci = c.off + i * c.ld;
    for (let j = 0; j < n; j++) cv[ci + j] = alpha * row[j] + (bias ? bias[j] : 0);
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
