import assert from "node:assert/strict";
import { join } from "node:path";
import { loadCheckpoint } from "../../lib/bert/checkpoint.ts";
import { randomCheckpoint, randomWeights } from "../../lib/bert/init.ts";
import { parameterShapes, WORD_EMBEDDINGS } from "../../lib/bert/names.ts";
import { ROOT } from "../../lib/util/paths.ts";

const GOLDEN = join(ROOT, "tests", "fixtures", "golden");
const ck = await loadCheckpoint(GOLDEN, { numLabels: 2, seed: 7, quiet: true });
const config = ck.config;

const same = (a: Float32Array, b: Float32Array) =>
  a.length === b.length && a.every((x, i) => Object.is(x, b[i]));

Deno.test("randomWeights: BERT's init (N(0, 0.02) weights, zero biases, LayerNorm 1/0, zero padding row)", () => {
  const w = randomWeights(config, 2, 7);
  assert.deepEqual([...w.keys()], [...parameterShapes(config, 2).keys()]);
  for (const [name, t] of w) {
    assert.deepEqual(t.shape, parameterShapes(config, 2).get(name));
    if (name.includes(".LayerNorm.")) {
      assert.ok(t.data.every((x) => x === (name.endsWith(".weight") ? 1 : 0)), name);
    } else if (name.endsWith(".bias")) {
      assert.ok(t.data.every((x) => x === 0), name);
    }
  }
  const emb = w.get(WORD_EMBEDDINGS)!.data, h = config.hidden_size;
  assert.ok(emb.subarray(0, h).every((x) => x === 0), "the [PAD] row (pad_token_id 0) is zero");
  // Every weight matrix together: mean ~0, std ~ initializer_range (0.02).
  const all = [...w].filter(([n]) => n.endsWith(".weight") && !n.includes("LayerNorm"))
    .flatMap(([n, t]) => [...(n === WORD_EMBEDDINGS ? t.data.subarray(h) : t.data)]);
  const mean = all.reduce((a, b) => a + b, 0) / all.length;
  const std = Math.sqrt(all.reduce((a, b) => a + (b - mean) ** 2, 0) / all.length);
  assert.ok(all.length > 5000);
  assert.ok(Math.abs(mean) < 0.002, `mean ${mean}`);
  assert.ok(Math.abs(std - 0.02) < 0.001, `std ${std}`);
});

Deno.test("randomWeights: deterministic per seed, other seeds and the checkpoint differ; same head as the loader", () => {
  const a = randomWeights(config, 2, 7), b = randomWeights(config, 2, 7), c = randomWeights(config, 2, 8);
  for (const [name, t] of a) {
    assert.ok(same(t.data, b.get(name)!.data), `${name}: same seed, same values`);
    const zeroOrOne = name.endsWith(".bias") || name.includes(".LayerNorm.");
    assert.equal(same(t.data, c.get(name)!.data), zeroOrOne, `${name}: another seed`);
    if (!name.startsWith("classifier.") && !name.endsWith(".bias") && !name.includes(".LayerNorm.")) {
      assert.ok(!same(t.data, ck.tensors.get(name)!.data), `${name} differs from the checkpoint`);
    }
  }
  // The golden checkpoint has no classifier: the loader's fresh head (seed 7) is the random init's.
  assert.ok(ck.initialized.includes("classifier.weight"));
  assert.ok(same(a.get("classifier.weight")!.data, ck.tensors.get("classifier.weight")!.data));

  const r = randomCheckpoint(ck, 7);
  assert.deepEqual(r.initialized, [...a.keys()]);
  assert.equal(r.config, ck.config);
  assert.ok(same(r.tensors.get(WORD_EMBEDDINGS)!.data, a.get(WORD_EMBEDDINGS)!.data));
});
