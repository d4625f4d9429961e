/**
 * BERT's configuration, read from a Hugging Face `config.json`. Field names are Hugging Face's, so a
 * config written back is one transformers reads.
 */
import { quote } from "../util/text.ts";

export interface BertConfig {
  vocab_size: number;
  hidden_size: number;
  num_hidden_layers: number;
  num_attention_heads: number;
  intermediate_size: number;
  hidden_act: string;
  hidden_dropout_prob: number;
  attention_probs_dropout_prob: number;
  max_position_embeddings: number;
  type_vocab_size: number;
  initializer_range: number;
  layer_norm_eps: number;
  pad_token_id: number;
  /** Everything else the file held (architectures, id2label, ...), kept so that it is written back. */
  [key: string]: unknown;
}

/** Fields that decide the model's shape: a config.json without one of them is an error, never a default. */
export const REQUIRED_FIELDS = [
  "vocab_size",
  "hidden_size",
  "num_hidden_layers",
  "num_attention_heads",
  "intermediate_size",
] as const;

type RequiredField = typeof REQUIRED_FIELDS[number];

/** Hugging Face's BertConfig defaults for the other fields. */
const DEFAULTS: Omit<BertConfig, RequiredField> = {
  hidden_act: "gelu",
  hidden_dropout_prob: 0.1,
  attention_probs_dropout_prob: 0.1,
  max_position_embeddings: 512,
  type_vocab_size: 2,
  initializer_range: 0.02,
  layer_norm_eps: 1e-12,
  pad_token_id: 0,
};

/** bert-base-uncased's shape (what the paper's counts refer to). */
export const BERT_BASE: Pick<BertConfig, RequiredField> = {
  vocab_size: 30522,
  hidden_size: 768,
  num_hidden_layers: 12,
  num_attention_heads: 12,
  intermediate_size: 3072,
};

/** Validates a parsed config.json; `source` names the file in errors. */
export function parseConfig(raw: unknown, source = "config.json"): BertConfig {
  if (typeof raw !== "object" || raw === null) throw new Error(`${source}: not a JSON object`);
  const cfg = { ...DEFAULTS, ...(raw as Record<string, unknown>) } as BertConfig;
  if (cfg.model_type !== undefined && cfg.model_type !== "bert") {
    throw new Error(`${source}: model_type is "${cfg.model_type}", only "bert" is supported`);
  }
  const missing = REQUIRED_FIELDS.filter((k) => (raw as Record<string, unknown>)[k] === undefined);
  if (missing.length > 0) {
    throw new Error(
      `${source}: missing ${missing.join(", ")} (a BERT config.json must give ${REQUIRED_FIELDS.join(", ")})`,
    );
  }
  for (
    const key of [
      "vocab_size",
      "hidden_size",
      "num_hidden_layers",
      "num_attention_heads",
      "intermediate_size",
      "max_position_embeddings",
      "type_vocab_size",
    ] as const
  ) {
    const v = cfg[key];
    if (typeof v !== "number" || !Number.isInteger(v) || v <= 0) {
      throw new Error(`${source}: ${key} must be a positive integer, got ${quote(v)}`);
    }
  }
  if (cfg.hidden_size % cfg.num_attention_heads !== 0) {
    throw new Error(
      `${source}: hidden_size ${cfg.hidden_size} is not a multiple of num_attention_heads ${cfg.num_attention_heads}`,
    );
  }
  if (cfg.hidden_act !== "gelu") {
    throw new Error(`${source}: hidden_act "${cfg.hidden_act}" is not supported (only the exact erf "gelu")`);
  }
  return cfg;
}

/**
 * Why examples of `maxLen` tokens cannot run on a model of this config, or `undefined`: a pair needs room
 * for [CLS] and two [SEP], and every position needs a position embedding.
 */
export function maxLenProblem(maxLen: number, config: BertConfig): string | undefined {
  if (!Number.isInteger(maxLen) || maxLen < 3) {
    return `must be an integer >= 3 (room for [CLS] and two [SEP]), got ${maxLen}`;
  }
  if (maxLen > config.max_position_embeddings) {
    return `${maxLen} is more than the model's max_position_embeddings ${config.max_position_embeddings}`;
  }
  return undefined;
}

export async function readConfig(path: string): Promise<BertConfig> {
  let text: string;
  try {
    text = await Deno.readTextFile(path);
  } catch (err) {
    throw new Error(`${path}: cannot read (${(err as Error).message})`);
  }
  let raw: unknown;
  try {
    raw = JSON.parse(text);
  } catch (err) {
    throw new Error(`${path}: not valid JSON (${(err as Error).message})`);
  }
  return parseConfig(raw, path);
}
