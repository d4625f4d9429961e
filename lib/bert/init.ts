/**
 * BERT's random initialisation, for training the same architecture without pretraining (a control:
 * does pretraining matter at all for this model?). As Hugging Face's `BertPreTrainedModel._init_weights`:
 * Linear and embedding weights ~ N(0, initializer_range), biases zero, LayerNorm gamma 1 and beta 0, and the
 * word embedding row of the padding token zero.
 *
 * Each tensor draws from its own stream, seeded by the run's seed and the tensor's name exactly as the
 * checkpoint loader seeds a fresh pooler or classifier (lib/bert/checkpoint.ts): so with the same seed, a
 * random-init run and a pretrained run start from the same head (and, for a checkpoint without a
 * pooler, the same pooler), and differ only where pretraining put its weights.
 *
 * ```ts
 * const ck = randomCheckpoint(await loadCheckpoint(dir, { numLabels: 2, seed: 3 }), 3);
 * ck.initialized.length === ck.tensors.size; // every tensor is fresh
 * ```
 */
import type { Checkpoint } from "./checkpoint.ts";
import { hashName, initTensor } from "./checkpoint.ts";
import type { BertConfig } from "./config.ts";
import { isLayerNorm, parameterShapes, WORD_EMBEDDINGS } from "./names.ts";
import { elementCount } from "../util/shape.ts";
import type { TensorMap } from "./safetensors.ts";
import { mulberry32 } from "../util/random.ts";

/** Where a run's weights start: the checkpoint's, or BERT's random initialisation. */
export type InitName = "pretrained" | "random";
export const INIT_NAMES: readonly InitName[] = ["pretrained", "random"];

/** Every parameter of `BertForSequenceClassification`, freshly initialised from `seed`. */
export function randomWeights(config: BertConfig, numLabels: number, seed: number): TensorMap {
  const out: TensorMap = new Map();
  for (const [name, shape] of parameterShapes(config, numLabels)) {
    if (isLayerNorm(name)) {
      // gamma 1, beta 0: the layer starts as a plain normalisation.
      out.set(name, {
        shape: [...shape],
        data: new Float32Array(elementCount(shape)).fill(name.endsWith(".weight") ? 1 : 0),
      });
      continue;
    }
    const rng = mulberry32((seed ^ hashName(name)) >>> 0);
    const t = initTensor(shape, name.endsWith(".bias") ? "bias" : "weight", config.initializer_range, rng);
    if (name === WORD_EMBEDDINGS) {
      const h = shape[1], pad = config.pad_token_id;
      if (pad >= 0 && pad < shape[0]) t.data.fill(0, pad * h, (pad + 1) * h);
    }
    out.set(name, t);
  }
  return out;
}

/** The checkpoint with every tensor replaced by BERT's random initialisation (config and head size kept). */
export function randomCheckpoint(ck: Checkpoint, seed: number): Checkpoint {
  const tensors = randomWeights(ck.config, ck.numLabels, seed);
  return { ...ck, tensors, initialized: [...tensors.keys()] };
}
