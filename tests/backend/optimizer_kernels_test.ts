import assert from "node:assert/strict";
import { ADAMW_SOURCE_SHA256 } from "../../lib/backend/adamw_wasm.ts";
import { adamwWasm, OPTIMIZER_KERNELS } from "../../lib/backend/optimizer_kernels.ts";
import { initBackend, tf } from "../../lib/tf.ts";
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
