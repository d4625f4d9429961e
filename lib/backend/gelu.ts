/**
 * Exact GELU for the fused kernel NormtuneGelu (lib/backend/fused_kernels.ts): y = x Phi(x), and dy/dx =
 * Phi(x) + x phi(x), which the kernel saves for the backward pass (dy * dydx, tfjs's own Multiply).
 *
 * `geluInto` is the JavaScript loop (float64, an exp table, the A&S 7.1.26 erf). On the wasm backend
 * `geluOnHeap` runs the same arithmetic in the project's wasm module (tools/wasm/gemm.as.ts `gelu`, f64x2
 * lanes), faster, with the same float32 bits for every input but NaN (tests/backend/gelu_test.ts); where
 * that module cannot run, or the input holds a NaN (whose outputs' payload and sign depend on V8's tier
 * and code generation), the JavaScript loop runs instead.
 */
import { elementCount } from "../util/shape.ts";
import type { Io, TI } from "./kernel_io.ts";
import { heapMemory } from "./simd_gemm.ts";

// Abramowitz & Stegun 7.1.26 (|error| <= 1.5e-7), as tfjs's cpu backend computes erf.
const ERF_P = 0.3275911,
  A1 = 0.254829592,
  A2 = -0.284496736,
  A3 = 1.421413741,
  A4 = -1.453152027,
  A5 = 1.061405429;
const INV_SQRT2 = Math.SQRT1_2, INV_SQRT_2PI = 1 / Math.sqrt(2 * Math.PI);

// exp(-t) for t in [0, 103]: a table at steps of 1/64 times a degree-4 Taylor term for the remainder
// (relative error < 1e-11). Math.exp costs ~10 ns in V8; this ~2 ns.
export const EXP_STEPS = 64, EXP_MAX = 103;
export const EXP_TABLE = Float64Array.from(
  { length: EXP_MAX * EXP_STEPS + 2 },
  (_, j) => Math.exp(-j / EXP_STEPS),
);

/** GELU of `xs` into `ys` and its derivative into `ds`, branch-free in the sign of x. */
export function geluInto(xs: Float32Array, ys: Float32Array, ds: Float32Array): void {
  for (let i = 0; i < xs.length; i++) {
    const v = xs[i];
    const z = Math.abs(v) * INV_SQRT2;
    const t = 1 / (1 + ERF_P * z);
    const zz = Math.min(z * z, EXP_MAX);
    const j = (zz * EXP_STEPS) | 0;
    const r = zz - j / EXP_STEPS;
    const e = EXP_TABLE[j] * (1 - r * (1 - r * (0.5 - r * (1 / 6 - r * (1 / 24))))); // exp(-x^2/2)
    const h = 0.5 * ((((A5 * t + A4) * t + A3) * t + A2) * t + A1) * t * e; // (1 - erf(|x|/sqrt2)) / 2
    const pos = +(v >= 0);
    const cdf = pos - (2 * pos - 1) * h; // Phi(x)
    ys[i] = v * cdf;
    ds[i] = cdf + v * e * INV_SQRT_2PI; // Phi(x) + x phi(x)
  }
}

/**
 * What the wasm loop reads (tools/wasm/gemm.as.ts `gelu`): the loop's constants, each as a pair of equal
 * doubles (one f64x2), in the order of the `K_` offsets there, then EXP_TABLE. `1 / EXP_STEPS` stands for
 * the division by EXP_STEPS: a power of two, so multiplying by its inverse gives the same double.
 */
const GELU_CONSTANTS = [
  INV_SQRT2,
  ERF_P,
  1,
  EXP_MAX,
  EXP_STEPS,
  1 / EXP_STEPS,
  1 / 6,
  1 / 24,
  0.5,
  A5,
  A4,
  A3,
  A2,
  A1,
  2,
  INV_SQRT_2PI,
] as const;
const GELU_BLOCK = Float64Array.from([...GELU_CONSTANTS.flatMap((c) => [c, c]), ...EXP_TABLE]);

/** The Emscripten module of a tfjs-wasm backend, as far as this file uses it. */
interface HeapModule {
  _malloc(bytes: number): number;
  asm?: { memory?: unknown };
  wasmMemory?: unknown;
}

/** Byte address of GELU_BLOCK on each wasm heap (copied once, on first use, and kept). */
const blocks = new WeakMap<object, number>();

/** Byte address of GELU_BLOCK on the heap of `io`'s backend (wasm only), copied there on first use. */
export function geluBlock(io: Io): number {
  const wasm = io.backend.wasm as HeapModule;
  let at = blocks.get(wasm);
  if (at === undefined) {
    const raw = wasm._malloc(GELU_BLOCK.byteLength + 16) >>> 0;
    if (raw === 0) throw new Error("normtune gelu: the wasm heap has no room for the GELU constants");
    at = raw + (16 - raw % 16) % 16; // 16-byte aligned: one f64x2 per constant
    // After malloc, which may grow the heap.
    new Float64Array(heapMemory(wasm)!.buffer, at, GELU_BLOCK.length).set(GELU_BLOCK);
    blocks.set(wasm, at);
  }
  return at;
}

/**
 * GELU of `x` into `y` and its derivative into `dydx` (float32 tensors of one size) by the wasm module, on
 * the wasm backend where that module runs. Returns false, having written nothing the caller can use,
 * where it did not run (cpu backend, no module) or the input holds a NaN: the caller then runs `geluInto`.
 */
export function geluOnHeap(io: Io, x: TI, y: TI, dydx: TI): boolean {
  const exports = io.simd(); // where it runs, the heap is exported
  if (!exports) return false;
  const n = elementCount(x.shape);
  return exports.gelu(io.address(x), io.address(y), io.address(dydx), n, geluBlock(io)) === 0;
}

/** The NormtuneGelu kernel's work: `geluOnHeap` where it runs, else `geluInto`. */
export function gelu(io: Io, x: TI, y: TI, dydx: TI): void {
  if (!geluOnHeap(io, x, y, dydx)) geluInto(io.data(x), io.data(y), io.data(dydx));
}
