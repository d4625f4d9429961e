/**
 * One tiny BERT saved by PyTorch as model.safetensors, as sharded safetensors and with torch.save (zip
 * and legacy format) (tests/fixtures/formats, made by tools/make_formats.py): each folder loads to
 * bitwise the same tensors and logits, and those logits match PyTorch's.
 */
import { batchFromEncoded } from "../../lib/bert/batch.ts";
import assert from "node:assert/strict";
import { join } from "node:path";
import { initBackend, tf } from "../../lib/tf.ts";
import { loadCheckpoint } from "../../lib/bert/checkpoint.ts";
import { BertClassifier } from "../../lib/bert/model.ts";
import { findWeights, readWeights } from "../../lib/bert/weights.ts";
import { tempDir } from "../env.ts";

const FORMATS = join(import.meta.dirname!, "..", "fixtures", "formats");
const FOLDERS = ["safetensors", "sharded", "pytorch", "legacy"] as const;

interface Reference {
  rows: { input_ids: number[]; token_type_ids: number[]; attention_mask: number[] }[];
  logits: number[][];
}

Deno.test("each folder is found in its format", async () => {
  assert.deepEqual(
    await Promise.all(FOLDERS.map(async (f) => (await findWeights(join(FORMATS, f))).format)),
    ["safetensors", "sharded safetensors", "pytorch_model.bin", "pytorch_model.bin"],
  );
  // The .bin also holds the int64 position_ids (refused unless skipped) and the tied MLM decoder.
  const bin = join(FORMATS, "pytorch");
  await assert.rejects(
    () => readWeights(bin),
    /tensor "bert\.embeddings\.position_ids" is torch\.LongStorage; only float32, float16 and bfloat16/,
  );
  const all = await readWeights(bin, { skip: (n) => n.endsWith("position_ids") });
  assert.deepEqual(
    all.tensors.get("cls.predictions.decoder.weight"),
    all.tensors.get("bert.embeddings.word_embeddings.weight"),
  );
});

Deno.test("the three formats (and legacy .bin) load to identical tensors and logits, equal to PyTorch's", async () => {
  const ref: Reference = JSON.parse(await Deno.readTextFile(join(FORMATS, "logits.json")));
  const batch = batchFromEncoded(
    ref.rows.map((r) => ({
      inputIds: r.input_ids,
      tokenTypeIds: r.token_type_ids,
      attentionMask: r.attention_mask,
    })),
  );
  await initBackend("cpu");
  const loaded = [];
  for (const folder of FOLDERS) {
    const ck = await loadCheckpoint(join(FORMATS, folder), { numLabels: 2, quiet: true });
    assert.deepEqual(ck.initialized, [], folder);
    const model = new BertClassifier(ck.config, 2, ck.tensors);
    const logits = tf.tidy(() => model.logits(batch).dataSync().slice());
    model.dispose();
    loaded.push({ folder, ck, logits });
  }
  const [first, ...rest] = loaded;
  assert.equal(first.ck.tensors.size, 41);
  for (const other of rest) {
    assert.deepEqual([...other.ck.tensors.keys()], [...first.ck.tensors.keys()], other.folder);
    for (const [name, t] of first.ck.tensors) {
      assert.deepEqual(other.ck.tensors.get(name), t, `${other.folder}: ${name}`);
    }
    assert.deepEqual(other.logits, first.logits, `${other.folder}: logits`);
  }
  // What each file held besides the parameters: the .bin's tied decoder and MLM bias, every position_ids.
  assert.deepEqual(loaded.map((l) => l.ck.skipped), [
    ["bert.embeddings.position_ids"],
    ["bert.embeddings.position_ids"],
    ["bert.embeddings.position_ids", "cls.predictions.bias", "cls.predictions.decoder.weight"],
    ["bert.embeddings.position_ids", "cls.predictions.bias", "cls.predictions.decoder.weight"],
  ]);
  const want = ref.logits.flat();
  for (let i = 0; i < want.length; i++) {
    assert.ok(
      Math.abs(first.logits[i] - want[i]) < 1e-5,
      `logit ${i}: ${first.logits[i]} vs PyTorch ${want[i]}`,
    );
  }
  // The f16 and bf16 tensors really are stored at half precision (not float32 that happens to round).
  // float16 keeps 10 mantissa bits of float32's 23, bfloat16 keeps 7: the low bits are zero.
  const lowBits = (name: string, mask: number) =>
    new Uint32Array(first.ck.tensors.get(name)!.data.slice().buffer).every((b) => (b & mask) === 0);
  assert.ok(lowBits("bert.embeddings.token_type_embeddings.weight", 0x1fff), "f16");
  assert.ok(lowBits("bert.embeddings.LayerNorm.weight", 0xffff), "bf16");
  assert.ok(!lowBits("bert.embeddings.word_embeddings.weight", 0x1fff), "f32");
});

Deno.test("the preferred format wins when a folder holds several", async () => {
  const [dir, cleanup] = await tempDir();
  try {
    for (const folder of ["pytorch", "sharded"]) {
      for (const e of Deno.readDirSync(join(FORMATS, folder))) {
        await Deno.copyFile(join(FORMATS, folder, e.name), join(dir, e.name));
      }
    }
    assert.equal((await findWeights(dir)).format, "sharded safetensors");
    await Deno.copyFile(join(FORMATS, "safetensors", "model.safetensors"), join(dir, "model.safetensors"));
    const ck = await loadCheckpoint(dir, { numLabels: 2, quiet: true });
    assert.deepEqual(ck.weights, { format: "safetensors", path: join(dir, "model.safetensors") });
  } finally {
    await cleanup();
  }
});
