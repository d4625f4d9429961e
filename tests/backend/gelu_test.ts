import assert from "node:assert/strict";
import { EXP_MAX, EXP_STEPS, gelu, geluBlock, geluInto, geluOnHeap } from "../../lib/backend/gelu.ts";
import { Io } from "../../lib/backend/kernel_io.ts";
import { geluFast } from "../../lib/bert/fused_ops.ts";
import { initBackend, tf } from "../../lib/tf.ts";

/** float32 values from their bits. */
const fromBits = (bits: number[]) => new Float32Array(Uint32Array.from(bits).buffer);
const bitsOf = (a: Float32Array) => new Uint32Array(a.buffer, a.byteOffset, a.length);
const hex = (b: number) => `0x${b.toString(16).padStart(8, "0")}`;

/** Deterministic 32-bit random words (xorshift32). */
function words(n: number, seed: number): Uint32Array {
  const out = new Uint32Array(n);
  let s = seed >>> 0 || 1;
  for (let i = 0; i < n; i++) {
    s ^= s << 13;
    s ^= s >>> 17;
    s ^= s << 5;
    out[i] = s >>> 0;
  }
  return out;
}

/** The JavaScript loop's outputs: the reference. */
function reference(xs: Float32Array): [Float32Array, Float32Array] {
  const ys = new Float32Array(xs.length), ds = new Float32Array(xs.length);
  geluInto(xs, ys, ds);
  return [ys, ds];
}

function assertSameBits(got: Float32Array, want: Float32Array, xs: Float32Array, what: string) {
  const g = bitsOf(got), w = bitsOf(want), x = bitsOf(xs);
  assert.equal(g.length, w.length, `${what}: length`);
  for (let i = 0; i < w.length; i++) {
    if (g[i] !== w[i]) {
      assert.fail(
        `${what}[${i}]: x = ${xs[i]} (${hex(x[i])}): got ${got[i]} (${hex(g[i])}), want ${want[i]} (${
          hex(w[i])
        })`,
      );
    }
  }
}

/** Runs `run` on x, y and dydx tensors allocated on the backend's heap, x holding `xs`. */
function onHeap(
  io: Io,
  xs: Float32Array,
  run: (x: tf.TensorInfo, y: tf.TensorInfo, d: tf.TensorInfo) => void,
) {
  const x = io.alloc([xs.length]), y = io.alloc([xs.length]), d = io.alloc([xs.length]);
  try {
    io.data(x).set(xs);
    io.data(y).fill(7); // no value is left over from an earlier tensor
    io.data(d).fill(7);
    run(x, y, d);
    return [io.data(y).slice(), io.data(d).slice()];
  } finally {
    for (const t of [x, y, d]) io.free(t);
  }
}

/** The wasm loop's outputs for `xs` (it must run: no NaN inputs). */
function wasmGelu(io: Io, xs: Float32Array): [Float32Array, Float32Array] {
  const [ys, ds] = onHeap(
    io,
    xs,
    (x, y, d) => assert.ok(geluOnHeap(io, x, y, d), "the wasm loop did not run"),
  );
  return [ys, ds];
}

/** The wasm loop's outputs for `xs` from its scalar tail alone: calls of 3 elements (no f64x2 lanes). */
function wasmGeluTail(io: Io, xs: Float32Array): [Float32Array, Float32Array] {
  const simd = io.simd()!, block = geluBlock(io);
  const [ys, ds] = onHeap(io, xs, (x, y, d) => {
    const ax = io.address(x), ay = io.address(y), ad = io.address(d);
    for (let i = 0; i < xs.length; i += 3) {
      const n = Math.min(3, xs.length - i);
      assert.equal(simd.gelu(ax + 4 * i, ay + 4 * i, ad + 4 * i, n, block), 0, "a NaN seen");
    }
  });
  return [ys, ds];
}

/** Asserts the wasm loop gives `geluInto`'s bits for `xs`: in f64x2 lanes (and a tail), and in its tail. */
function check(io: Io, xs: Float32Array, what: string) {
  const [wy, wd] = reference(xs);
  for (const [how, [gy, gd]] of [["lanes", wasmGelu(io, xs)], ["tail", wasmGeluTail(io, xs)]] as const) {
    assertSameBits(gy, wy, xs, `${what} (${how}): y`);
    assertSameBits(gd, wd, xs, `${what} (${how}): dy/dx`);
  }
}

async function wasmIo(): Promise<Io> {
  await initBackend("wasm");
  const io = new Io(tf.backend());
  assert.ok(io.simd(), "the wasm module does not run here");
  return io;
}

/** The float32 neighbours of `v` within `k` ulps (v itself included), both signs. */
function around(v: number, k: number): number[] {
  const f = new Float32Array([Math.fround(Math.abs(v))]);
  const b = bitsOf(f)[0];
  const out: number[] = [];
  for (let d = -k; d <= k; d++) {
    const bits = b + d;
    if (bits < 0 || bits >= 0x7f800000) continue;
    out.push(bits, bits | 0x80000000);
  }
  return out;
}

Deno.test("gelu on wasm: geluInto's bits for 1e6 random float32s across all magnitudes", async () => {
  const io = await wasmIo();
  const n = (1 << 20) + 3, w = words(n, 12345), xs = new Float32Array(n);
  const wb = bitsOf(xs);
  for (let i = 0; i < n; i++) {
    const r = w[i];
    if (i % 2 === 0) {
      // Any bit pattern but NaN: every exponent, subnormals and infinities included.
      const b = r & 0x7fffffff;
      wb[i] = (b > 0x7f800000 ? b & 0x7f7fffff : b) | (r & 0x80000000);
    } else {
      // |x| log-uniform in [2^-24, 2^5): where GELU's inputs lie, tails to |x| = 32 included.
      const mag = 2 ** (((r >>> 8) / 2 ** 24) * 29 - 24);
      xs[i] = r & 1 ? -mag : mag;
    }
  }
  check(io, xs, "random");
  // Uniform on [-16, 16), the range of pre-activations.
  const u = words(n, 777);
  check(io, Float32Array.from(u, (r) => (r / 2 ** 32) * 32 - 16), "uniform");
});

Deno.test("gelu on wasm: geluInto's bits for special values, in every tail position", async () => {
  const io = await wasmIo();
  const zzMax = Math.sqrt(2 * EXP_MAX); // |x| where z * z reaches EXP_MAX
  const special = fromBits([
    0x00000000, // +0
    0x80000000, // -0
    0x00000001, // smallest subnormal
    0x80000001,
    0x007fffff, // largest subnormal
    0x807fffff,
    0x00800000, // smallest normal
    0x80800000,
    0x7f7fffff, // largest finite
    0xff7fffff,
    0x7f800000, // +Infinity
    0xff800000, // -Infinity
    ...around(zzMax, 64), // z * z at EXP_MAX, the table's last entry
    ...around(Math.sqrt(2 * (EXP_MAX - 1 / EXP_STEPS)), 8), // its second-last entry
    ...around(1e-20, 2),
    // The one float32 whose outputs change (dy/dx by 1 ulp) when one step of the erf polynomial is fused
    // (a multiply-add), found by checking all 2^32 inputs: float32 rounding hides almost every double-level
    // change, so these tests see a reordering only where it happens to cross a float32 rounding boundary.
    0xbabea5cb,
    ...around(1, 2),
  ]);
  const extra = new Float32Array([1e20, -1e20, 3e38, -3e38, 1e10, -1e10, 20, -20, 14, -14, 15, -15, 1e-45]);
  const all = new Float32Array([...special, ...extra]);
  check(io, all, "special");
  // Each value alone and at each position of a short run: the f64x2 lanes and the scalar tail.
  for (let len = 1; len <= 9; len++) {
    for (let i = 0; i + len <= all.length; i += 7) check(io, all.slice(i, i + len), `special, length ${len}`);
  }
});

Deno.test("gelu on wasm: geluInto's bits on both sides of every exp-table step", async () => {
  const io = await wasmIo();
  // zz * EXP_STEPS crosses an integer j (the table index, truncated) where |x| = sqrt(2 j / EXP_STEPS).
  const bits: number[] = [];
  for (let j = 0; j <= EXP_MAX * EXP_STEPS + 1; j++) bits.push(...around(Math.sqrt((2 * j) / EXP_STEPS), 3));
  check(io, fromBits(bits), "table steps");
});

/** As `assertSameBits`, but a NaN matches any NaN. */
function assertSameBitsOrNaN(got: Float32Array, want: Float32Array, xs: Float32Array, what: string) {
  const pick = (a: Float32Array) => a.map((v) => Number.isNaN(v) ? NaN : v);
  assertSameBits(pick(got), pick(want), xs, what);
}

// A NaN's payload and sign after geluInto depend on V8's tier (interpreted: the default NaN; optimized: the
// input's payload, or its sign flipped), so no fixed bits are "geluInto's" for it: the wasm loop declines
// such an input and the kernel runs geluInto itself, as it always did.
Deno.test("gelu on wasm: a NaN input leaves the work to geluInto (NaN out, other elements' bits)", async () => {
  const io = await wasmIo();
  const nans = [0x7fc00000, 0xffc00000, 0x7f800001, 0x7fbfffff, 0xffc12345];
  for (const len of [1, 3, 4, 5, 8, 9, 64]) {
    for (const at of [0, len - 1]) {
      const xs = Float32Array.from(words(len, len + at), (r) => (r / 2 ** 32) * 8 - 4);
      for (const nan of nans) {
        bitsOf(xs)[at] = nan;
        onHeap(io, xs, (x, y, d) => assert.equal(geluOnHeap(io, x, y, d), false, `NaN at ${at} of ${len}`));
        const [wy, wd] = reference(xs);
        const [gy, gd] = onHeap(io, xs, (x, y, d) => gelu(io, x, y, d));
        assert.ok(
          Number.isNaN(gy[at]) && Number.isNaN(gd[at]),
          `NaN ${hex(nan)} at ${at} of ${len}: NaN out`,
        );
        assertSameBitsOrNaN(gy, wy, xs, `NaN ${hex(nan)} at ${at} of ${len}: y`);
        assertSameBitsOrNaN(gd, wd, xs, `NaN ${hex(nan)} at ${at} of ${len}: dy/dx`);
      }
    }
  }
});

Deno.test("NormtuneGelu on wasm and cpu: geluInto's bits forward, dy * dydx backward", async () => {
  const xs = Float32Array.from(words(3 * 1001, 99), (r) => (r / 2 ** 32) * 24 - 12);
  const dys = Float32Array.from(words(xs.length, 5), (r) => r / 2 ** 32 - 0.5);
  const [wy, wd] = reference(xs);
  const wantGrad = new Float32Array(xs.length);
  for (let i = 0; i < xs.length; i++) wantGrad[i] = Math.fround(dys[i] * wd[i]);
  for (const backend of ["wasm", "cpu"] as const) {
    await initBackend(backend);
    tf.tidy(() => {
      const x = tf.tensor(xs, [3, xs.length / 3]), dy = tf.tensor(dys, x.shape);
      assertSameBits(geluFast(x).dataSync() as Float32Array, wy, xs, `${backend} forward`);
      // d/dx sum(dy * gelu(x)) = dy * dydx: the saved derivative's bits, times dy in float32.
      const grad = tf.grad((t: tf.Tensor) => tf.sum(tf.mul(geluFast(t), dy)) as tf.Scalar)(x);
      assertSameBits(grad.dataSync() as Float32Array, wantGrad, xs, `${backend} gradient`);
    });
  }
});
