import assert from "node:assert/strict";
import { join } from "node:path";
import { loadCheckpoint } from "../../lib/bert/checkpoint.ts";
import { encodeSafetensors, writeSafetensors } from "../../lib/bert/safetensors.ts";
import { applyDelta, readDelta, writeDelta } from "../../lib/tuning/delta.ts";
import { tempDir } from "../env.ts";
import { GOLDEN } from "./fixture.ts";

Deno.test("a delta replaces exactly its tensors; the rest is the base's", async () => {
  const [dir, cleanup] = await tempDir();
  try {
    const base = await loadCheckpoint(GOLDEN, { numLabels: 3, seed: 0, quiet: true });
    const ln = "bert.encoder.layer.1.output.LayerNorm.weight";
    const delta = new Map([
      [ln, { shape: [16], data: new Float32Array(16).fill(1.5) }],
      ["classifier.weight", { shape: [3, 16], data: new Float32Array(48).fill(0.25) }],
      ["classifier.bias", { shape: [3], data: new Float32Array([1, 2, 3]) }],
    ]);
    const file = join(dir, "delta.safetensors");
    const info = {
      kind: "delta" as const,
      task: "MNLI",
      mode: "test",
      numLabels: 3,
      baseModel: GOLDEN,
      trained: [ln],
    };
    await writeDelta(file, delta, info);
    const back = await readDelta(file);
    assert.equal(back.numLabels, 3);
    assert.deepEqual(back.info, info);
    const applied = await applyDelta(GOLDEN, file);
    for (const [name, t] of base.tensors) {
      assert.deepEqual(applied.get(name)!.data, delta.get(name)?.data ?? t.data, name);
    }
    // The same tensors give the same bytes.
    const again = join(dir, "again.safetensors");
    await writeDelta(again, new Map([...delta].reverse()), info);
    assert.deepEqual(await Deno.readFile(again), await Deno.readFile(file));
  } finally {
    await cleanup();
  }
});

Deno.test("a file without a classifier is not a delta; a misshapen or non-finite tensor is named", async () => {
  const [dir, cleanup] = await tempDir();
  try {
    const file = join(dir, "x.safetensors");
    await writeSafetensors(
      file,
      new Map([["bert.pooler.dense.bias", { shape: [16], data: new Float32Array(16) }]]),
    );
    await assert.rejects(readDelta(file), /no "classifier.weight".*is this a normtune delta file/);
    await writeSafetensors(
      file,
      new Map([
        ["classifier.weight", { shape: [2, 16], data: new Float32Array(32) }],
        ["bert.pooler.dense.bias", { shape: [8], data: new Float32Array(8) }],
      ]),
    );
    await assert.rejects(
      applyDelta(GOLDEN, file),
      /applying .*x.safetensors.*"bert.pooler.dense.bias" has shape \[8\]/,
    );
    // A delta with non-finite weights (written before saving checked them) is refused by name.
    const nan = new Float32Array(32);
    nan[7] = Infinity;
    await Deno.writeFile(
      file,
      encodeSafetensors(new Map([["classifier.weight", { shape: [2, 16], data: nan }]])),
    );
    await assert.rejects(
      readDelta(file),
      /x\.safetensors: tensor "classifier\.weight" .*the first Infinity at index 7/,
    );
  } finally {
    await cleanup();
  }
});
