import { batchFromEncoded } from "../../lib/bert/batch.ts";
import assert from "node:assert/strict";
import { join } from "node:path";
import { initBackend, tf } from "../../lib/tf.ts";
import { BertClassifier } from "../../lib/bert/model.ts";
import { readConfig } from "../../lib/bert/config.ts";
import { readSafetensors, type TensorMap } from "../../lib/bert/safetensors.ts";
import { mulberry32, normal } from "../../lib/util/random.ts";
import {
  aggregateFisher,
  computeFisher,
  type FisherOptions,
  type LabeledBatch,
  rankComponentsByFisher,
} from "../../lib/analysis/fisher_information.ts";

const GOLDEN = join(import.meta.dirname!, "..", "fixtures", "golden");
const BACKENDS = ["cpu", "wasm"] as const;

interface Golden {
  rows: { input_ids: number[]; token_type_ids: number[]; attention_mask: number[] }[];
  cls: { labels: number[] };
  reg: { labels: number[] };
}

/** The golden model (3 classes or 1 output), optionally with tensors replaced. */
async function goldenModel(tag: "cls" | "reg", replace: TensorMap = new Map()) {
  const config = await readConfig(join(GOLDEN, "config.json"));
  const body = await readSafetensors(join(GOLDEN, "model.safetensors"));
  const head = await readSafetensors(join(GOLDEN, `head_${tag}.safetensors`));
  const data: Golden = JSON.parse(await Deno.readTextFile(join(GOLDEN, "golden.json")));
  const model = new BertClassifier(config, tag === "cls" ? 3 : 1, new Map([...body, ...head, ...replace]));
  return { model, data, head };
}

/** The golden rows repeated to `n` examples (lengths 8, 5 and 5+3 padding), labels cycled, in batches of 4. */
function goldenBatches(data: Golden, labels: number[], n: number): LabeledBatch[] {
  const rows = Array.from({ length: n }, (_, i) => data.rows[i % data.rows.length]);
  const out: LabeledBatch[] = [];
  for (let s = 0; s < n; s += 4) {
    const part = rows.slice(s, s + 4);
    out.push({
      batch: batchFromEncoded(
        part.map((r) => ({
          inputIds: r.input_ids,
          tokenTypeIds: r.token_type_ids,
          attentionMask: r.attention_mask,
        })),
      ),
      labels: part.map((_, j) => labels[(s + j) % labels.length]),
    });
  }
  return out;
}

/** Asserts |got - want| <= rtol * max|want| per tensor; returns the largest such relative error. */
function assertClose(got: TensorMap, want: TensorMap, rtol: number, what: string): number {
  assert.deepEqual([...got.keys()].sort(), [...want.keys()].sort(), `${what}: names`);
  let worst = 0;
  for (const [name, w] of want) {
    const g = got.get(name)!;
    assert.deepEqual(g.shape, w.shape, `${what} ${name}: shape`);
    const scale = Math.max(...w.data.map(Math.abs));
    for (let i = 0; i < w.data.length; i++) {
      const bound = rtol * scale + 1e-12;
      // (key biases have zero gradient in exact arithmetic: their Fisher is rounding noise, skipped here)
      if (scale > 1e-9) worst = Math.max(worst, Math.abs(g.data[i] - w.data[i]) / scale);
      assert.ok(
        Math.abs(g.data[i] - w.data[i]) <= bound,
        `${what} ${name}[${i}]: got ${g.data[i]}, want ${w.data[i]}`,
      );
    }
  }
  return worst;
}

const opts = (o: Partial<FisherOptions>): FisherOptions => ({
  params: "elementwise",
  examples: 7,
  seed: 0,
  ...o,
});

Deno.test("batched per-example Fisher equals the one-example-at-a-time loop", async () => {
  for (const backend of BACKENDS) {
    await initBackend(backend);
    for (const tag of ["cls", "reg"] as const) {
      const { model, data } = await goldenModel(tag);
      const labels = data[tag].labels;
      for (const mode of ["true", "sampled"] as const) {
        const o = { labels: mode, seed: 3 };
        const before = tf.memory().numTensors;
        const batched = await computeFisher(
          model,
          goldenBatches(data, labels, 7),
          opts({ ...o, method: "batched", batchSize: 3 }),
        );
        assert.equal(tf.memory().numTensors, before, `${backend} ${tag}: tensors leaked`);
        const loop = await computeFisher(
          model,
          goldenBatches(data, labels, 7),
          opts({ ...o, method: "loop" }),
        );
        assert.equal(batched.size, 2 * 5 + 2 * 6 + 2); // LayerNorm γ/β x5, 6 biases per layer x2, pooler + head
        // float32 sums in another order (batch of 3 vs 1, other padding): ~1e-6 relative on cpu and wasm
        const worst = assertClose(batched, loop, 5e-6, `${backend} ${tag} ${mode}`);
        if (Deno.env.get("NORMTUNE_VERBOSE")) {
          console.error(`${backend} ${tag} ${mode}: worst relative ${worst}`);
        }
        // not all zero: the test would pass trivially otherwise
        assert.ok([...batched.values()].every((t) => t.data.some((v) => v > 0)));
      }
      model.dispose();
    }
  }
});

Deno.test("Fisher of the head has its closed form when the pooler output is a known constant", async () => {
  // pooler weight 0, bias c: every example's pooled vector is h = tanh(c), so logits = W h + b for all.
  const c = Float32Array.from({ length: 16 }, (_, i) => (i - 7.5) / 5);
  const h = Array.from(c, Math.tanh);
  const pooler: TensorMap = new Map([
    ["bert.pooler.dense.weight", { shape: [16, 16], data: new Float32Array(256) }],
    ["bert.pooler.dense.bias", { shape: [16], data: c }],
  ]);
  await initBackend("cpu");
  for (const tag of ["cls", "reg"] as const) {
    const { model, data, head } = await goldenModel(tag, pooler);
    const W = head.get("classifier.weight")!.data, b = head.get("classifier.bias")!.data;
    const k = tag === "cls" ? 3 : 1;
    const logits = Array.from(
      { length: k },
      (_, r) => b[r] + h.reduce((s, hj, j) => s + W[r * 16 + j] * hj, 0),
    );
    const labels = data[tag].labels, n = 5;
    // per-example gradient of -log p w.r.t. the logits: softmax - onehot, or pred - y
    const dLogit = (y: number) => {
      if (k === 1) return [logits[0] - y];
      const m = Math.max(...logits), e = logits.map((v) => Math.exp(v - m)), z = e.reduce((a, x) => a + x, 0);
      return e.map((v, r) => v / z - (r === y ? 1 : 0));
    };
    const fb = new Array(k).fill(0);
    for (let i = 0; i < n; i++) dLogit(labels[i % labels.length]).forEach((g, r) => (fb[r] += (g * g) / n));
    for (const params of ["all", "elementwise"] as const) {
      const f = await computeFisher(model, goldenBatches(data, labels, n), opts({ params, examples: n }));
      const gotB = f.get("classifier.bias")!.data;
      for (let r = 0; r < k; r++) {
        assert.ok(Math.abs(gotB[r] - fb[r]) <= 1e-5 * fb[r], `${tag} ${params} bias ${r}`);
      }
      if (params === "all") {
        const gotW = f.get("classifier.weight")!.data;
        for (let r = 0; r < k; r++) {
          for (let j = 0; j < 16; j++) {
            const want = fb[r] * h[j] * h[j];
            assert.ok(Math.abs(gotW[r * 16 + j] - want) <= 1e-5 * want + 1e-9, `${tag} W[${r},${j}]`);
          }
        }
        // The constant pooled vector does not depend on the encoder: its Fisher is exactly zero.
        assert.ok(f.get("bert.encoder.layer.0.output.LayerNorm.weight")!.data.every((v) => v === 0));
      }
    }
    model.dispose();
  }
});

Deno.test("loop Fisher of one example equals the squared gradient of the model's own loss", async () => {
  await initBackend("cpu");
  const { model, data } = await goldenModel("cls");
  const [only] = goldenBatches(data, [1], 1);
  const f = await computeFisher(model, [only], opts({ params: "all", examples: 1 }));
  const names = [...model.params.keys()];
  const { grads } = tf.variableGrads(() => model.loss(model.logits(only.batch), [1]), [
    ...model.params.values(),
  ]);
  const byVar = new Map(names.map((n) => [model.params.get(n)!.name, n]));
  for (const [v, g] of Object.entries(grads)) {
    const name = byVar.get(v)!;
    const sq = (g.dataSync() as Float32Array).map((x) => x * x);
    assertClose(new Map([[name, f.get(name)!]]), new Map([[name, { shape: g.shape, data: sq }]]), 1e-5, name);
  }
  tf.dispose(Object.values(grads));
  model.dispose();
});

Deno.test("sampled labels: seeded draws from the model, closed form for regression's bias", async () => {
  await initBackend("cpu");
  const { model, data } = await goldenModel("reg");
  const n = 6;
  const f = await computeFisher(
    model,
    goldenBatches(data, data.reg.labels, n),
    opts({ examples: n, labels: "sampled", seed: 5 }),
  );
  // y = pred + ε, so the bias gradient pred - y = -ε: Fisher = mean ε² over the seeded draws
  const rng = mulberry32(5);
  let want = 0;
  for (let i = 0; i < n; i++) want += normal(rng) ** 2 / n;
  assert.ok(
    Math.abs(f.get("classifier.bias")!.data[0] - want) < 1e-5 * want,
    `${f.get("classifier.bias")!.data[0]} vs ${want}`,
  );
  model.dispose();

  const cls = await goldenModel("cls");
  const run = (seed: number, labels: "true" | "sampled") =>
    computeFisher(
      cls.model,
      goldenBatches(cls.data, cls.data.cls.labels, 12),
      opts({ examples: 12, labels, seed }),
    );
  const a = await run(1, "sampled"),
    b = await run(1, "sampled"),
    c = await run(2, "sampled"),
    t = await run(1, "true");
  const bias = (m: TensorMap) => [...m.get("classifier.bias")!.data];
  assert.deepEqual(bias(a), bias(b));
  assert.notDeepEqual(bias(a), bias(c));
  assert.notDeepEqual(bias(a), bias(t));
  cls.model.dispose();
});

Deno.test("computeFisher: too few examples and weight matrices in the batched method are errors", async () => {
  await initBackend("cpu");
  const { model, data } = await goldenModel("cls");
  await assert.rejects(
    () => computeFisher(model, goldenBatches(data, [0], 3), opts({ examples: 4 })),
    /only 3/,
  );
  await assert.rejects(
    () =>
      computeFisher(
        model,
        goldenBatches(data, [0], 3),
        opts({ examples: 3, params: "all", method: "batched" }),
      ),
    /element-wise/,
  );
  model.dispose();
});

Deno.test("aggregateFisher and rankComponentsByFisher", () => {
  const t = (...v: number[]) => ({ shape: [v.length], data: new Float32Array(v) });
  const f: TensorMap = new Map([
    ["bert.encoder.layer.0.output.LayerNorm.weight", t(1, 3)],
    ["bert.encoder.layer.1.output.LayerNorm.weight", t(2, 2)],
    ["bert.encoder.layer.1.output.LayerNorm.bias", t(0, 0)],
    ["bert.encoder.layer.0.attention.self.query.bias", t(1, 1)],
    ["classifier.bias", t(100, 100)],
  ]);
  const records = aggregateFisher(f);
  assert.equal(records.length, 5);
  const r0 = records.find((r) => r.component === "output_layernorm" && r.layer === 0)!;
  assert.deepEqual([r0.n, r0.mean, r0.total, r0.max], [2, 2, 4, 3]);
  const ranked = rankComponentsByFisher(records);
  assert.deepEqual(ranked.map((r) => r.component), ["output_layernorm", "query"]); // classifier excluded
  assert.deepEqual([ranked[0].n, ranked[0].total, ranked[0].mean, ranked[0].max], [6, 8, 8 / 6, 3]);
  const byKind = rankComponentsByFisher(records, { by: "component+kind" });
  assert.deepEqual(byKind.map((r) => `${r.component}/${r.kind}`), [
    "output_layernorm/weight",
    "query/bias",
    "output_layernorm/bias",
  ]);
  assert.equal(rankComponentsByFisher(records, { by: "group", exclude: [] })[0].component, "classifier");
});
