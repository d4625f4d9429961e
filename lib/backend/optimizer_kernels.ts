/**
 * Fused optimizer kernels for the wasm and cpu backends, registered with the other fused kernels
 * (lib/backend/fused_kernels.ts):
 * - `NormtuneAdamW`: one parameter's whole AdamW update (lib/tuning/optimizer.ts) in one pass, instead of
 *   a dozen tfjs elementwise ops each allocating and writing a full-size tensor;
 * - `NormtuneNonFinite`: for each of several tensors, whether it holds NaN or an infinity, in one kernel;
 * - `NormtuneSumSquares`: for each of several tensors, `tf.sum(tf.square(x))` (the clipping norm's
 *   terms) in one pass, without the squares' tensor, skipping zeros (most of an embedding's gradient).
 *
 * Results are bitwise those of the tfjs op sequence they replace (written out in lib/tuning/optimizer.ts):
 * every tfjs wasm/cpu elementwise kernel computes each float32 element correctly rounded to float32
 * (wasm: one IEEE float32 operation; cpu: the operation in float64, then stored into a Float32Array,
 * which gives the same float32 for +, -, *, / and sqrt of float32 operands), and scalars enter as float32
 * tensors (`Math.fround` of the JavaScript number). Here the same operations run in the same order:
 * - on wasm, tools/wasm/adamw.as.ts (built into adamw_wasm.ts with plain SIMD only: no fused
 *   multiply-add) on the backend's heap, its f32 parameters rounded from the JavaScript numbers as
 *   `Math.fround` rounds them;
 * - on cpu (or a wasm engine where the module cannot start), a JavaScript loop that rounds with
 *   `Math.fround` after every single operation.
 * Outputs are new tensors (as the ops' were): a parameter's buffer may be shared (the cpu backend's
 * `data()` hands out the stored array), so nothing is updated in place.
 */
import { elementCount } from "../util/shape.ts";
import { ADAMW_WASM_BASE64 } from "./adamw_wasm.ts";
import { type AnyBackend, F32, Io, type TI } from "./kernel_io.ts";
import { heapInstance } from "./simd_gemm.ts";

/** The kernels' names. */
export const OPTIMIZER_KERNELS = {
  adamw: "NormtuneAdamW",
  nonFinite: "NormtuneNonFinite",
  sumSquares: "NormtuneSumSquares",
} as const;

/**
 * The attributes of `NormtuneAdamW`: the JavaScript numbers the op sequence turns into float32 scalars.
 * `scale` (the clipping coefficient) and `decay` (1 - lr * weightDecay) are left out when that
 * multiply does not happen.
 */
export interface AdamWAttrs {
  scale?: number;
  beta1: number;
  oneMinusBeta1: number;
  beta2: number;
  oneMinusBeta2: number;
  decay?: number;
  bc2Sqrt: number;
  eps: number;
  stepSize: number;
}

interface AdamWExports {
  adamw(
    p: number,
    m: number,
    v: number,
    g: number,
    mask: number,
    po: number,
    mo: number,
    vo: number,
    n: number,
    scale: number,
    scaled: number,
    beta1: number,
    oneMinusBeta1: number,
    beta2: number,
    oneMinusBeta2: number,
    decay: number,
    decays: number,
    bc2Sqrt: number,
    eps: number,
    stepSize: number,
  ): void;
  nonFinite(x: number, n: number): number;
  sumSquares(x: number, n: number): number;
}

const instances = new WeakMap<object, AdamWExports | null>();

/** The module bound to the heap of `wasm` (the backend's Emscripten module), or undefined where it cannot run. */
export function adamwWasm(wasm: object): AdamWExports | undefined {
  let x = instances.get(wasm);
  if (x === undefined) {
    // Where it cannot run (no SIMD), the JavaScript loop gives the same bits.
    x = heapInstance<AdamWExports>(wasm, ADAMW_WASM_BASE64) ?? null;
    instances.set(wasm, x);
  }
  return x ?? undefined;
}

/** Throws unless `t` is float32 with `n` elements (the wasm module writes and reads `n` elements). */
function check(t: TI, n: number, what: string): void {
  if (t.dtype !== F32) throw new Error(`${OPTIMIZER_KERNELS.adamw}: ${what} is ${t.dtype}, not float32`);
  const size = elementCount(t.shape);
  if (size !== n) throw new Error(`${OPTIMIZER_KERNELS.adamw}: ${what} has ${size} elements, not ${n}`);
}

type KernelArgs = { inputs: Record<string, TI>; backend: AnyBackend; attrs: Record<string, unknown> };

/** New [p, m, v] of one AdamW update; inputs p, m, v, g and optionally mask (a float mask). */
export function adamwKernel({ inputs: { p, m, v, g, mask }, backend, attrs }: KernelArgs): TI[] {
  const a = attrs as unknown as AdamWAttrs;
  const n = elementCount(p.shape);
  for (const [t, what] of [[p, "p"], [m, "m"], [v, "v"], [g, "g"]] as const) check(t, n, what);
  if (mask) check(mask, n, "mask");
  const io = new Io(backend);
  // Every output first: on wasm an allocation may grow the heap, which detaches earlier views.
  const po = io.alloc(p.shape.slice()), mo = io.alloc(p.shape.slice()), vo = io.alloc(p.shape.slice());
  const mod = io.wasm ? adamwWasm(backend.wasm) : undefined;
  if (mod) {
    mod.adamw(
      io.address(p),
      io.address(m),
      io.address(v),
      io.address(g),
      mask ? io.address(mask) : 0,
      io.address(po),
      io.address(mo),
      io.address(vo),
      n,
      a.scale ?? 1,
      a.scale === undefined ? 0 : 1,
      a.beta1,
      a.oneMinusBeta1,
      a.beta2,
      a.oneMinusBeta2,
      a.decay ?? 1,
      a.decay === undefined ? 0 : 1,
      a.bc2Sqrt,
      a.eps,
      a.stepSize,
    );
  } else {
    adamwJs(
      io.data(p),
      io.data(m),
      io.data(v),
      io.data(g),
      mask && io.data(mask),
      io.data(po),
      io.data(mo),
      io.data(vo),
      a,
    );
  }
  return [po, mo, vo];
}

/** The same update in JavaScript: `Math.fround` after every operation, as each tfjs kernel rounds. */
function adamwJs(
  p: Float32Array,
  m: Float32Array,
  v: Float32Array,
  g: Float32Array,
  mask: Float32Array | undefined,
  po: Float32Array,
  mo: Float32Array,
  vo: Float32Array,
  a: AdamWAttrs,
): void {
  const f = Math.fround;
  const scaled = a.scale !== undefined, decays = a.decay !== undefined;
  const scale = f(a.scale ?? 1), decay = f(a.decay ?? 1);
  const b1 = f(a.beta1), c1 = f(a.oneMinusBeta1), b2 = f(a.beta2), c2 = f(a.oneMinusBeta2);
  const s2 = f(a.bc2Sqrt), eps = f(a.eps), stepSize = f(a.stepSize);
  for (let i = 0; i < p.length; i++) {
    let gi = g[i];
    if (scaled) gi = f(gi * scale);
    if (mask) gi = f(gi * mask[i]);
    const mi = f(f(m[i] * b1) + f(gi * c1));
    const vi = f(f(v[i] * b2) + f(f(gi * gi) * c2));
    const p0 = p[i];
    let pi = decays ? f(p0 * decay) : p0;
    const den = f(f(f(Math.sqrt(vi)) / s2) + eps);
    pi = f(pi - f(f(mi / den) * stepSize));
    po[i] = mask && !(mask[i] > 0) ? p0 : pi;
    mo[i] = mi;
    vo[i] = vi;
  }
}

/**
 * One float32 value per input tensor (given as an array, like AddN's): 1 where it holds NaN or an
 * infinity, else 0.
 */
export function nonFiniteKernel({ inputs, backend }: KernelArgs): TI {
  const xs = Object.values(inputs);
  const io = new Io(backend);
  const out = io.alloc([xs.length]);
  const mod = io.wasm ? adamwWasm(backend.wasm) : undefined;
  const flags = xs.map((x) => {
    if (x.dtype !== F32) throw new Error(`${OPTIMIZER_KERNELS.nonFinite}: a ${x.dtype} tensor, not float32`);
    if (mod) return mod.nonFinite(io.address(x), elementCount(x.shape));
    const d = io.data(x);
    for (let i = 0; i < d.length; i++) if (d[i] * 0 !== 0) return 1;
    return 0;
  });
  io.data(out).set(flags);
  return out;
}

/**
 * One float32 scalar per input tensor (given as an array, like AddN's): the bits of
 * `tf.sum(tf.square(x))` on this backend. tfjs-wasm squares in float32 and sums in float32 in index order
 * (the module's `sumSquares`, or a JavaScript loop rounding after each operation where it cannot run);
 * tfjs's cpu backend rounds each square to float32 but sums in float64, rounding once at the end.
 */
export function sumSquaresKernel({ inputs, backend }: KernelArgs): TI[] {
  const xs = Object.values(inputs);
  for (const x of xs) {
    if (x.dtype !== F32) throw new Error(`${OPTIMIZER_KERNELS.sumSquares}: a ${x.dtype} tensor, not float32`);
  }
  const io = new Io(backend);
  const outs = xs.map(() => io.alloc([]));
  const mod = io.wasm ? adamwWasm(backend.wasm) : undefined;
  const f = Math.fround;
  xs.forEach((x, k) => {
    let s = 0;
    if (mod) s = mod.sumSquares(io.address(x), elementCount(x.shape));
    else {
      const d = io.data(x);
      if (io.wasm) { for (let i = 0; i < d.length; i++) s = f(s + f(d[i] * d[i])); }
      else for (let i = 0; i < d.length; i++) s += f(d[i] * d[i]);
    }
    io.data(outs[k])[0] = s;
  });
  return outs;
}
