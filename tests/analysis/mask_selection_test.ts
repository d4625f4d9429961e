import assert from "node:assert/strict";
import type { TensorMap } from "../../lib/bert/safetensors.ts";
import { countMask, readMask, writeMask } from "../../lib/tuning/mask_file.ts";
import {
  combineMasks,
  countForPct,
  crossTaskMask,
  describeMask,
  randomMask,
  topMask,
} from "../../lib/analysis/mask_selection.ts";
import { tempDir } from "../env.ts";

const E = "bert.embeddings.LayerNorm";
const A0 = "bert.encoder.layer.0.attention.output.LayerNorm";
const O0 = "bert.encoder.layer.0.output.LayerNorm";
const O1 = "bert.encoder.layer.1.output.LayerNorm";
const t = (...v: number[]) => ({ shape: [v.length], data: new Float32Array(v) });

/** 8 LayerNorm tensors of 5 elements (40 candidates) plus a non-LayerNorm tensor with huge scores. */
function fisher(): TensorMap {
  return new Map([
    [`${E}.weight`, t(1, 2, 3, 4, 5)],
    [`${E}.bias`, t(0, 0, 0, 0, 0)],
    [`${A0}.weight`, t(10, 0, 0, 0, 0)],
    [`${A0}.bias`, t(0, 9, 0, 0, 0)],
    [`${O0}.weight`, t(8, 8, 0, 0, 0)],
    [`${O0}.bias`, t(0, 0, 0, 0, 7)],
    [`${O1}.weight`, t(6, 0, 0, 0, 0)],
    [`${O1}.bias`, t(0, 0, 0, 0, 0)],
    ["bert.encoder.layer.0.output.dense.bias", t(100, 100, 100, 100, 100)],
  ]);
}

const ones = (m: TensorMap) =>
  [...m].flatMap(([name, x]) => [...x.data].flatMap((v, i) => (v ? [`${name}[${i}]`] : [])));

Deno.test("topMask: global top-k% of LayerNorm elements, other parameters never selected", () => {
  const m = topMask(fisher(), 20); // 20% of 40 = 8
  assert.equal(countMask(m), 8);
  assert.deepEqual(
    ones(m).sort(),
    [
      `${E}.weight[3]`,
      `${E}.weight[4]`,
      `${A0}.bias[1]`,
      `${A0}.weight[0]`,
      `${O0}.bias[4]`,
      `${O0}.weight[0]`,
      `${O0}.weight[1]`,
      `${O1}.weight[0]`,
    ].sort(),
  );
  assert.ok(!m.has("bert.encoder.layer.0.output.dense.bias"));
  assert.ok(!m.has(`${O1}.bias`), "tensors with no selected element are left out");
});

Deno.test("topMask: ties go to the earlier parameter (names.ts order), then the lower index", () => {
  const f: TensorMap = new Map([[`${O0}.weight`, t(1, 1, 1)], [`${E}.bias`, t(1, 1, 1)]]);
  const m = topMask(f, 50); // 3 of 6
  assert.deepEqual(ones(m), [`${E}.bias[0]`, `${E}.bias[1]`, `${E}.bias[2]`]);
  assert.deepEqual(ones(topMask(f, 50)), ones(m));
});

Deno.test("topMask per module and per layer", () => {
  const perModule = topMask(fisher(), 20, { per: "module" }); // 1 of 5 in each of 8 tensors
  assert.equal(countMask(perModule), 8);
  for (const x of perModule.values()) assert.equal(countMask(x), 1);
  assert.equal(perModule.size, 8);
  // embeddings 10 -> 2, layer 0 20 -> 4, layer 1 10 -> 2 (its second pick is a zero tie: lowest index)
  const perLayer = topMask(fisher(), 20, { per: "layer" });
  const d = describeMask(perLayer);
  assert.deepEqual(d.byLayer, { embeddings: 2, 0: 4, 1: 2 });
  assert.deepEqual(
    ones(perLayer).filter((s) => !s.startsWith("bert.encoder.layer.0")).sort(),
    [
      `${E}.weight[3]`,
      `${E}.weight[4]`,
      `${O1}.weight[0]`,
      `${O1}.weight[1]`,
    ].sort(),
  );
});

Deno.test("randomMask: same size per group, seeded, only candidates", () => {
  const a = randomMask(fisher(), 20, 1), b = randomMask(fisher(), 20, 1), c = randomMask(fisher(), 20, 2);
  assert.equal(countMask(a), 8);
  assert.deepEqual(ones(a), ones(b));
  assert.notDeepEqual(ones(a), ones(c));
  assert.ok(!a.has("bert.encoder.layer.0.output.dense.bias"));
  const shapes = new Map([[`${O0}.weight`, [5]], [`${O1}.weight`, [5]]]);
  const perModule = randomMask(shapes, 40, 3, { per: "module" });
  assert.deepEqual([...perModule.values()].map(countMask), [2, 2]);
});

Deno.test("combineMasks: union and intersection", () => {
  const a: TensorMap = new Map([[`${O0}.weight`, t(1, 1, 0)], [`${E}.bias`, t(1, 0, 0)]]);
  const b: TensorMap = new Map([[`${O0}.weight`, t(0, 1, 1)]]);
  assert.deepEqual(
    ones(combineMasks([a, b], "union")).sort(),
    [`${E}.bias[0]`, `${O0}.weight[0]`, `${O0}.weight[1]`, `${O0}.weight[2]`].sort(),
  );
  assert.deepEqual(ones(combineMasks([a, b], "intersect")), [`${O0}.weight[1]`]);
  assert.throws(() => combineMasks([a, new Map([[`${O0}.weight`, t(1)]])], "union"), /shapes/);
});

Deno.test("crossTaskMask: union of the other tasks, larger than k%; trimmed variant is exactly k%", () => {
  const f1 = fisher();
  const f2: TensorMap = new Map(
    [...fisher()].map(([n, x]) => [n, { shape: x.shape, data: x.data.map((v, i) => (i === 2 ? 50 : v)) }]),
  );
  const held = fisher();
  const fishers = new Map([["A", f1], ["B", f2], ["C", held]]);
  const union = crossTaskMask(fishers, "C", 20);
  assert.deepEqual(union.tasks, ["A", "B"]);
  assert.equal(union.candidates, 40);
  assert.equal(union.target, 8);
  assert.ok(union.size > 8, `union size ${union.size}`);
  const trimmed = crossTaskMask(fishers, "C", 20, { trim: true });
  assert.equal(trimmed.size, 8);
  // every trimmed element lies in the union
  const u = new Set(ones(union.mask));
  for (const s of ones(trimmed.mask)) assert.ok(u.has(s), s);
  assert.throws(() => crossTaskMask(fishers, "D", 20), /held-out task "D"/);
});

Deno.test("describeMask counts per layer, gamma/beta and LayerNorm type", () => {
  const d = describeMask(topMask(fisher(), 20));
  assert.equal(d.selected, 8);
  assert.deepEqual(d.byKind, { weight: 6, bias: 2 });
  assert.deepEqual(d.byLnType, { embeddings: 2, attention: 2, output: 4, other: 0 });
  assert.deepEqual(d.byLayer, { embeddings: 2, 0: 5, 1: 1 });
  assert.equal(d.byTensor[0].name, `${E}.weight`);
  assert.equal(countForPct(1280, 10), 128);
});

Deno.test("a selected mask round-trips through lib/tuning/mask_file.ts", async () => {
  const [dir, cleanup] = await tempDir();
  try {
    const m = topMask(fisher(), 20);
    await writeMask(`${dir}/m.safetensors`, m, { method: "fisher", pct: 20 });
    const back = await readMask(`${dir}/m.safetensors`);
    assert.deepEqual(ones(back.masks).sort(), ones(m).sort());
    assert.equal(back.info.pct, 20);
  } finally {
    await cleanup();
  }
});
