import { batchFromEncoded } from "../../lib/bert/batch.ts";
import assert from "node:assert/strict";
import { join } from "node:path";
import { loadCheckpoint, saveCheckpoint } from "../../lib/bert/checkpoint.ts";
import { type TensorMap, writeSafetensors } from "../../lib/bert/safetensors.ts";
import { main } from "../../lib/cli/main.ts";
import { writeDelta } from "../../lib/tuning/delta.ts";
import { countMask, readMask } from "../../lib/tuning/mask_file.ts";
import { ROOT } from "../../lib/util/paths.ts";
import { sharedGlue, sharedModel, tempDir } from "../env.ts";
import { initBackend } from "../../lib/tf.ts";
import { BertClassifier } from "../../lib/bert/model.ts";
import { readSafetensors, readSafetensorsWithMetadata } from "../../lib/bert/safetensors.ts";
import { computeFisher } from "../../lib/analysis/fisher_information.ts";

const GOLDEN = join(ROOT, "tests", "fixtures", "golden");
const OUT_LN = "bert.encoder.layer.1.output.LayerNorm.weight";
const DENSE = "bert.encoder.layer.0.output.dense.weight";

/** Runs the CLI, capturing stdout; fails the test on a non-zero exit. */
async function cli(args: string[]): Promise<string> {
  const lines: string[] = [];
  const log = console.log;
  console.log = (...xs: unknown[]) => lines.push(xs.join(" "));
  let code;
  try {
    code = await main(args);
  } finally {
    console.log = log;
  }
  assert.equal(code, 0, `normtune ${args.join(" ")} exited ${code}`);
  return lines.join("\n");
}

/** The golden checkpoint with the output LayerNorm of layer 1 moved by 0.5 and one dense weight by 0.01. */
async function tunedTensors(): Promise<TensorMap> {
  const ck = await loadCheckpoint(GOLDEN, { numLabels: 2, quiet: true });
  const tensors: TensorMap = new Map(
    [...ck.tensors].map(([n, t]) => [n, { shape: t.shape, data: Float32Array.from(t.data) }]),
  );
  tensors.get(OUT_LN)!.data.forEach((_, i, d) => (d[i] += 0.5));
  tensors.get(DENSE)!.data.forEach((_, i, d) => (d[i] += 0.01));
  return tensors;
}

Deno.test("normtune change: tuned folder and base + delta agree; output LayerNorm ranks first", async () => {
  const [dir, cleanup] = await tempDir();
  try {
    const tensors = await tunedTensors();
    const config = (await loadCheckpoint(GOLDEN, { numLabels: 2, quiet: true })).config;
    await saveCheckpoint(join(dir, "tuned"), { config, numLabels: 2, tensors });
    const delta: TensorMap = new Map(
      [OUT_LN, DENSE, "classifier.weight", "classifier.bias"].map((n) => [n, tensors.get(n)!]),
    );
    await writeDelta(join(dir, "delta.safetensors"), delta, {
      kind: "delta",
      task: "RTE",
      mode: "test",
      numLabels: 2,
      baseModel: GOLDEN,
      trained: [OUT_LN, DENSE],
    });
    const stdout = await cli([
      "change",
      "--base",
      GOLDEN,
      "--tuned",
      join(dir, "tuned"),
      "--out",
      join(dir, "a.json"),
    ]);
    assert.match(stdout, /output_layernorm/);
    await cli([
      "change",
      "--base",
      GOLDEN,
      "--delta",
      join(dir, "delta.safetensors"),
      "--out",
      join(dir, "b.json"),
    ]);
    const a = JSON.parse(await Deno.readTextFile(join(dir, "a.json")));
    const b = JSON.parse(await Deno.readTextFile(join(dir, "b.json")));
    assert.deepEqual(a.records, b.records);
    assert.equal(a.ranking[0].component, "output_layernorm");
    // layer 1's output LN gamma (16 elements) moved 0.5 each; the component has 64 elements: 8 / 64
    assert.ok(Math.abs(a.ranking[0].meanAbsChange - 0.125) < 1e-6, `${a.ranking[0].meanAbsChange}`);
    const dense = a.records.find((r: { component: string; layer: number; kind: string }) =>
      r.component === "output_dense" && r.layer === 0 && r.kind === "weight"
    );
    assert.ok(Math.abs(dense.meanAbsChange - 0.01) < 1e-6);
    const head = a.records.find((r: { component: string }) => r.component === "classifier");
    assert.equal(head.baseMissing, true);
    assert.ok(!a.ranking.some((r: { component: string }) => r.component === "classifier"));
  } finally {
    await cleanup();
  }
});

Deno.test("normtune change: usage errors exit 2", async () => {
  const err = console.error;
  console.error = () => {};
  try {
    assert.equal(await main(["change", "--base", GOLDEN, "--out", "x.json"]), 2);
  } finally {
    console.error = err;
  }
});

/** A fake Fisher file over the golden model's LayerNorm tensors: score = position in a fixed order. */
async function fakeFisher(path: string, task: string, bump: number): Promise<void> {
  const ck = await loadCheckpoint(GOLDEN, { numLabels: 2, quiet: true });
  const f: TensorMap = new Map();
  let k = 0;
  for (const [name, t] of ck.tensors) {
    if (!name.includes(".LayerNorm.")) continue;
    f.set(name, { shape: t.shape, data: Float32Array.from(t.data, () => ((k++ * 7919 + bump) % 160) / 160) });
  }
  await writeSafetensors(path, f);
  await Deno.writeTextFile(path.replace(/\.safetensors$/, ".json"), JSON.stringify({ task }));
}

Deno.test("normtune mask: top-k%, random, union/intersect/trim write mask files with counts", async () => {
  const [dir, cleanup] = await tempDir();
  try {
    const f1 = join(dir, "rte.safetensors"), f2 = join(dir, "mrpc.safetensors");
    await fakeFisher(f1, "RTE", 0);
    await fakeFisher(f2, "MRPC", 13);
    // golden: hidden 16, 2 layers -> 5 LayerNorms x 2 x 16 = 160 candidates; 10% = 16
    const stdout = await cli(["mask", "--fisher", f1, "--top", "10", "--out", join(dir, "top.safetensors")]);
    assert.match(stdout, /16 of 160/);
    const top = await readMask(join(dir, "top.safetensors"));
    assert.equal(countMask(top.masks), 16);
    assert.equal(top.info.method, "fisher");
    assert.equal(top.info.task, "RTE");
    assert.equal(top.info.selected, 16);

    await cli([
      "mask",
      "--fisher",
      f1,
      "--top",
      "10",
      "--random",
      "--seed",
      "3",
      "--out",
      join(dir, "r.safetensors"),
    ]);
    const rnd = await readMask(join(dir, "r.safetensors"));
    assert.equal(countMask(rnd.masks), 16);
    assert.equal(rnd.info.seed, 3);

    await cli(["mask", "--fisher", f1, f2, "--top", "10", "--union", "--out", join(dir, "u.safetensors")]);
    await cli([
      "mask",
      "--fisher",
      f1,
      "--fisher",
      f2,
      "--top",
      "10",
      "--intersect",
      "--out",
      join(dir, "i.safetensors"),
    ]);
    await cli([
      "mask",
      "--fisher",
      f1,
      f2,
      "--top",
      "10",
      "--union",
      "--trim",
      "--out",
      join(dir, "t.safetensors"),
    ]);
    const u = countMask((await readMask(join(dir, "u.safetensors"))).masks);
    const i = countMask((await readMask(join(dir, "i.safetensors"))).masks);
    const t = countMask((await readMask(join(dir, "t.safetensors"))).masks);
    assert.ok(u > 16 && i < 16, `union ${u}, intersection ${i}`);
    assert.equal(u + i, 32); // |A ∪ B| + |A ∩ B| = |A| + |B|
    assert.equal(t, 16);

    await cli([
      "mask",
      "--fisher",
      f1,
      "--top",
      "25",
      "--per",
      "module",
      "--out",
      join(dir, "m.safetensors"),
    ]);
    const m = await readMask(join(dir, "m.safetensors"));
    assert.equal(m.masks.size, 10);
    for (const x of m.masks.values()) assert.equal(countMask(x), 4);
  } finally {
    await cleanup();
  }
});

interface GoldenRow {
  input_ids: number[];
  token_type_ids: number[];
  attention_mask: number[];
}

Deno.test("normtune fisher --inputs --head: same numbers as computeFisher on the same examples and head", async () => {
  const [dir, cleanup] = await tempDir();
  try {
    const golden = JSON.parse(await Deno.readTextFile(join(GOLDEN, "golden.json")));
    const rows: GoldenRow[] = golden.rows, labels: number[] = golden.cls.labels;
    const jsonl = rows.map((r, i) => JSON.stringify({ ...r, label: labels[i] })).join("\n") + "\n";
    await Deno.writeTextFile(join(dir, "in.jsonl"), jsonl);
    const head = join(GOLDEN, "head_cls.safetensors");
    const out = join(dir, "f.safetensors");
    // deno-fmt-ignore
    await cli(["fisher", "--model", GOLDEN, "--inputs", join(dir, "in.jsonl"), "--head", head, "--num-labels", "3",
      "--params", "layernorm", "--seed", "0", "--backend", "cpu", "--out", out]);
    const { tensors: got, metadata } = await readSafetensorsWithMetadata(out);
    assert.equal(JSON.parse(metadata.normtune).state, "pretrained");
    assert.equal(got.size, 10); // 5 LayerNorms x γ/β

    await initBackend("cpu");
    const ck = await loadCheckpoint(GOLDEN, { numLabels: 3, head: await readSafetensors(head), quiet: true });
    const model = new BertClassifier(ck.config, 3, ck.tensors);
    const batch = batchFromEncoded(
      rows.map((r) => ({
        inputIds: r.input_ids,
        tokenTypeIds: r.token_type_ids,
        attentionMask: r.attention_mask,
      })),
    );
    const want = await computeFisher(model, [{ batch, labels }], {
      params: "layernorm",
      examples: 3,
      seed: 0,
    });
    model.dispose();
    for (const [name, w] of want) assert.deepEqual([...got.get(name)!.data], [...w.data], name);

    const summary = JSON.parse(await Deno.readTextFile(join(dir, "f.json")));
    assert.equal(summary.N, 3);
    assert.equal(summary.head, head);
    assert.equal(summary.records.length, 10);
    assert.deepEqual(
      summary.ranking.map((r: { component: string }) => r.component).sort(),
      ["attention_output_layernorm", "embeddings_layernorm", "output_layernorm"],
    );
  } finally {
    await cleanup();
  }
});

Deno.test("normtune fisher --delta records the fine-tuned state and uses the delta's head", async () => {
  const [dir, cleanup] = await tempDir();
  try {
    const tensors = await tunedTensors();
    const delta: TensorMap = new Map(
      [OUT_LN, "classifier.weight", "classifier.bias"].map((n) => [n, tensors.get(n)!]),
    );
    // deno-fmt-ignore
    await writeDelta(join(dir, "d.safetensors"), delta, { kind: "delta", task: "RTE", mode: "test", numLabels: 2,
      baseModel: GOLDEN, trained: [OUT_LN] });
    const golden = JSON.parse(await Deno.readTextFile(join(GOLDEN, "golden.json")));
    const jsonl = golden.rows.map((r: GoldenRow, i: number) => JSON.stringify({ ...r, label: i % 2 })).join(
      "\n",
    );
    await Deno.writeTextFile(join(dir, "in.jsonl"), jsonl);
    // deno-fmt-ignore
    await cli(["fisher", "--model", GOLDEN, "--delta", join(dir, "d.safetensors"), "--inputs", join(dir, "in.jsonl"),
      "--examples", "2", "--params", "all", "--labels", "sampled", "--out", join(dir, "f.safetensors")]);
    const summary = JSON.parse(await Deno.readTextFile(join(dir, "f.json")));
    assert.equal(summary.state, "fine-tuned");
    assert.equal(summary.N, 2);
    assert.equal(summary.labels, "sampled");
    const f = await readSafetensors(join(dir, "f.safetensors"));
    assert.equal(f.get("classifier.weight")!.shape[0], 2);
    assert.ok(f.has("bert.embeddings.word_embeddings.weight"));
  } finally {
    await cleanup();
  }
});

Deno.test("normtune fisher --task RTE on bert-tiny-mlm, then mask --top 10 of its LayerNorms", async () => {
  const [dir, cleanup] = await tempDir();
  try {
    const out = join(dir, "rte.safetensors");
    // deno-fmt-ignore
    const stdout = await cli(["fisher", "--model", sharedModel(), "--task", "rte", "--examples", "6", "--seed", "1",
      "--params", "layernorm", "--max-len", "64", "--glue-dir", sharedGlue(), "--out", out]);
    assert.match(stdout, /pretrained model, RTE, N 6/);
    const summary = JSON.parse(await Deno.readTextFile(join(dir, "rte.json")));
    assert.equal(summary.task, "RTE");
    assert.equal(summary.head, "fresh (seed 1)");
    assert.ok(summary.ranking.every((r: { mean: number }) => r.mean > 0));
    await cli(["mask", "--fisher", out, "--top", "10", "--out", join(dir, "m.safetensors")]);
    const m = await readMask(join(dir, "m.safetensors"));
    // bert-tiny: hidden 128, 2 layers -> 5 LayerNorms x 2 x 128 = 1280; 10% = 128
    assert.equal(countMask(m.masks), 128);
    assert.equal(m.info.task, "RTE");
    assert.equal(m.info.candidates, 1280);
  } finally {
    await cleanup();
  }
});
