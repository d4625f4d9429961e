/**
 * The project's own float32 product for the wasm backend, which every fused kernel's product runs on:
 * tools/wasm/gemm.as.ts (AssemblyScript, built into gemm_wasm.ts by `deno task build-wasm`), instantiated
 * once per tfjs-wasm module on that module's memory, so it reads and writes tensors where they lie. The same
 * module holds the exact GELU loop of the NormtuneGelu kernel (lib/backend/gelu.ts), the dropout loops of
 * NormtuneDropout and its gradient (lib/backend/dropout.ts), LayerNorm's loops (lib/backend/layer_norm.ts)
 * and the column sums of bias, gamma and broadcast gradients (lib/backend/col_sums.ts).
 *
 * Why not tfjs-wasm's XNNPACK: it builds an XNNPACK operator (packing the right operand) for every
 * product, ~80 us each, which dominated attention's hundreds of small per-(example, head) products; its
 * operands must be contiguous, so heads and transposed operands were copied first (in JavaScript, ~1 GB/s);
 * and its build does not use the relaxed-SIMD fused multiply-add that Deno's V8 accepts. This product reads
 * strided operands (a head's columns, a transpose) in place and costs nothing to set up. Measured on the
 * 2-core development machine under load (README, issue 14): attention's six products 1.9-2.8x faster per
 * step, the weight gradient 1.4-1.8x; dense kernels 0.56-0.92x the time of XNNPACK's plain product at the
 * same shapes in 13 of 15 interleaved comparisons, 1.16x and 1.25x in the other 2.
 * Results are deterministic on a given machine (fixed summation order per element); `relaxed_madd` is a
 * fused multiply-add where the CPU has FMA and a multiply then an add where it has not, so two machines
 * can differ in the last bits.
 */
import { GEMM_WASM_BASE64 } from "./gemm_wasm.ts";

/** The module's exports (pointers are byte offsets into the tfjs-wasm heap). */
export interface GemmExports {
  packedBytes(k: number, n: number): number;
  packB(b: number, rs: number, cs: number, k: number, n: number, dst: number): void;
  gemm(
    a: number,
    ars: number,
    acs: number,
    packed: number,
    c: number,
    ldc: number,
    m: number,
    k: number,
    n: number,
    alpha: number,
    bias: number,
    scratch: number,
  ): void;
  /** Exact GELU of n float32s at x into y, dy/dx into d (lib/backend/gelu.ts); non-zero: NaN inputs. */
  gelu(x: number, y: number, d: number, n: number, block: number): number;
  /**
   * Dropout of n float32s at x into y and the kept bytes into mask, alea's stream from state k0, k1, k2, c
   * (lib/backend/dropout.ts).
   */
  dropout(
    x: number,
    y: number,
    mask: number,
    n: number,
    k0: number,
    k1: number,
    k2: number,
    c: number,
    keptFrom: number,
    scale: number,
  ): void;
  /** Float32 column sums of src [rows, w] in row order into dst [w] (lib/backend/col_sums.ts). */
  sumRowsF32(src: number, dst: number, rows: number, w: number): void;
  /** dx = dy times dropout's multiplier, from its mask bytes (lib/backend/dropout.ts). */
  dropoutGrad(dy: number, mask: number, dx: number, n: number, scale: number): void;
  /** LayerNorm of x [rows, h] into y, mean and rstd [rows] (lib/backend/layer_norm.ts). */
  layerNorm(
    x: number,
    y: number,
    mean: number,
    rstd: number,
    gamma: number,
    beta: number,
    rows: number,
    h: number,
    per: number,
    eps: number,
  ): void;
  /** LayerNorm's input gradient into dx (lib/backend/layer_norm.ts). */
  layerNormGradX(
    dy: number,
    x: number,
    gamma: number,
    mean: number,
    rstd: number,
    dx: number,
    rows: number,
    h: number,
    per: number,
  ): void;
  /** Column sums of src [rows, w] per group of `per` rows into dst; acc: scratch for w doubles. */
  colSum(src: number, dst: number, rows: number, w: number, per: number, acc: number): void;
  /** LayerNorm gamma's gradient per group of `per` rows into dst; acc: scratch for h doubles. */
  layerNormGradGamma(
    dy: number,
    x: number,
    mean: number,
    rstd: number,
    dst: number,
    rows: number,
    h: number,
    per: number,
    acc: number,
  ): void;
}

const modules = new Map<string, WebAssembly.Module>();
const instances = new WeakMap<object, GemmExports | null>();

/** The memory of a started tfjs-wasm module (Emscripten keeps its exports as `asm`). */
export function heapMemory(
  wasm: { asm?: { memory?: unknown }; wasmMemory?: unknown },
): WebAssembly.Memory | undefined {
  const m = wasm.asm?.memory ?? wasm.wasmMemory;
  return m instanceof WebAssembly.Memory ? m : undefined;
}

/**
 * An instance of the wasm module `base64` (one of the project's AssemblyScript builds) on the heap of
 * `wasm`, or undefined where it cannot run (no exported memory, or an engine without the SIMD it uses).
 * Each module is compiled once.
 */
export function heapInstance<T>(wasm: object, base64: string): T | undefined {
  const memory = heapMemory(wasm as { asm?: { memory?: unknown } });
  if (!memory) return undefined;
  try {
    let m = modules.get(base64);
    if (!m) {
      modules.set(
        base64,
        m = new WebAssembly.Module(Uint8Array.from(atob(base64), (c) => c.charCodeAt(0))),
      );
    }
    return new WebAssembly.Instance(m, { env: { memory } }).exports as unknown as T;
  } catch {
    return undefined;
  }
}

/**
 * The product bound to the heap of `wasm` (the backend's Emscripten module), or undefined where it cannot
 * run (no exported memory, or an engine without relaxed SIMD): callers then use the plain JavaScript loop
 * (lib/backend/kernel_io.ts `productJs`: the same results, many times slower; GELU: lib/backend/gelu.ts
 * `geluInto`, the same bits), and a warning says so once.
 */
export function simdGemm(wasm: object): GemmExports | undefined {
  let x = instances.get(wasm);
  if (x === undefined) {
    x = heapInstance<GemmExports>(wasm, GEMM_WASM_BASE64) ?? null;
    if (!x) {
      console.warn(
        "normtune: the SIMD product cannot run on this engine (no relaxed SIMD or no exported heap); " +
          "products and GELU use plain JavaScript loops: same results, many times slower",
      );
    }
    instances.set(wasm, x);
  }
  return x ?? undefined;
}
