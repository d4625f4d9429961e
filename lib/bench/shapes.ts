/**
 * The model shapes the benchmark measures (the same as `../shared/bench/torch_step.py`'s), and the
 * analytic FLOP count of one training step, so that a measured time becomes an effective GFLOP/s.
 *
 * Only matrix products are counted (2 FLOPs per multiply-add): they are >97% of BERT's arithmetic;
 * element-wise work (LayerNorm, GELU, softmax, the optimizer) is not. Per token and layer, the forward
 * pass does 8h^2 (query, key, value, output) + 4hf (feed-forward) + 4sh (scores and context).
 * The backward pass computes, for every product, the gradient of each input that is on a path to a
 * trained parameter: with frozen weights that is only the activations' gradient (about the forward
 * count again); training the weights adds their gradients (another forward count). Attention has no
 * weights, so both of its products' input gradients are always needed.
 */
import type { BertConfig } from "../bert/config.ts";
import { parseConfig } from "../bert/config.ts";

export type ShapeName = "tiny" | "mini" | "base";
export type BenchMode = "full" | "bitfit" | "layernorm";

export const SHAPE_NAMES: readonly ShapeName[] = ["tiny", "mini", "base"];
export const BENCH_MODES: readonly BenchMode[] = ["full", "bitfit", "layernorm"];

export interface BenchShape {
  name: ShapeName;
  layers: number;
  hidden: number;
  heads: number;
  ffn: number;
  batch: number;
  seq: number;
}

export const VOCAB = 30522;
export const NUM_LABELS = 2;

/** As torch_step.py's SHAPES: layers, hidden, heads, ffn, batch, seq. */
export const SHAPES: Readonly<Record<ShapeName, BenchShape>> = {
  tiny: { name: "tiny", layers: 2, hidden: 128, heads: 2, ffn: 512, batch: 32, seq: 128 },
  mini: { name: "mini", layers: 4, hidden: 256, heads: 4, ffn: 1024, batch: 32, seq: 128 },
  base: { name: "base", layers: 12, hidden: 768, heads: 12, ffn: 3072, batch: 8, seq: 128 },
};

export function getShape(name: string): BenchShape {
  const s = SHAPES[name as ShapeName];
  if (!s) throw new Error(`unknown benchmark shape "${name}": use one of ${SHAPE_NAMES.join(", ")}`);
  return s;
}

/** A BERT config of this shape (vocab 30522, no dropout so that runs compare with the PyTorch step). */
export function shapeConfig(s: BenchShape): BertConfig {
  return parseConfig({
    vocab_size: VOCAB,
    hidden_size: s.hidden,
    num_hidden_layers: s.layers,
    num_attention_heads: s.heads,
    intermediate_size: s.ffn,
    hidden_dropout_prob: 0,
    attention_probs_dropout_prob: 0,
  }, `benchmark shape ${s.name}`);
}

export interface FlopCount {
  /** Forward pass (an evaluation). */
  forward: number;
  /** Forward + backward for the given mode. */
  step: number;
}

/** Matrix-product FLOPs of one step on `batch` x `seq` tokens (see the module comment). */
export function stepFlops(s: BenchShape, mode: BenchMode, batch = s.batch, seq = s.seq): FlopCount {
  const tokens = batch * seq, h = s.hidden, f = s.ffn;
  const dense = tokens * (8 * h * h + 4 * h * f) * s.layers; // weights' products
  const attn = tokens * 4 * seq * h * s.layers; // scores + context
  const head = batch * (2 * h * h + 2 * h * NUM_LABELS); // pooler + classifier
  const forward = dense + attn + head;
  // Backward: activations' gradients always (dense, both attention inputs, the head); weights'
  // gradients only when weights train. The classifier weight always trains (tiny either way).
  const weightsTrain = mode === "full";
  const backward = dense * (weightsTrain ? 2 : 1) + 2 * attn + head * (weightsTrain ? 2 : 1) +
    (weightsTrain ? 0 : batch * 2 * h * NUM_LABELS);
  return { forward, step: forward + backward };
}

/** Shape of the step's largest product (rows x inner x out), for the backend's own matMul peak. */
export function largestProduct(s: BenchShape, batch = s.batch, seq = s.seq): [number, number, number] {
  return [batch * seq, s.hidden, s.ffn];
}
