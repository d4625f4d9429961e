/**
 * Random weights and inputs for the benchmark: a model of a given shape needs no checkpoint (speed does
 * not depend on the values), and a seeded generator makes runs repeatable.
 *
 * ```ts
 * const tensors = randomTensors(shapeConfig(SHAPES.tiny), 2, 0);
 * const { batch, labels } = randomBatch(32, 128, 0);
 * ```
 */
import type { Batch } from "../bert/batch.ts";
import type { BertConfig } from "../bert/config.ts";
import { isLayerNorm, parameterShapes } from "../bert/names.ts";
import { elementCount } from "../util/shape.ts";
import type { TensorMap } from "../bert/safetensors.ts";
import { mulberry32 } from "../util/random.ts";
import { NUM_LABELS, VOCAB } from "./shapes.ts";

/**
 * Every parameter with BERT's initialisation (weights ~ U(-a, a) with the std of N(0, 0.02), biases 0,
 * LayerNorm gamma 1). Uniform instead of normal: a 110M-parameter model fills in a second, not ten.
 */
export function randomTensors(config: BertConfig, numLabels = NUM_LABELS, seed = 0): TensorMap {
  const rng = mulberry32(seed);
  const a = 0.02 * Math.sqrt(3); // U(-a, a) has std 0.02
  const out: TensorMap = new Map();
  for (const [name, shape] of parameterShapes(config, numLabels)) {
    const data = new Float32Array(elementCount(shape));
    if (isLayerNorm(name)) {
      if (name.endsWith(".weight")) data.fill(1);
    } else if (!name.endsWith(".bias")) {
      for (let i = 0; i < data.length; i++) data[i] = (2 * rng() - 1) * a;
    }
    out.set(name, { shape, data });
  }
  return out;
}

/** A full batch of random tokens (no padding, as torch_step.py) and random labels. */
export function randomBatch(
  batchSize: number,
  seqLen: number,
  seed = 0,
): { batch: Batch; labels: Int32Array } {
  const rng = mulberry32(seed ^ 0x5eed);
  const n = batchSize * seqLen;
  const inputIds = new Int32Array(n);
  for (let i = 0; i < n; i++) inputIds[i] = Math.floor(rng() * VOCAB);
  const labels = new Int32Array(batchSize);
  for (let i = 0; i < batchSize; i++) labels[i] = Math.floor(rng() * NUM_LABELS);
  return {
    batch: {
      inputIds,
      tokenTypeIds: new Int32Array(n),
      attentionMask: new Int32Array(n).fill(1),
      batchSize,
      seqLen,
    },
    labels,
  };
}
