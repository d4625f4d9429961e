/**
 * Inverted dropout for the fused kernel NormtuneDropout (lib/backend/fused_kernels.ts), with the same
 * float32 bits as `tf.dropout(x, rate, undefined, seed)`, which it replaces on wasm and cpu.
 *
 * Why: tfjs draws the noise in JavaScript (seedrandom's alea generator, ~8 ns a value, its recurrence a
 * chain of float-int conversions), then runs four more kernels over it and keeps the multiplier for the
 * backward pass. Dropout touches every hidden state and every attention probability, so at BERT-tiny's
 * 32 x 128 that was ~90 ms of a ~200 ms step. Here one pass draws and applies the noise: on the wasm
 * backend in the project's wasm module (tools/wasm/gemm.as.ts `dropout`: alea in integers, the same
 * values, and the keep test as one integer comparison, `keptFrom`), elsewhere in the JavaScript loop
 * `dropoutInto` (alea as written). It also writes which elements it kept, one byte each, which the
 * gradient (NormtuneDropoutGrad: dy times the same multiplier) reads instead of drawing the stream again
 * (0.3 against 1.5 ns an element; a quarter of the float32 multiplier tfjs keeps).
 *
 * What tfjs computes, and so this: u = alea's next double, rounded to float32 (its Float32Array buffer);
 * kept where float32(u + keep) >= 1 (its Add and Floor), keep = float32(1 - rate); the multiplier
 * float32(1 / keep) (its Div) or 0; y = float32(x * multiplier) (its Mul).
 */
import { elementCount } from "../util/shape.ts";
import type { Io, TI } from "./kernel_io.ts";

/** Alea's state after seeding: s0, s1, s2 as integers (the doubles times 2^32) and the carry c. */
export type AleaState = [k0: number, k1: number, k2: number, c: number];

const TWO_POW_M32 = 2.3283064365386963e-10; // 2^-32

/** seedrandom's alea seeding (its `Mash` over " " three times, then over `seed`), as integers. */
export function aleaState(seed: string): AleaState {
  let n = 0xefc8249d;
  const mash = (data: string) => {
    for (let i = 0; i < data.length; i++) {
      n += data.charCodeAt(i);
      let h = 0.02519603282416938 * n;
      n = h >>> 0;
      h -= n;
      h *= n;
      n = h >>> 0;
      h -= n;
      n += h * 0x100000000;
    }
    return (n >>> 0) * TWO_POW_M32;
  };
  const s = [mash(" "), mash(" "), mash(" ")];
  for (let i = 0; i < 3; i++) {
    s[i] -= mash(seed);
    if (s[i] < 0) s[i] += 1;
  }
  // Each s is a multiple of 2^-32 in [0, 1), so s * 2^32 is an exact integer below 2^32.
  return [s[0] * 0x100000000, s[1] * 0x100000000, s[2] * 0x100000000, 1];
}

/**
 * The least alea integer k (the draw k / 2^32) that dropout keeps: float32(float32(k 2^-32) + keep) >= 1
 * is monotonic in k, so one binary search replaces the float arithmetic per draw (the wasm loop compares
 * integers). keep in (0, 1): the largest k is always kept, and 0 never is.
 */
export function keptFrom(keep: number): number {
  const kept = (k: number) => Math.fround(Math.fround(k * TWO_POW_M32) + keep) >= 1;
  let lo = 0, hi = 0xffffffff; // kept(hi), !kept(lo)
  while (hi - lo > 1) {
    const mid = Math.floor((lo + hi) / 2);
    if (kept(mid)) hi = mid;
    else lo = mid;
  }
  return hi;
}

/** keep = float32(1 - rate) and the kept elements' multiplier float32(1 / keep). */
export function dropoutScale(rate: number): { keep: number; scale: number } {
  if (!(rate > 0 && rate < 1)) throw new Error(`dropout rate must be in (0, 1), got ${rate}`);
  const keep = Math.fround(1 - rate);
  return { keep, scale: Math.fround(1 / keep) };
}

/**
 * ys = xs times the dropout multiplier drawn from `state` (alea's doubles, as seedrandom computes them);
 * kept[i] = 1 where element i is kept, else 0.
 */
export function dropoutInto(
  xs: Float32Array,
  ys: Float32Array,
  kept: Uint8Array,
  state: AleaState,
  rate: number,
): void {
  const { keep, scale } = dropoutScale(rate);
  let s0 = state[0] * TWO_POW_M32, s1 = state[1] * TWO_POW_M32, s2 = state[2] * TWO_POW_M32, c = state[3];
  for (let i = 0; i < xs.length; i++) {
    const t = 2091639 * s0 + c * TWO_POW_M32;
    s0 = s1;
    s1 = s2;
    c = t | 0;
    s2 = t - c;
    const k = Math.fround(Math.fround(s2) + keep) >= 1;
    ys[i] = xs[i] * (k ? scale : 0);
    kept[i] = +k;
  }
}

/** dxs = dys times the multiplier of the elements `dropoutInto` kept (the forward's float32 product). */
export function dropoutGradInto(dys: Float32Array, kept: Uint8Array, dxs: Float32Array, rate: number): void {
  const { scale } = dropoutScale(rate);
  for (let i = 0; i < dys.length; i++) dxs[i] = dys[i] * (kept[i] ? scale : 0);
}

/**
 * Dropout of `x` into `y` (float32 tensors of one size) with the noise of `seed`, the kept elements into
 * `mask` (bool, one byte each): the kernel's work.
 */
export function dropout(io: Io, x: TI, y: TI, mask: TI, rate: number, seed: string): void {
  const state = aleaState(seed);
  const exports = io.simd();
  if (exports) {
    const { keep, scale } = dropoutScale(rate);
    const n = elementCount(x.shape);
    exports.dropout(io.address(x), io.address(y), io.address(mask), n, ...state, keptFrom(keep), scale);
  } else {
    dropoutInto(io.data(x), io.data(y), io.bytes(mask), state, rate);
  }
}

/** dx = dy times the multiplier of the elements `mask` says `dropout` kept. */
export function dropoutGrad(io: Io, dy: TI, mask: TI, dx: TI, rate: number): void {
  const exports = io.simd();
  if (exports) {
    const n = elementCount(dy.shape);
    exports.dropoutGrad(io.address(dy), io.address(mask), io.address(dx), n, dropoutScale(rate).scale);
  } else {
    dropoutGradInto(io.data(dy), io.bytes(mask), io.data(dx), rate);
  }
}
