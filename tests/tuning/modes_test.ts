import assert from "node:assert/strict";
import { parseConfig } from "../../lib/bert/config.ts";
import { parameterShapes } from "../../lib/bert/names.ts";
import type { TensorMap } from "../../lib/bert/safetensors.ts";
import { countTrainable, defaultLr, getMode, MODE_NAMES, selectTrainable } from "../../lib/tuning/modes.ts";

const config = parseConfig({
  vocab_size: 100,
  hidden_size: 16,
  num_hidden_layers: 2,
  num_attention_heads: 2,
  intermediate_size: 32,
  max_position_embeddings: 64,
});
const shapes = parameterShapes(config, 3);
const names = [...shapes.keys()];

function selected(mode: string, masks?: TensorMap): string[] {
  return [...selectTrainable(mode as never, names, masks).keys()].sort();
}

Deno.test("full trains every parameter", () => {
  const sel = selectTrainable("full", names);
  assert.deepEqual([...sel.keys()], names);
  assert.ok([...sel.values()].every((v) => v === "all"));
});

Deno.test("bitfit trains every bias (LayerNorm beta, pooler) and the head", () => {
  const got = selected("bitfit");
  const want = names.filter((n) => n.endsWith(".bias") || n === "classifier.weight").sort();
  assert.deepEqual(got, want);
  assert.ok(got.includes("bert.pooler.dense.bias"));
  assert.ok(got.includes("bert.embeddings.LayerNorm.bias"));
  assert.ok(!got.includes("bert.pooler.dense.weight"));
  assert.ok(!got.includes("bert.embeddings.LayerNorm.weight"));
});

Deno.test("layernorm trains all LayerNorms (embeddings' too) and the head", () => {
  const want = [
    "bert.embeddings.LayerNorm.bias",
    "bert.embeddings.LayerNorm.weight",
    ...[0, 1].flatMap((i) =>
      ["attention.output", "output"].flatMap((p) =>
        ["bias", "weight"].map((w) => `bert.encoder.layer.${i}.${p}.LayerNorm.${w}`)
      )
    ),
    "classifier.bias",
    "classifier.weight",
  ].sort();
  assert.deepEqual(selected("layernorm"), want);
});

Deno.test("layernorm-output trains only each layer's output LayerNorm and the head", () => {
  assert.deepEqual(selected("layernorm-output"), [
    "bert.encoder.layer.0.output.LayerNorm.bias",
    "bert.encoder.layer.0.output.LayerNorm.weight",
    "bert.encoder.layer.1.output.LayerNorm.bias",
    "bert.encoder.layer.1.output.LayerNorm.weight",
    "classifier.bias",
    "classifier.weight",
  ]);
});

Deno.test("controls: head trains only the classifier, head-pooler the pooler too", () => {
  assert.deepEqual(selected("head"), ["classifier.bias", "classifier.weight"]);
  assert.deepEqual(selected("head-pooler"), [
    "bert.pooler.dense.bias",
    "bert.pooler.dense.weight",
    "classifier.bias",
    "classifier.weight",
  ]);
  const head = countTrainable(selectTrainable("head", names), shapes);
  assert.equal(head.encoderTrainable, 0);
  assert.equal(head.head, 3 * 16 + 3);
  assert.equal(countTrainable(selectTrainable("head-pooler", names), shapes).encoderTrainable, 16 * 16 + 16);
});

Deno.test("mask mode: partial masks kept, full ones become 'all', empty and absent ones freeze", () => {
  const q = "bert.encoder.layer.0.attention.self.query.weight";
  const partial = new Float32Array(16 * 16);
  partial[3] = 1;
  const masks: TensorMap = new Map([
    [q, { shape: [16, 16], data: partial }],
    ["bert.pooler.dense.bias", { shape: [16], data: new Float32Array(16).fill(1) }],
    ["bert.embeddings.LayerNorm.bias", { shape: [16], data: new Float32Array(16) }],
  ]);
  const sel = selectTrainable("mask", names, masks);
  assert.deepEqual(
    [...sel.keys()].sort(),
    [q, "bert.pooler.dense.bias", "classifier.bias", "classifier.weight"].sort(),
  );
  assert.equal(sel.get(q), partial);
  assert.equal(sel.get("bert.pooler.dense.bias"), "all");
  assert.throws(() => selectTrainable("mask", names), /needs a mask file/);

  const c = countTrainable(sel, shapes);
  assert.equal(c.head, 3 * 16 + 3);
  assert.equal(c.encoderTrainable, 1 + 16);
  assert.equal(c.trainable, 1 + 16 + 51);
});

Deno.test("counts: encoder share is over every bert.* parameter", () => {
  const c = countTrainable(selectTrainable("layernorm", names), shapes);
  const encoderTotal = names.filter((n) => n.startsWith("bert.")).reduce(
    (a, n) => a + shapes.get(n)!.reduce((x, y) => x * y, 1),
    0,
  );
  assert.equal(c.encoderTotal, encoderTotal);
  assert.equal(c.encoderTrainable, 5 * 2 * 16);
  assert.equal(c.encoderShare, 160 / encoderTotal);
  assert.equal(c.tensors, 12);
});

Deno.test("unknown mode names are errors listing the modes; default rates exist", () => {
  assert.throws(() => getMode("lora"), /unknown tuning mode "lora".*full, bitfit/);
  for (const m of MODE_NAMES) assert.ok(defaultLr(m) > 0);
  assert.ok(defaultLr("layernorm") > defaultLr("full"));
});
