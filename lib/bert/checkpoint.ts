/**
 * Loads a Hugging Face BERT folder (config.json + weights: model.safetensors, sharded safetensors or
 * pytorch_model.bin, see lib/bert/weights.ts) as exactly the parameters of
 * `BertForSequenceClassification` (lib/bert/names.ts), and saves fine-tuned models in a form transformers'
 * `from_pretrained` loads back.
 *
 * Checkpoints come named three ways, all mapped onto the canonical names: `bert.*` (BertForMaskedLM,
 * BertForPreTraining, BertForSequenceClassification), bare `embeddings.* / encoder.* / pooler.*` (a plain
 * BertModel), and old TensorFlow conversions with `LayerNorm.gamma/beta`. Pretraining heads are dropped;
 * a missing pooler or classifier is initialised as BERT does (normal with std = initializer_range, zero
 * biases) from a seeded RNG, so runs stay reproducible.
 */
import { join } from "node:path";
import { type BertConfig, readConfig } from "./config.ts";
import { CLASSIFIER, parameterShapes, POOLER } from "./names.ts";
import { elementCount } from "../util/shape.ts";
import { type NamedTensor, nonFiniteTensor, type TensorMap, writeSafetensors } from "./safetensors.ts";
import { readWeights, type WeightsFormat } from "./weights.ts";
import { writeFileAtomic, writeJsonAtomic } from "../util/atomic.ts";
import { mulberry32, normal } from "../util/random.ts";

export interface Checkpoint {
  config: BertConfig;
  numLabels: number;
  /** Exactly the names and shapes of `parameterShapes(config, numLabels)`, in that order. */
  tensors: TensorMap;
  /** Tensors in the file we dropped: pretraining heads (`cls.*`) and buffers (`position_ids`). */
  skipped: string[];
  /** Tensors created fresh (pooler and/or classifier). */
  initialized: string[];
  /** Which weights file was read, and its format. */
  weights: { format: WeightsFormat; path: string };
}

export interface LoadOptions {
  numLabels: number;
  /** Seed for the fresh pooler/classifier (default 0). */
  seed?: number;
  /** Tensors (canonical names) that override the file's, e.g. a classifier from a `--head` file. */
  head?: TensorMap;
  /** Do not print what was initialised. */
  quiet?: boolean;
}

const PRETRAINING_HEADS = ["cls.predictions.", "cls.seq_relationship."];
const BARE_PREFIXES = ["embeddings.", "encoder.", "pooler."];

/** Tensors of a checkpoint that are not parameters and are dropped: heads and the position_ids buffer. */
function isDropped(name: string): boolean {
  return PRETRAINING_HEADS.some((p) => name.startsWith(p)) || name.endsWith("embeddings.position_ids");
}

/** Maps a checkpoint name onto the canonical Hugging Face name (`bert.` prefix, `.weight/.bias`). */
export function canonicalName(name: string): string {
  let n = name.replace(/LayerNorm\.gamma$/, "LayerNorm.weight").replace(/LayerNorm\.beta$/, "LayerNorm.bias");
  if (BARE_PREFIXES.some((p) => n.startsWith(p))) n = `bert.${n}`;
  return n;
}

/** A fresh parameter as BERT initialises Linear layers: weights ~ N(0, std), biases zero. */
export function initTensor(
  shape: number[],
  kind: "weight" | "bias",
  std: number,
  rng: () => number,
): NamedTensor {
  const data = new Float32Array(elementCount(shape));
  if (kind === "weight") { for (let i = 0; i < data.length; i++) data[i] = std * normal(rng); }
  return { shape: [...shape], data };
}

/** FNV-1a, so each fresh tensor gets its own stream: the classifier's init then does not depend on
 * whether the pooler happened to be in the file. */
export function hashName(name: string): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < name.length; i++) h = Math.imul(h ^ name.charCodeAt(i), 0x01000193);
  return h >>> 0;
}

const sameShape = (a: readonly number[], b: readonly number[]) =>
  a.length === b.length && a.every((d, i) => d === b[i]);

function listNames(names: string[], max = 8): string {
  return names.length <= max
    ? names.join(", ")
    : `${names.slice(0, max).join(", ")} and ${names.length - max} more`;
}

export async function loadCheckpoint(dir: string, opts: LoadOptions): Promise<Checkpoint> {
  const { numLabels } = opts;
  if (!Number.isInteger(numLabels) || numLabels < 1) {
    throw new Error(`loadCheckpoint: numLabels must be a positive integer, got ${numLabels}`);
  }
  const config = await readConfig(join(dir, "config.json"));
  const skipped: string[] = [];
  const { format, path: file, tensors: raw } = await readWeights(dir, {
    skip: (name) => isDropped(name) && skipped.push(name) > 0,
  });
  // NaN or infinite weights (a diverged training, a corrupt conversion) would only show up later as a
  // NaN loss blamed on the learning rate.
  const bad = nonFiniteTensor(raw);
  if (bad) throw new Error(`${file}: ${bad}; refusing to load a checkpoint with non-finite weights`);
  const shapes = parameterShapes(config, numLabels);

  const found = new Map<string, NamedTensor>();
  const from = new Map<string, string>(); // canonical -> name in the file, for errors
  const reinit: string[] = [];
  for (const [name, t] of raw) {
    const canon = canonicalName(name);
    const want = shapes.get(canon);
    if (want === undefined) {
      throw new Error(
        `${file}: unknown tensor "${name}" [${t.shape}]` +
          (canon !== name ? ` (read as "${canon}")` : "") +
          `: not a parameter of BertForSequenceClassification with this config.json`,
      );
    }
    if (from.has(canon)) {
      throw new Error(`${file}: tensors "${from.get(canon)}" and "${name}" both map to "${canon}"`);
    }
    from.set(canon, name);
    if (!sameShape(t.shape, want)) {
      // A classifier fine-tuned for another task: a fresh head replaces it.
      if (canon.startsWith(`${CLASSIFIER}.`) && sameShape(t.shape.slice(1), want.slice(1))) {
        reinit.push(`${canon} [${t.shape}] -> [${want}]`);
        continue;
      }
      throw new Error(`${file}: tensor "${name}" has shape [${t.shape}] but the model needs [${want}]`);
    }
    found.set(canon, t);
  }
  skipped.sort();

  for (const [name, t] of opts.head ?? new Map()) {
    const want = shapes.get(name);
    if (want === undefined) throw new Error(`head tensor "${name}" is not a model parameter`);
    if (!sameShape(t.shape, want)) {
      throw new Error(`head tensor "${name}" has shape [${t.shape}] but the model needs [${want}]`);
    }
    found.set(name, t);
  }

  const missing = [...shapes.keys()].filter((n) => !found.has(n));
  const notInitable = missing.filter((n) => !n.startsWith(`${POOLER}.`) && !n.startsWith(`${CLASSIFIER}.`));
  if (notInitable.length > 0) {
    throw new Error(
      `${file}: missing ${notInitable.length} tensor(s) the encoder needs: ${listNames(notInitable)}. ` +
        `Is this a BERT checkpoint matching ${join(dir, "config.json")}?`,
    );
  }
  const seed = opts.seed ?? 0;
  const tensors: TensorMap = new Map();
  const initialized: string[] = [];
  for (const [name, shape] of shapes) {
    let t = found.get(name);
    if (t === undefined) {
      const rng = mulberry32((seed ^ hashName(name)) >>> 0);
      t = initTensor(shape, name.endsWith(".bias") ? "bias" : "weight", config.initializer_range, rng);
      initialized.push(name);
    }
    tensors.set(name, t);
  }
  if (!opts.quiet && (initialized.length > 0 || skipped.length > 0)) {
    const parts = [];
    if (initialized.length > 0) {
      parts.push(`initialised fresh (seed ${seed}): ${initialized.join(", ")}`);
    }
    if (reinit.length > 0) parts.push(`replaced a classifier of another shape: ${reinit.join(", ")}`);
    if (skipped.length > 0) {
      parts.push(`skipped ${skipped.length} pretraining tensor(s) (${summarise(skipped)})`);
    }
    console.error(`${dir}: ${parts.join("; ")}`);
  }
  return { config, numLabels, tensors, skipped, initialized, weights: { format, path: file } };
}

/** `cls.predictions.*, cls.seq_relationship.*` style summary of skipped names. */
function summarise(names: string[]): string {
  const groups = new Set(names.map((n) => {
    const head = PRETRAINING_HEADS.find((p) => n.startsWith(p));
    return head ? `${head}*` : n;
  }));
  return [...groups].join(", ");
}

export interface SaveOptions {
  /** A model folder whose vocab.txt (required) and tokenizer files (optional) are copied alongside. */
  vocabFrom?: string;
  /** Marks the config `problem_type: "regression"` (STS-B). */
  regression?: boolean;
}

/** Tokenizer files copied from `vocabFrom` when present; vocab.txt is required. */
const TOKENIZER_FILES = ["tokenizer_config.json", "special_tokens_map.json", "tokenizer.json"];

/**
 * Writes DIR/model.safetensors (F32, canonical names, PyTorch layout) and DIR/config.json for
 * `BertForSequenceClassification`, plus the tokenizer files from `vocabFrom`. Every file is atomic.
 */
export async function saveCheckpoint(
  dir: string,
  ck: { config: BertConfig; numLabels: number; tensors: TensorMap },
  opts: SaveOptions = {},
): Promise<void> {
  const shapes = parameterShapes(ck.config, ck.numLabels);
  for (const [name, want] of shapes) {
    const t = ck.tensors.get(name);
    if (!t) throw new Error(`saveCheckpoint ${dir}: tensor "${name}" is missing`);
    if (!sameShape(t.shape, want)) {
      throw new Error(`saveCheckpoint ${dir}: tensor "${name}" has shape [${t.shape}], expected [${want}]`);
    }
  }
  for (const name of ck.tensors.keys()) {
    if (!shapes.has(name)) throw new Error(`saveCheckpoint ${dir}: "${name}" is not a model parameter`);
  }

  // Read the tokenizer files first so that a bad vocabFrom fails before anything is written.
  const copies: [string, Uint8Array][] = [];
  if (opts.vocabFrom) {
    const vocab = join(opts.vocabFrom, "vocab.txt");
    try {
      copies.push(["vocab.txt", await Deno.readFile(vocab)]);
    } catch (err) {
      throw new Error(`saveCheckpoint: cannot read ${vocab} (${(err as Error).message})`);
    }
    for (const name of TOKENIZER_FILES) {
      try {
        copies.push([name, await Deno.readFile(join(opts.vocabFrom, name))]);
      } catch (err) {
        if (!(err instanceof Deno.errors.NotFound)) throw err;
      }
    }
  }

  const config: Record<string, unknown> = { ...ck.config };
  config.architectures = ["BertForSequenceClassification"];
  config.model_type = "bert";
  // Keep label names the config already had when they fit; otherwise transformers' defaults.
  const old = ck.config.id2label as Record<string, string> | undefined;
  const id2label: Record<string, string> = {};
  for (let i = 0; i < ck.numLabels; i++) {
    id2label[String(i)] = old && Object.keys(old).length === ck.numLabels && old[String(i)]
      ? old[String(i)]
      : `LABEL_${i}`;
  }
  config.id2label = id2label;
  config.label2id = Object.fromEntries(Object.entries(id2label).map(([i, l]) => [l, Number(i)]));
  config.num_labels = ck.numLabels;
  if (opts.regression) config.problem_type = "regression";
  else if (ck.numLabels > 1) config.problem_type = "single_label_classification";
  else delete config.problem_type;

  const ordered: TensorMap = new Map([...shapes.keys()].map((n) => [n, ck.tensors.get(n)!]));
  // transformers refuses safetensors whose metadata format is not "pt".
  await writeSafetensors(join(dir, "model.safetensors"), ordered, { format: "pt" });
  await writeJsonAtomic(join(dir, "config.json"), config);
  for (const [name, bytes] of copies) await writeFileAtomic(join(dir, name), bytes);
}
