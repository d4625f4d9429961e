/**
 * The component taxonomy: every Hugging Face parameter name (lib/bert/names.ts) maps to one
 * `{component, layer, kind}`. Change tables, Fisher summaries and mask descriptions all aggregate through
 * `componentOf`, so they agree on what "the output LayerNorm of layer 3" means.
 *
 * ```ts
 * componentOf("bert.encoder.layer.3.output.LayerNorm.weight");
 * // { component: "output_layernorm", layer: 3, kind: "weight" }
 * componentGroup("output_layernorm"); // "layernorm"
 * ```
 */

export const COMPONENTS = [
  "word_embeddings",
  "position_embeddings",
  "token_type_embeddings",
  "embeddings_layernorm",
  "query",
  "key",
  "value",
  "attention_output_dense",
  "attention_output_layernorm",
  "intermediate_dense",
  "output_dense",
  "output_layernorm",
  "pooler",
  "classifier",
] as const;

export type Component = typeof COMPONENTS[number];
export type Kind = "weight" | "bias";

/** Coarse groups, for "LayerNorm vs the rest" rankings. */
export type ComponentGroup = "embeddings" | "layernorm" | "attention" | "ffn" | "pooler" | "classifier";

/** Which of the three LayerNorms a LayerNorm component is (the paper's Finding 6 counts by this). */
export type LayerNormType = "embeddings" | "attention" | "output";

export interface ComponentInfo {
  component: Component;
  /** Encoder layer index, or null for embeddings, pooler and classifier. */
  layer: number | null;
  kind: Kind;
}

const EMBEDDINGS: Record<string, Component> = {
  "bert.embeddings.word_embeddings": "word_embeddings",
  "bert.embeddings.position_embeddings": "position_embeddings",
  "bert.embeddings.token_type_embeddings": "token_type_embeddings",
  "bert.embeddings.LayerNorm": "embeddings_layernorm",
  "bert.pooler.dense": "pooler",
  "classifier": "classifier",
};

const IN_LAYER: Record<string, Component> = {
  "attention.self.query": "query",
  "attention.self.key": "key",
  "attention.self.value": "value",
  "attention.output.dense": "attention_output_dense",
  "attention.output.LayerNorm": "attention_output_layernorm",
  "intermediate.dense": "intermediate_dense",
  "output.dense": "output_dense",
  "output.LayerNorm": "output_layernorm",
};

const LAYER_RE = /^bert\.encoder\.layer\.(\d+)\.(.+)$/;

/** Maps a Hugging Face parameter name to its component; an unknown name is an error. */
export function componentOf(name: string): ComponentInfo {
  const dot = name.lastIndexOf(".");
  const suffix = name.slice(dot + 1);
  const module = name.slice(0, dot);
  if (dot < 0 || (suffix !== "weight" && suffix !== "bias")) {
    throw new Error(`parameter "${name}": not a BERT parameter name (must end in .weight or .bias)`);
  }
  const kind = suffix as Kind;
  const top = EMBEDDINGS[module];
  // Embedding tables have no bias in BERT.
  if (top && !(kind === "bias" && top.endsWith("_embeddings"))) return { component: top, layer: null, kind };
  const m = LAYER_RE.exec(module);
  if (m && IN_LAYER[m[2]]) return { component: IN_LAYER[m[2]], layer: Number(m[1]), kind };
  throw new Error(
    `parameter "${name}": unknown to the component taxonomy (lib/analysis/components.ts); ` +
      `expected a Hugging Face BertForSequenceClassification name as in lib/bert/names.ts`,
  );
}

export function isLayerNormComponent(c: Component): boolean {
  return c === "embeddings_layernorm" || c === "attention_output_layernorm" || c === "output_layernorm";
}

export function componentGroup(c: Component): ComponentGroup {
  switch (c) {
    case "word_embeddings":
    case "position_embeddings":
    case "token_type_embeddings":
      return "embeddings";
    case "embeddings_layernorm":
    case "attention_output_layernorm":
    case "output_layernorm":
      return "layernorm";
    case "query":
    case "key":
    case "value":
    case "attention_output_dense":
      return "attention";
    case "intermediate_dense":
    case "output_dense":
      return "ffn";
    case "pooler":
      return "pooler";
    case "classifier":
      return "classifier";
  }
}

/** The LayerNorm type of a LayerNorm component; undefined for any other component. */
export function layerNormType(c: Component): LayerNormType | undefined {
  if (c === "embeddings_layernorm") return "embeddings";
  if (c === "attention_output_layernorm") return "attention";
  if (c === "output_layernorm") return "output";
  return undefined;
}

/** A stable key for grouping: `component|layer|kind` (layer "-" when null). */
export function componentKey(info: ComponentInfo): string {
  return `${info.component}|${info.layer ?? "-"}|${info.kind}`;
}

/**
 * Orders records the way names.ts orders parameters: embeddings, then layers in order (components in
 * taxonomy order), pooler, classifier; weight before bias.
 */
export function compareComponents(a: ComponentInfo, b: ComponentInfo): number {
  const stage = (x: ComponentInfo) =>
    x.layer !== null ? 1 : x.component === "pooler" ? 2 : x.component === "classifier" ? 3 : 0;
  return stage(a) - stage(b) || (a.layer ?? -1) - (b.layer ?? -1) ||
    COMPONENTS.indexOf(a.component) - COMPONENTS.indexOf(b.component) ||
    (a.kind === b.kind ? 0 : a.kind === "weight" ? -1 : 1);
}
