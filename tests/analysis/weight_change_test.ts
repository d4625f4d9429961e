import assert from "node:assert/strict";
import type { TensorMap } from "../../lib/bert/safetensors.ts";
import { computeChange, rankComponents } from "../../lib/analysis/weight_change.ts";

const t = (...v: number[]) => ({ shape: [v.length], data: new Float32Array(v) });

function maps(): [TensorMap, TensorMap] {
  const base: TensorMap = new Map([
    ["bert.encoder.layer.0.output.LayerNorm.weight", t(1, 1, 1, 1)],
    ["bert.encoder.layer.1.output.LayerNorm.weight", t(1, -1)],
    ["bert.encoder.layer.0.output.dense.bias", t(2, -2)],
    ["bert.embeddings.LayerNorm.weight", t(0, 0)],
    ["cls.predictions.bias", t(5)], // an MLM head in the base: ignored
  ]);
  const tuned: TensorMap = new Map([
    ["bert.encoder.layer.0.output.LayerNorm.weight", t(1.5, 0.5, 1, 1)], // |Δ| mean 0.25
    ["bert.encoder.layer.1.output.LayerNorm.weight", t(2, -1)], // |Δ| mean 0.5
    ["bert.encoder.layer.0.output.dense.bias", t(2.1, -2.1)], // |Δ| mean 0.1
    ["bert.embeddings.LayerNorm.weight", t(0.2, 0)], // base all zero: relative null
    ["classifier.bias", t(3, -3)], // fresh head: measured from zero, kept in records
  ]);
  return [base, tuned];
}

Deno.test("computeChange: mean |Δ|, mean |θ0| and relative change per component x layer x kind", () => {
  const [base, tuned] = maps();
  const records = computeChange(base, tuned);
  assert.deepEqual(records.map((r) => `${r.component}/${r.layer}/${r.kind}`), [
    "embeddings_layernorm/null/weight",
    "output_dense/0/bias",
    "output_layernorm/0/weight",
    "output_layernorm/1/weight",
    "classifier/null/bias",
  ]);
  const ln0 = records[2];
  assert.equal(ln0.n, 4);
  assert.ok(Math.abs(ln0.meanAbsChange - 0.25) < 1e-7);
  assert.equal(ln0.meanAbsBase, 1);
  assert.ok(Math.abs(ln0.relativeChange! - 0.25) < 1e-7);
  assert.ok(Math.abs(records[1].relativeChange! - 0.05) < 1e-6);
  assert.equal(records[0].relativeChange, null);
  assert.equal(records[4].baseMissing, true);
  assert.equal(records[4].meanAbsChange, 3);
});

Deno.test("rankComponents: n-weighted over layers, descending, classifier excluded", () => {
  const [base, tuned] = maps();
  const ranked = rankComponents(computeChange(base, tuned));
  assert.deepEqual(ranked.map((r) => r.component), [
    "output_layernorm",
    "embeddings_layernorm",
    "output_dense",
  ]);
  // (0.25*4 + 0.5*2) / 6
  assert.ok(Math.abs(ranked[0].meanAbsChange - 2 / 6) < 1e-7);
  assert.equal(ranked[0].n, 6);
  const byGroup = rankComponents(computeChange(base, tuned), { by: "group" });
  assert.deepEqual(byGroup.map((r) => r.component), ["layernorm", "ffn"]);
  const rel = rankComponents(computeChange(base, tuned), { sortBy: "relativeChange", exclude: [] });
  assert.equal(rel.at(-1)!.relativeChange, null); // null sorts last
  // a head measured from zero never enters a ranking, even when not excluded
  assert.ok(!rel.some((r) => r.component === "classifier"));
  base.set("classifier.bias", t(1, -1));
  const withHead = rankComponents(computeChange(base, tuned), { exclude: [] });
  assert.equal(withHead[0].component, "classifier");
  assert.ok(!rankComponents(computeChange(base, tuned)).some((r) => r.component === "classifier"));
});

Deno.test("computeChange: shape mismatch and a missing body tensor are errors", () => {
  const [base, tuned] = maps();
  tuned.set("bert.encoder.layer.0.output.dense.bias", t(1, 2, 3));
  assert.throws(() => computeChange(base, tuned), /output\.dense\.bias.*shape/);
  const [base2, tuned2] = maps();
  base2.delete("bert.encoder.layer.1.output.LayerNorm.weight");
  assert.throws(() => computeChange(base2, tuned2), /layer\.1\.output\.LayerNorm\.weight.*not in the base/);
});
