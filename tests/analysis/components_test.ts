import assert from "node:assert/strict";
import { parameterShapes } from "../../lib/bert/names.ts";
import { parseConfig } from "../../lib/bert/config.ts";
import {
  compareComponents,
  componentGroup,
  componentOf,
  COMPONENTS,
  layerNormType,
} from "../../lib/analysis/components.ts";

const config = parseConfig({
  vocab_size: 100,
  hidden_size: 16,
  num_hidden_layers: 3,
  num_attention_heads: 2,
  intermediate_size: 32,
});

Deno.test("every parameter name maps to a component, and every component is reached", () => {
  const shapes = parameterShapes(config, 2);
  const seen = new Set<string>();
  for (const name of shapes.keys()) {
    const info = componentOf(name);
    seen.add(info.component);
    assert.equal(info.kind, name.endsWith(".bias") ? "bias" : "weight");
  }
  assert.deepEqual([...seen].sort(), [...COMPONENTS].sort());
});

Deno.test("componentOf gives component, layer and kind", () => {
  assert.deepEqual(componentOf("bert.encoder.layer.2.output.LayerNorm.weight"), {
    component: "output_layernorm",
    layer: 2,
    kind: "weight",
  });
  assert.deepEqual(componentOf("bert.encoder.layer.0.attention.output.LayerNorm.bias"), {
    component: "attention_output_layernorm",
    layer: 0,
    kind: "bias",
  });
  assert.deepEqual(componentOf("bert.encoder.layer.11.output.dense.bias"), {
    component: "output_dense",
    layer: 11,
    kind: "bias",
  });
  assert.deepEqual(componentOf("bert.encoder.layer.1.attention.self.key.weight").component, "key");
  assert.deepEqual(componentOf("bert.embeddings.LayerNorm.bias"), {
    component: "embeddings_layernorm",
    layer: null,
    kind: "bias",
  });
  assert.equal(componentOf("classifier.weight").component, "classifier");
  assert.equal(componentOf("bert.pooler.dense.bias").layer, null);
});

Deno.test("unknown names are errors that name the parameter", () => {
  for (
    const bad of [
      "cls.predictions.bias",
      "bert.encoder.layer.0.foo.weight",
      "classifier",
      "bert.embeddings.word_embeddings.bias",
    ]
  ) {
    assert.throws(() => componentOf(bad), new RegExp(bad.replaceAll(".", "\\.")));
  }
});

Deno.test("groups and LayerNorm types", () => {
  assert.equal(componentGroup("output_layernorm"), "layernorm");
  assert.equal(componentGroup("embeddings_layernorm"), "layernorm");
  assert.equal(componentGroup("query"), "attention");
  assert.equal(componentGroup("intermediate_dense"), "ffn");
  assert.equal(componentGroup("word_embeddings"), "embeddings");
  assert.equal(layerNormType("attention_output_layernorm"), "attention");
  assert.equal(layerNormType("value"), undefined);
});

Deno.test("compareComponents sorts as names.ts orders parameters", () => {
  const names = [...parameterShapes(config, 2).keys()];
  const shuffled = [...names].reverse();
  const sorted = shuffled.sort((a, b) => compareComponents(componentOf(a), componentOf(b)));
  assert.deepEqual(sorted, names);
});
