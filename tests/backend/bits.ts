/**
 * Helpers of the tests that check a wasm loop gives the bits of the code it replaced (dropout, LayerNorm,
 * column sums): a bitwise comparison, and inputs that make float64 sums tell their order.
 */
import assert from "node:assert/strict";

/** Asserts two float32 arrays hold the same bits (NaN payloads and the sign of zero included). */
export function assertSameBits(got: Float32Array, want: Float32Array, what: string, reference: string): void {
  assert.equal(got.length, want.length, `${what}: length`);
  const g = new Uint32Array(got.buffer, got.byteOffset, got.length);
  const w = new Uint32Array(want.buffer, want.byteOffset, want.length);
  for (let i = 0; i < g.length; i++) {
    if (g[i] !== w[i]) assert.fail(`${what}: element ${i} is ${got[i]}, ${reference} gives ${want[i]}`);
  }
}

/** Deterministic float32 values (xorshift32) of mixed magnitudes and signs, times `scale`. */
export function mixedValues(n: number, seed: number, scale = 1): Float32Array {
  let s = seed >>> 0 || 1;
  return Float32Array.from({ length: n }, (_, i) => {
    s ^= s << 13;
    s ^= s >>> 17;
    s ^= s << 5;
    const u = (s >>> 0) / 2 ** 32 - 0.5;
    return scale * u * (i % 7 === 0 ? 40 : 1) + (i % 11 === 0 ? 3 : 0);
  });
}

/**
 * [rows, w] values whose float64 sums along a row or down a column depend on the order of the adds: both run
 * along 1, 0, 0, 0, 2^60, -2^60, 0, 0 (shifted by the row and the column), and 1 + 2^60 - 2^60 is 0 added
 * left to right, 1 otherwise. A loop that adds in another order than the reference's gives other bits.
 */
export function cancelling(rows: number, w: number): Float32Array {
  const q = [1, 0, 0, 0, 2 ** 60, -(2 ** 60), 0, 0];
  return Float32Array.from({ length: rows * w }, (_, i) => q[(Math.floor(i / w) + (i % w)) % 8]);
}
