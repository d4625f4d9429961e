/**
 * The parameter names of a BERT sequence classifier, exactly as Hugging Face's
 * `BertForSequenceClassification` names them, with their shapes in PyTorch layout (Linear weights are
 * `[out, in]`). This list is the single source of truth: the checkpoint reader, the model, tuning modes,
 * Fisher scores, masks and change tables all key their maps by these names.
 */
import type { BertConfig } from "./config.ts";

export const WORD_EMBEDDINGS = "bert.embeddings.word_embeddings.weight";
export const POSITION_EMBEDDINGS = "bert.embeddings.position_embeddings.weight";
export const TOKEN_TYPE_EMBEDDINGS = "bert.embeddings.token_type_embeddings.weight";
export const EMBEDDINGS_LAYER_NORM = "bert.embeddings.LayerNorm";
export const POOLER = "bert.pooler.dense";
export const CLASSIFIER = "classifier";

/** The prefix of encoder layer `i`'s parameters, e.g. `bert.encoder.layer.3`. */
export function layerPrefix(i: number): string {
  return `bert.encoder.layer.${i}`;
}

/** Every parameter name with its shape, in a fixed order (embeddings, layers, pooler, classifier). */
export function parameterShapes(config: BertConfig, numLabels: number): Map<string, number[]> {
  const h = config.hidden_size, f = config.intermediate_size;
  const shapes = new Map<string, number[]>();
  const linear = (name: string, out: number, inp: number) => {
    shapes.set(`${name}.weight`, [out, inp]);
    shapes.set(`${name}.bias`, [out]);
  };
  const layerNorm = (name: string) => {
    shapes.set(`${name}.weight`, [h]);
    shapes.set(`${name}.bias`, [h]);
  };
  shapes.set(WORD_EMBEDDINGS, [config.vocab_size, h]);
  shapes.set(POSITION_EMBEDDINGS, [config.max_position_embeddings, h]);
  shapes.set(TOKEN_TYPE_EMBEDDINGS, [config.type_vocab_size, h]);
  layerNorm(EMBEDDINGS_LAYER_NORM);
  for (let i = 0; i < config.num_hidden_layers; i++) {
    const p = layerPrefix(i);
    linear(`${p}.attention.self.query`, h, h);
    linear(`${p}.attention.self.key`, h, h);
    linear(`${p}.attention.self.value`, h, h);
    linear(`${p}.attention.output.dense`, h, h);
    layerNorm(`${p}.attention.output.LayerNorm`);
    linear(`${p}.intermediate.dense`, f, h);
    linear(`${p}.output.dense`, h, f);
    layerNorm(`${p}.output.LayerNorm`);
  }
  linear(POOLER, h, h);
  linear(CLASSIFIER, numLabels, h);
  return shapes;
}

/** True for LayerNorm gamma (`.weight`) and beta (`.bias`) parameters. */
export function isLayerNorm(name: string): boolean {
  return name.includes(".LayerNorm.");
}

/** True for every bias, LayerNorm beta included (BitFit's set). */
export function isBias(name: string): boolean {
  return name.endsWith(".bias");
}

/** True for the task head (always trained). */
export function isHead(name: string): boolean {
  return name.startsWith(`${CLASSIFIER}.`);
}
