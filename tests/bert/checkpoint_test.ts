import assert from "node:assert/strict";
import { join } from "node:path";
import { canonicalName, initTensor, loadCheckpoint, saveCheckpoint } from "../../lib/bert/checkpoint.ts";
import { type BertConfig, parseConfig } from "../../lib/bert/config.ts";
import { parameterShapes } from "../../lib/bert/names.ts";
import { elementCount } from "../../lib/util/shape.ts";
import {
  encodeSafetensors,
  readSafetensorsWithMetadata,
  type TensorMap,
} from "../../lib/bert/safetensors.ts";
import { mulberry32 } from "../../lib/util/random.ts";
import { sharedModel, tempDir } from "../env.ts";

const TINY = {
  vocab_size: 100,
  hidden_size: 16,
  num_hidden_layers: 2,
  num_attention_heads: 2,
  intermediate_size: 32,
  max_position_embeddings: 24,
  type_vocab_size: 2,
  initializer_range: 0.5,
};
const config: BertConfig = parseConfig(TINY);

/** Deterministic synthetic values: tensor k, element i -> k + i / 1000. */
function synthetic(shapes: Map<string, number[]>): TensorMap {
  const out: TensorMap = new Map();
  let k = 0;
  for (const [name, shape] of shapes) {
    const data = new Float32Array(elementCount(shape)).map((_, i) => k + i / 1000);
    out.set(name, { shape, data });
    k++;
  }
  return out;
}

/** The encoder and embeddings only, named as `rename` says; plus `extra` tensors. */
function encoderTensors(rename: (n: string) => string = (n) => n, extra: TensorMap = new Map()): TensorMap {
  const all = synthetic(parameterShapes(config, 2));
  const out: TensorMap = new Map();
  for (const [n, t] of all) {
    if (!n.startsWith("classifier.") && !n.startsWith("bert.pooler.")) out.set(rename(n), t);
  }
  for (const [n, t] of extra) out.set(n, t);
  return out;
}

async function writeModel(dir: string, tensors: TensorMap | Uint8Array): Promise<void> {
  await Deno.writeTextFile(
    join(dir, "config.json"),
    JSON.stringify({ ...TINY, architectures: ["BertForMaskedLM"] }),
  );
  await Deno.writeFile(
    join(dir, "model.safetensors"),
    tensors instanceof Uint8Array ? tensors : encodeSafetensors(tensors, { format: "pt" }),
  );
}

async function withDir(fn: (dir: string) => Promise<void>): Promise<void> {
  const [dir, cleanup] = await tempDir();
  try {
    await fn(dir);
  } finally {
    await cleanup();
  }
}

const f = (shape: number[], v = 0.1) => ({ shape, data: new Float32Array(elementCount(shape)).fill(v) });

function assertMatchesShapes(tensors: TensorMap, numLabels: number): void {
  const want = parameterShapes(config, numLabels);
  assert.deepEqual([...tensors.keys()], [...want.keys()]);
  for (const [n, s] of want) {
    assert.deepEqual(tensors.get(n)!.shape, s, n);
    assert.equal(tensors.get(n)!.data.length, elementCount(s), n);
  }
}

Deno.test("canonicalName maps bare BertModel and TF gamma/beta names", () => {
  assert.equal(canonicalName("embeddings.LayerNorm.gamma"), "bert.embeddings.LayerNorm.weight");
  assert.equal(
    canonicalName("bert.encoder.layer.1.output.LayerNorm.beta"),
    "bert.encoder.layer.1.output.LayerNorm.bias",
  );
  assert.equal(canonicalName("pooler.dense.weight"), "bert.pooler.dense.weight");
  assert.equal(canonicalName("classifier.bias"), "classifier.bias");
  assert.equal(canonicalName("cls.predictions.bias"), "cls.predictions.bias");
});

Deno.test("BertForMaskedLM names: heads skipped, pooler and classifier initialised as BERT does", async () => {
  await withDir(async (dir) => {
    const heads: TensorMap = new Map([
      ["cls.predictions.bias", f([100])],
      ["cls.predictions.transform.dense.weight", f([16, 16])],
      ["cls.predictions.transform.dense.bias", f([16])],
      ["cls.predictions.transform.LayerNorm.weight", f([16])],
      ["cls.predictions.transform.LayerNorm.bias", f([16])],
      ["cls.seq_relationship.weight", f([2, 16])],
      ["cls.seq_relationship.bias", f([2])],
    ]);
    await writeModel(dir, encoderTensors(undefined, heads));
    const ck = await loadCheckpoint(dir, { numLabels: 3, seed: 5, quiet: true });
    assertMatchesShapes(ck.tensors, 3);
    assert.deepEqual(ck.skipped, [...heads.keys()].sort());
    assert.deepEqual(ck.initialized, [
      "bert.pooler.dense.weight",
      "bert.pooler.dense.bias",
      "classifier.weight",
      "classifier.bias",
    ]);
    // Values carried through unchanged.
    const src = encoderTensors();
    assert.deepEqual(
      ck.tensors.get("bert.encoder.layer.1.attention.self.key.weight")!.data,
      src.get("bert.encoder.layer.1.attention.self.key.weight")!.data,
    );
    // Fresh weights ~ N(0, initializer_range = 0.5), biases zero.
    const w = ck.tensors.get("bert.pooler.dense.weight")!.data;
    const mean = w.reduce((a, b) => a + b, 0) / w.length;
    const std = Math.sqrt(w.reduce((a, b) => a + (b - mean) ** 2, 0) / w.length);
    assert.ok(Math.abs(std - 0.5) < 0.08, `std ${std}`);
    assert.ok(ck.tensors.get("classifier.bias")!.data.every((x) => x === 0));
    assert.ok(ck.tensors.get("classifier.weight")!.data.some((x) => x !== 0));
    // Same seed -> same init; different seed -> different init.
    const again = await loadCheckpoint(dir, { numLabels: 3, seed: 5, quiet: true });
    assert.deepEqual(again.tensors.get("classifier.weight")!.data, ck.tensors.get("classifier.weight")!.data);
    const other = await loadCheckpoint(dir, { numLabels: 3, seed: 6, quiet: true });
    assert.notDeepEqual(
      other.tensors.get("classifier.weight")!.data,
      ck.tensors.get("classifier.weight")!.data,
    );
  });
});

Deno.test("bare BertModel names and TF gamma/beta names load", async () => {
  await withDir(async (dir) => {
    const bare = (n: string) =>
      n.replace(/^bert\./, "").replace(/LayerNorm\.weight$/, "LayerNorm.gamma")
        .replace(/LayerNorm\.bias$/, "LayerNorm.beta");
    await writeModel(dir, encoderTensors(bare, new Map([["pooler.dense.weight", f([16, 16], 0.3)]])));
    const ck = await loadCheckpoint(dir, { numLabels: 2, quiet: true });
    assertMatchesShapes(ck.tensors, 2);
    assert.deepEqual(ck.initialized, ["bert.pooler.dense.bias", "classifier.weight", "classifier.bias"]);
    assert.equal(ck.tensors.get("bert.pooler.dense.weight")!.data[7], Math.fround(0.3));
    const src = encoderTensors();
    assert.deepEqual(
      ck.tensors.get("bert.embeddings.LayerNorm.bias")!.data,
      src.get("bert.embeddings.LayerNorm.bias")!.data,
    );
  });
});

Deno.test("F16 and BF16 checkpoints convert to the expected float32 values", async () => {
  await withDir(async (dir) => {
    // Hand-build a file: every tensor F16 of value 1.5 (0x3e00) except LayerNorm weights BF16 of -0.375 (0xbec0).
    const shapes = [...encoderTensors()].map(([n, t]) => [n, t.shape] as const);
    const header: Record<string, unknown> = {};
    let off = 0;
    const chunks: [number, number][] = [];
    for (const [n, s] of shapes) {
      const bf = n.endsWith("LayerNorm.weight");
      const bytes = elementCount(s) * 2;
      header[n] = { dtype: bf ? "BF16" : "F16", shape: s, data_offsets: [off, off + bytes] };
      chunks.push([bytes, bf ? 0xbec0 : 0x3e00]);
      off += bytes;
    }
    const json = new TextEncoder().encode(JSON.stringify(header));
    const file = new Uint8Array(8 + json.length + off);
    const dv = new DataView(file.buffer);
    dv.setBigUint64(0, BigInt(json.length), true);
    file.set(json, 8);
    let pos = 8 + json.length;
    for (const [bytes, bits] of chunks) {
      for (let i = 0; i < bytes; i += 2) dv.setUint16(pos + i, bits, true);
      pos += bytes;
    }
    await writeModel(dir, file);
    const ck = await loadCheckpoint(dir, { numLabels: 2, quiet: true });
    assert.ok(ck.tensors.get("bert.encoder.layer.0.intermediate.dense.weight")!.data.every((x) => x === 1.5));
    assert.ok(
      ck.tensors.get("bert.encoder.layer.0.output.LayerNorm.weight")!.data.every((x) => x === -0.375),
    );
    assert.ok(ck.tensors.get("bert.encoder.layer.0.output.LayerNorm.bias")!.data.every((x) => x === 1.5));
  });
});

Deno.test("wrong shapes, unknown and missing tensors are clear errors", async () => {
  await withDir(async (dir) => {
    const wrong = encoderTensors();
    wrong.set("bert.encoder.layer.0.intermediate.dense.weight", f([16, 32]));
    await writeModel(dir, wrong);
    await assert.rejects(
      () => loadCheckpoint(dir, { numLabels: 2, quiet: true }),
      /model\.safetensors.*"bert\.encoder\.layer\.0\.intermediate\.dense\.weight".*\[16,32\].*\[32,16\]/,
    );
    await writeModel(dir, encoderTensors(undefined, new Map([["bert.extra.weight", f([3])]])));
    await assert.rejects(
      () => loadCheckpoint(dir, { numLabels: 2, quiet: true }),
      /unknown tensor "bert\.extra\.weight"/,
    );
    const missing = encoderTensors();
    missing.delete("bert.encoder.layer.1.output.LayerNorm.bias");
    missing.delete("bert.embeddings.word_embeddings.weight");
    await writeModel(dir, missing);
    await assert.rejects(
      () => loadCheckpoint(dir, { numLabels: 2, quiet: true }),
      /missing 2 tensor.*word_embeddings.*layer\.1\.output\.LayerNorm\.bias/,
    );
    await Deno.remove(join(dir, "model.safetensors"));
    await Deno.writeFile(join(dir, "tf_model.h5"), new Uint8Array(4));
    await assert.rejects(
      () => loadCheckpoint(dir, { numLabels: 2, quiet: true }),
      /no weights: expected model\.safetensors, model\.safetensors\.index\.json, pytorch_model\.bin \(found tf_model\.h5/,
    );
    // A pytorch_model.bin is now read: four bytes are not a torch.save zip.
    await Deno.writeFile(join(dir, "pytorch_model.bin"), new Uint8Array(4));
    await assert.rejects(
      () => loadCheckpoint(dir, { numLabels: 2, quiet: true }),
      /pytorch_model\.bin: not a PyTorch checkpoint/,
    );
  });
});

Deno.test("a checkpoint with NaN or infinite weights is refused at load, naming the tensor", async () => {
  await withDir(async (dir) => {
    const tensors = encoderTensors();
    tensors.get("bert.encoder.layer.1.attention.self.key.weight")!.data.fill(NaN, 3, 5);
    await writeModel(dir, tensors);
    await assert.rejects(
      () => loadCheckpoint(dir, { numLabels: 2, quiet: true }),
      /model\.safetensors: tensor "bert\.encoder\.layer\.1\.attention\.self\.key\.weight" \[16,16\] has 2 non-finite value\(s\), the first NaN at index 3; refusing to load/,
    );
  });
});

Deno.test("a classifier for another label count is re-initialised; --head tensors override", async () => {
  await withDir(async (dir) => {
    await writeModel(
      dir,
      encoderTensors(
        undefined,
        new Map([
          ["bert.pooler.dense.weight", f([16, 16])],
          ["bert.pooler.dense.bias", f([16])],
          ["classifier.weight", f([3, 16], 0.7)],
          ["classifier.bias", f([3], 0.7)],
        ]),
      ),
    );
    const ck = await loadCheckpoint(dir, { numLabels: 2, quiet: true });
    assert.deepEqual(ck.initialized, ["classifier.weight", "classifier.bias"]);
    assert.deepEqual(ck.tensors.get("classifier.weight")!.shape, [2, 16]);
    const kept = await loadCheckpoint(dir, { numLabels: 3, quiet: true });
    assert.deepEqual(kept.initialized, []);
    assert.equal(kept.tensors.get("classifier.bias")!.data[2], Math.fround(0.7));
    const head: TensorMap = new Map([["classifier.weight", f([2, 16], -1)], ["classifier.bias", f([2], -2)]]);
    const withHead = await loadCheckpoint(dir, { numLabels: 2, head, quiet: true });
    assert.deepEqual(withHead.initialized, []);
    assert.equal(withHead.tensors.get("classifier.bias")!.data[1], -2);
    await assert.rejects(
      () => loadCheckpoint(dir, { numLabels: 3, head, quiet: true }),
      /head tensor "classifier\.weight".*\[2,16\].*\[3,16\]/,
    );
  });
});

Deno.test("save then load gives identical tensors and a transformers-style folder", async () => {
  await withDir(async (dir) => {
    const vocabDir = join(dir, "src");
    await Deno.mkdir(vocabDir);
    await Deno.writeTextFile(join(vocabDir, "vocab.txt"), "[PAD]\n[UNK]\nhello\n");
    await Deno.writeTextFile(join(vocabDir, "tokenizer_config.json"), '{"do_lower_case": true}');
    const tensors = synthetic(parameterShapes(config, 1));
    const out = join(dir, "out");
    await saveCheckpoint(out, { config, numLabels: 1, tensors }, { vocabFrom: vocabDir, regression: true });
    assert.deepEqual(
      [...Deno.readDirSync(out)].map((e) => e.name).sort(),
      ["config.json", "model.safetensors", "tokenizer_config.json", "vocab.txt"],
    );
    const cfg = JSON.parse(await Deno.readTextFile(join(out, "config.json")));
    assert.deepEqual(cfg.architectures, ["BertForSequenceClassification"]);
    assert.equal(cfg.problem_type, "regression");
    assert.equal(cfg.num_labels, 1);
    assert.deepEqual(cfg.id2label, { "0": "LABEL_0" });
    assert.deepEqual(cfg.label2id, { LABEL_0: 0 });
    assert.equal(cfg.hidden_size, 16);
    assert.equal(await Deno.readTextFile(join(out, "vocab.txt")), "[PAD]\n[UNK]\nhello\n");
    const { metadata } = await readSafetensorsWithMetadata(join(out, "model.safetensors"));
    assert.deepEqual(metadata, { format: "pt" });
    const back = await loadCheckpoint(out, { numLabels: 1, quiet: true });
    assert.deepEqual(back.initialized, []);
    assert.deepEqual(back.skipped, []);
    assert.deepEqual(back.tensors, tensors);

    await saveCheckpoint(join(dir, "cls"), {
      config,
      numLabels: 3,
      tensors: synthetic(parameterShapes(config, 3)),
    });
    const cls = JSON.parse(await Deno.readTextFile(join(dir, "cls", "config.json")));
    assert.equal(cls.problem_type, "single_label_classification");
    assert.equal(Object.keys(cls.id2label).length, 3);
    await assert.rejects(
      () => saveCheckpoint(join(dir, "bad"), { config, numLabels: 2, tensors }),
      /classifier\.weight.*\[1,16\].*\[2,16\]/,
    );
  });
});

Deno.test("initTensor: zero biases, seeded normal weights", () => {
  const b = initTensor([4], "bias", 0.02, mulberry32(1));
  assert.deepEqual([...b.data], [0, 0, 0, 0]);
  const w1 = initTensor([3, 4], "weight", 0.02, mulberry32(1));
  const w2 = initTensor([3, 4], "weight", 0.02, mulberry32(1));
  assert.deepEqual(w1, w2);
  assert.ok(w1.data.every((x) => Math.abs(x) < 0.2 && x !== 0));
});

Deno.test("shared bert-tiny-mlm: pooler kept, classifier initialised, MLM head skipped", async () => {
  const dir = sharedModel();
  const ck = await loadCheckpoint(dir, { numLabels: 2, quiet: true });
  const want = parameterShapes(ck.config, 2);
  assert.equal(ck.tensors.size, want.size);
  assert.equal(ck.tensors.size, 5 + 16 * 2 + 4);
  for (const [n, s] of want) assert.deepEqual(ck.tensors.get(n)!.shape, s, n);
  assert.deepEqual(ck.initialized, ["classifier.weight", "classifier.bias"]);
  assert.ok(ck.skipped.length > 0 && ck.skipped.every((n) => n.startsWith("cls.predictions.")));
  assert.ok(ck.tensors.get("bert.pooler.dense.weight")!.data.some((x) => x !== 0));
});
