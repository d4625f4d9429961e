import assert from "node:assert/strict";
import { initBackend, tf } from "../../lib/tf.ts";
import { values } from "../tensors.ts";

Deno.test("wasm SplitV replacement splits any axis like the cpu backend", async () => {
  const cases: [number[], number | number[], number][] = [[[6, 4], 3, 0], [[2, 6, 3], [1, 2, 3], 1], [
    [2, 3, 4],
    2,
    -1,
  ]];
  for (const [shape, splits, axis] of cases) {
    const data = values(shape.reduce((a, b) => a * b, 1), 18);
    const run = async (backend: "cpu" | "wasm") => {
      await initBackend(backend);
      return tf.tidy(() =>
        tf.split(tf.tensor(data, shape), splits, axis).map((t) => [t.shape, Array.from(t.dataSync())])
      );
    };
    assert.deepEqual(await run("wasm"), await run("cpu"), `split [${shape}] by ${splits} on axis ${axis}`);
  }
});

Deno.test("wasm: Identity shares the buffer, gather copies rows and rejects bad ids", async () => {
  await initBackend("wasm");
  tf.tidy(() => {
    const x = tf.tensor([1, 2, 3, 4], [2, 2]);
    const y = tf.clone(x); // the Identity kernel
    // deno-lint-ignore no-explicit-any
    const backend = tf.backend() as any;
    assert.equal(
      backend.getMemoryOffset(y.dataId),
      backend.getMemoryOffset(x.dataId),
      "the clone shares the buffer",
    );
    x.dispose();
    assert.deepEqual(Array.from(y.dataSync()), [1, 2, 3, 4], "the clone outlives the original");
    const table = tf.tensor([[0, 1], [10, 11], [20, 21]]);
    const got = tf.gather(table, tf.tensor([2, 0, 2], [3], "int32"));
    assert.deepEqual(got.arraySync(), [[20, 21], [0, 1], [20, 21]]);
    assert.throws(() => tf.gather(table, tf.tensor([3], [1], "int32")), /index 3 at position 0 is outside/);
    // Other gathers (axis 1) still go to the stock kernel.
    assert.deepEqual(tf.gather(table, tf.tensor([1], [1], "int32"), 1).arraySync(), [[1], [11], [21]]);
  });
});
