import assert from "node:assert/strict";
import { ADAMW_SOURCE_SHA256 } from "../../lib/backend/adamw_wasm.ts";
import { adamwWasm, OPTIMIZER_KERNELS } from "../../lib/backend/optimizer_kernels.ts";
import { initBackend, tf } from "../../lib/tf.ts";
import { globalNorm } from "../../lib/tuning/optimizer.ts";
import { ADAMW_SOURCE, sourceHash } from "../../tools/build_wasm.ts";

Deno.test("the built optimizer module is the AssemblyScript source's (run tools/build_wasm.ts after editing it)", async () => {
  assert.equal(ADAMW_SOURCE_SHA256, sourceHash(await Deno.readTextFile(ADAMW_SOURCE)));
});

Deno.test("wasm: the optimizer module starts on the backend's heap (else the JavaScript loop would run)", async () => {
  await initBackend("wasm");
  assert.ok(adamwWasm((tf.backend() as unknown as { wasm: object }).wasm), "the SIMD module did not start");
});

const run = (inputs: Record<string, tf.Tensor>, attrs: Record<string, number>) =>
  tf.engine().runKernel(OPTIMIZER_KERNELS.adamw, inputs, attrs) as tf.Tensor[];
const attrs = {
  beta1: 0.9,
  oneMinusBeta1: 0.1,
  beta2: 0.999,
  oneMinusBeta2: 0.001,
  bc2Sqrt: 1,
  eps: 1e-8,
  stepSize: 1,
};

for (const backend of ["wasm", "cpu"] as const) {
  Deno.test(`${backend}: the AdamW kernel refuses operands of other sizes or types before writing anything`, async () => {
    await initBackend(backend);
    const before = tf.memory().numTensors;
    const p = tf.zeros([6]), m = tf.zeros([6]), v = tf.zeros([6]), g = tf.ones([6]);
    const short = tf.ones([5]), long = tf.ones([7]), ints = tf.zeros([6], "int32");
    try {
      assert.throws(() => run({ p, m, v, g: short }, attrs), /g has 5 elements, not 6/);
      assert.throws(() => run({ p, m, v, g, mask: long }, attrs), /mask has 7 elements, not 6/);
      assert.throws(() => run({ p, m: ints, v, g }, attrs), /m is int32, not float32/);
      const [po, mo, vo] = run({ p, m, v, g }, attrs);
      assert.deepEqual([...mo.dataSync()], new Array(6).fill(Math.fround(0.1)));
      tf.dispose([po, mo, vo]);
    } finally {
      tf.dispose([p, m, v, g, short, long, ints]);
    }
    assert.equal(tf.memory().numTensors, before, "a refused call left tensors behind");
  });

  Deno.test(`${backend}: the non-finite kernel flags NaN and infinities anywhere, vector lanes and tail alike`, async () => {
    await initBackend(backend);
    const n = 23; // 5 SIMD vectors and a 3-element tail
    const cases: [number, number][] = [[0, NaN], [3, Infinity], [19, -Infinity], [20, NaN], [22, Infinity]];
    const xs = [
      tf.tensor(new Float32Array(n).fill(-0)),
      ...cases.map(([at, x]) => {
        const d = Float32Array.from({ length: n }, (_, i) => (i - 11) * 3e37);
        d[at] = x;
        return tf.tensor(d);
      }),
      tf.tensor(Float32Array.from({ length: n }, (_, i) => (i % 2 ? 3.4e38 : -1e-45))),
      tf.tensor(new Float32Array(0)),
      tf.tensor(new Float32Array([NaN])),
    ];
    const out = tf.engine().runKernel(
      OPTIMIZER_KERNELS.nonFinite,
      xs as unknown as tf.NamedTensorMap,
    ) as tf.Tensor;
    assert.deepEqual([...out.dataSync()], [0, 1, 1, 1, 1, 1, 0, 0, 1]);
    tf.dispose([out, ...xs]);
  });
}

/** Values whose float32 sum of squares depends on the order of the adds, with zero runs and -0 between. */
function squaresCases(): Float32Array[] {
  const rand = (n: number, seed: number) => {
    let s = seed;
    return Float32Array.from({ length: n }, () => {
      s = (s * 1103515245 + 12345) % 2147483648;
      return (s / 2147483648 - 0.5) * 10 ** ((s % 7) - 3);
    });
  };
  const sparse = new Float32Array(30522 * 8);
  for (const i of [5, 16, 17, 31, 4096, 4097, 100000, sparse.length - 1]) sparse[i] = 0.25 + i / 1e6;
  sparse[40] = -0;
  // 4096^2 = 2^24: a float32 sum in index order then drops every 1 that follows; a pairwise one keeps them.
  const ordered = Float32Array.from({ length: 37 }, (_, i) => (i === 0 ? 4096 : 1));
  return [
    new Float32Array([3]),
    rand(3, 1),
    rand(16, 2),
    rand(17, 3),
    rand(1003, 4),
    rand(100003, 5),
    sparse,
    ordered,
    new Float32Array(33).fill(-0),
    Float32Array.from({ length: 21 }, (_, i) => (i === 18 ? NaN : i)),
    Float32Array.from({ length: 21 }, (_, i) => (i === 2 ? 2e38 : i)),
  ];
}

for (const backend of ["wasm", "cpu"] as const) {
  Deno.test(`${backend}: the sum-of-squares kernel gives tf.sum(tf.square(x))'s bits, zeros skipped or not`, async () => {
    await initBackend(backend);
    const xs = squaresCases().map((d) => tf.tensor(d));
    const before = tf.memory().numTensors;
    const got = tf.engine().runKernel(
      OPTIMIZER_KERNELS.sumSquares,
      xs as unknown as tf.NamedTensorMap,
    ) as tf.Tensor[];
    const want = tf.tidy(() => xs.map((x) => tf.sum(tf.square(x))));
    assert.equal(got.length, xs.length);
    got.forEach((g, i) => {
      assert.deepEqual(g.shape, []);
      assert.ok(
        Object.is(g.dataSync()[0], want[i].dataSync()[0]),
        `case ${i}: ${g.dataSync()[0]} != ${want[i].dataSync()[0]}`,
      );
    });
    assert.ok(Number.isNaN(got[9].dataSync()[0]) && got[10].dataSync()[0] === Infinity);
    if (backend === "wasm") assert.equal(got[7].dataSync()[0], 2 ** 24, "not summed in index order");
    tf.dispose([...got, ...want]);
    // An empty tensor's sum is 0 (tfjs-wasm's own Sum returns whatever its output held).
    const empty = tf.tensor(new Float32Array(0));
    const [zero] = tf.engine().runKernel(
      OPTIMIZER_KERNELS.sumSquares,
      [empty] as unknown as tf.NamedTensorMap,
    ) as tf.Tensor[];
    assert.ok(Object.is(zero.dataSync()[0], 0));
    tf.dispose([empty, zero]);
    assert.equal(tf.memory().numTensors, before);
    assert.throws(
      () =>
        tf.engine().runKernel(
          OPTIMIZER_KERNELS.sumSquares,
          [tf.zeros([2], "int32")] as unknown as tf.NamedTensorMap,
        ),
      /int32 tensor, not float32/,
    );
    tf.dispose(xs);
  });

  Deno.test(`${backend}: globalNorm through the fused kernel equals the tfjs ops' norm`, async () => {
    await initBackend(backend);
    const grads = new Map(squaresCases().slice(0, 9).map((d, i) => [`p${i}`, tf.tensor(d)]));
    assert.equal(await globalNorm(grads), await globalNorm(grads, true));
    tf.dispose([...grads.values()]);
  });
}
