import assert from "node:assert/strict";
import { deriveSeed, evalBatches, paddingShare, trainBatches } from "../../lib/tuning/batches.ts";
import { mulberry32 } from "../../lib/util/random.ts";

const rng = mulberry32(7);
const lengths = Array.from({ length: 1003 }, () => 5 + Math.floor(rng() * 120));

Deno.test("every example appears exactly once per epoch", () => {
  for (const epoch of [0, 1, 2]) {
    const batches = trainBatches(lengths, { batchSize: 16, seed: 3, epoch, chunkBatches: 10 });
    assert.equal(batches.length, Math.ceil(1003 / 16));
    const seen = batches.flat().sort((a, b) => a - b);
    assert.deepEqual(seen, lengths.map((_, i) => i));
    assert.ok(batches.every((b) => b.length >= 1 && b.length <= 16));
  }
});

Deno.test("order is a pure function of (seed, epoch)", () => {
  const a = trainBatches(lengths, { batchSize: 16, seed: 3, epoch: 1 });
  assert.deepEqual(trainBatches(lengths, { batchSize: 16, seed: 3, epoch: 1 }), a);
  assert.notDeepEqual(trainBatches(lengths, { batchSize: 16, seed: 3, epoch: 2 }), a);
  assert.notDeepEqual(trainBatches(lengths, { batchSize: 16, seed: 4, epoch: 1 }), a);
});

Deno.test("bucketing cuts padding well below a plain shuffle", () => {
  const bucketed = paddingShare(lengths, trainBatches(lengths, { batchSize: 16, seed: 1, epoch: 0 }));
  const plain = paddingShare(
    lengths,
    trainBatches(lengths, { batchSize: 16, seed: 1, epoch: 0, chunkBatches: 1 }),
  );
  assert.ok(bucketed < 0.1, `bucketed padding ${bucketed}`);
  assert.ok(plain > 0.3, `plain padding ${plain}`);
});

Deno.test("eval batches are sorted by length and cover everything", () => {
  const batches = evalBatches(lengths, 64);
  const flat = batches.flat();
  assert.equal(flat.length, lengths.length);
  assert.equal(new Set(flat).size, lengths.length);
  for (let i = 1; i < flat.length; i++) assert.ok(lengths[flat[i - 1]] <= lengths[flat[i]]);
  assert.throws(() => evalBatches(lengths, 0), /batch size/);
});

Deno.test("derived seeds differ for nearby inputs and are 32-bit", () => {
  const seeds = new Set<number>();
  for (let s = 0; s < 50; s++) for (let e = 0; e < 20; e++) seeds.add(deriveSeed(s, e));
  assert.equal(seeds.size, 1000);
  for (const s of seeds) assert.ok(Number.isInteger(s) && s >= 0 && s < 2 ** 32);
});
