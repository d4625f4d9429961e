/**
 * How the fused kernels (lib/backend/fused_kernels.ts) touch backend memory: read and allocate float32
 * data on the wasm or cpu backend, and run products of strided matrices on it: on wasm the product chosen
 * (lib/backend/gemm_choice.ts: the relaxed-SIMD product of lib/backend/simd_gemm.ts, or OpenBLAS through
 * lib/backend/blas_gemm.ts), on cpu a JavaScript loop. Every product's operands are first checked against
 * their tensors (lib/backend/operand_bounds.ts).
 *
 * The JavaScript parts work on the backend's own memory: on wasm a view of the heap (re-taken after any
 * call that may allocate, since growing the heap detaches earlier views), on cpu the stored array.
 */
import type { tf } from "../tf.ts";
import { elementCount } from "../util/shape.ts";
import { blasProduct } from "./blas_gemm.ts";
import { activeBlas } from "./gemm_choice.ts";
import { checkOperands } from "./operand_bounds.ts";
import { type GemmExports, simdGemm } from "./simd_gemm.ts";

export type TI = tf.TensorInfo;
// deno-lint-ignore no-explicit-any
export type AnyBackend = any;

export const F32 = "float32";

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

/** Reads and allocates float32 data on the wasm or cpu backend, and runs products on it. */
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

  /**
   * The bytes of a bool tensor (one per element), as `data` gives a float32 tensor's values: on cpu the
   * stored array itself (its readSync hands out a converted copy of a bool tensor).
   */
  bytes(t: TI): Uint8Array {
    if (t.dtype !== "bool") throw new Error(`normtune kernels: expected a bool tensor, got ${t.dtype}`);
    if (this.wasm) return this.backend.typedArrayFromHeap(t);
    const v = this.backend.data.get(t.dataId).values;
    if (!(v instanceof Uint8Array)) throw new Error("normtune kernels: a bool tensor not stored as bytes");
    return v;
  }

  alloc(shape: number[], dtype: "float32" | "bool" = F32): TI {
    if (this.wasm) return this.backend.makeOutput(shape, dtype);
    const n = elementCount(shape);
    return this.backend.makeTensorInfo(shape, dtype, dtype === F32 ? new Float32Array(n) : new Uint8Array(n));
  }

  free(t: TI): void {
    this.backend.disposeData(t.dataId);
  }

  /**
   * The project's wasm module on this wasm heap, if it runs here (lib/backend/simd_gemm.ts): the
   * relaxed-SIMD product and the GELU loop (lib/backend/gelu.ts).
   */
  simd(): GemmExports | undefined {
    return this.wasm ? simdGemm(this.backend.wasm) : undefined;
  }

  /** OpenBLAS, where it is the chosen product and this is the wasm backend. */
  private blas() {
    return this.wasm ? activeBlas() : undefined;
  }

  /** Byte address of element `off` of `t` on the wasm heap. */
  address(t: TI, off = 0): number {
    return (this.backend.dataIdMap.get(t.dataId).memoryOffset as number) + 4 * off;
  }

  /**
   * Working memory for `product`s whose right operand is at most k x n (allocate once, pass to each
   * product of a kernel, free at the end); undefined where `product` needs none (cpu, OpenBLAS).
   */
  productScratch(k: number, n: number): TI | undefined {
    if (this.blas()) return undefined; // a layout OpenBLAS cannot take gets a buffer of its own
    const simd = this.simd();
    return simd ? this.simdScratch(simd, k, n) : undefined;
  }

  private simdScratch(simd: GemmExports, k: number, n: number): TI {
    return this.alloc([simd.packedBytes(k, n) / 4 + 8]);
  }

  /**
   * C[m, n] = alpha A[m, k] B[k, n] (+ bias[n]) on strided operands (a head's columns, a transpose), C
   * row-major. On wasm OpenBLAS where chosen and the operands are a CBLAS layout, else the relaxed-SIMD
   * product (B packed into `scratch` from `productScratch`, or a buffer of its own); on cpu a JavaScript
   * loop. Throws a RangeError, before touching memory, where an operand reaches outside its tensor.
   */
  product(a: Mat, b: Mat, c: Out, m: number, k: number, n: number, alpha = 1, bias?: TI, scratch?: TI): void {
    checkOperands(a, b, c, m, k, n, bias);
    const blas = this.blas();
    if (blas && blasProduct(blas, this.backend, a, b, c, m, k, n, alpha, bias)) return;
    const simd = this.simd();
    if (!simd) {
      const data = (t: TI) => this.data(t);
      return productJs(a, data(a.t), b, data(b.t), c, data(c.t), m, k, n, alpha, bias && data(bias));
    }
    const own = scratch ? undefined : this.simdScratch(simd, k, n);
    try {
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
    } finally {
      // A trap in the product must not leak its packing buffer.
      if (own) this.free(own);
    }
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
