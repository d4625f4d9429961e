import assert from "node:assert/strict";
import { join } from "node:path";
import { parseConfig } from "../../lib/bert/config.ts";
import { parameterShapes } from "../../lib/bert/names.ts";
import { type TensorMap, writeSafetensors } from "../../lib/bert/safetensors.ts";
import { countMask, readMask, validateMasks, writeMask } from "../../lib/tuning/mask_file.ts";
import { tempDir } from "../env.ts";

const config = parseConfig({
  vocab_size: 100,
  hidden_size: 16,
  num_hidden_layers: 1,
  num_attention_heads: 2,
  intermediate_size: 32,
  max_position_embeddings: 64,
});
const shapes = parameterShapes(config, 2);
const Q = "bert.encoder.layer.0.attention.self.query.weight";
const LN = "bert.embeddings.LayerNorm.weight";

function sample(): TensorMap {
  const q = new Float32Array(256);
  q[0] = q[17] = q[255] = 1;
  return new Map([[Q, { shape: [16, 16], data: q }], [LN, {
    shape: [16],
    data: new Float32Array(16).fill(1),
  }]]);
}

Deno.test("mask files round-trip with their metadata", async () => {
  const [dir, cleanup] = await tempDir();
  try {
    const path = join(dir, "m.safetensors");
    await writeMask(path, sample(), { method: "test", share: 0.5 }, shapes);
    const { masks, info } = await readMask(path, shapes);
    assert.deepEqual(info, { method: "test", share: 0.5 });
    assert.deepEqual([...masks.keys()].sort(), [LN, Q].sort());
    assert.deepEqual(masks.get(Q)!.data, sample().get(Q)!.data);
    assert.equal(countMask(masks), 3 + 16);
    assert.equal(countMask(masks.get(Q)!), 3);
    assert.equal(countMask(masks.get(Q)!.data), 3);
  } finally {
    await cleanup();
  }
});

Deno.test("validation names the tensor: unknown name, wrong shape, non-binary value", () => {
  const bad = (name: string, shape: number[], data: Float32Array): TensorMap =>
    new Map([[name, { shape, data }]]);
  assert.throws(
    () =>
      validateMasks(
        bad("encoder.layer.0.attention.self.query.weight", [16, 16], new Float32Array(256)),
        shapes,
        "f",
      ),
    /f: tensor "encoder\.layer\.0\.attention\.self\.query\.weight" is not a parameter.*did you mean "bert\.encoder/,
  );
  assert.throws(
    () => validateMasks(bad(Q, [16, 8], new Float32Array(128)), shapes, "f"),
    /tensor "bert\.encoder\.layer\.0\.attention\.self\.query\.weight" has shape \[16,8\] but the parameter has shape \[16,16\]/,
  );
  const half = new Float32Array(16);
  half[4] = 0.5;
  assert.throws(
    () => validateMasks(bad(LN, [16], half), shapes, "f"),
    /tensor "bert\.embeddings\.LayerNorm\.weight" holds 0\.5 at flat index 4/,
  );
});

Deno.test("readMask rejects bad files and bad metadata", async () => {
  const [dir, cleanup] = await tempDir();
  try {
    const path = join(dir, "bad.safetensors");
    const two = new Float32Array(16);
    two[1] = 2;
    await writeSafetensors(path, new Map([[LN, { shape: [16], data: two }]]));
    await assert.rejects(readMask(path), /holds 2 at flat index 1/);
    await writeSafetensors(path, sample(), { normtune: "[1,2]" });
    await assert.rejects(readMask(path, shapes), /metadata "normtune" is not a JSON object/);
    await writeSafetensors(path, sample());
    assert.deepEqual((await readMask(path, shapes)).info, {});
    await assert.rejects(writeMask(path, new Map([[LN, { shape: [16], data: two }]])), /holds 2/);
  } finally {
    await cleanup();
  }
});
