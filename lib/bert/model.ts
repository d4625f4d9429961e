/**
 * BERT for sequence classification in TensorFlow.js, computing exactly what Hugging Face's
 * `BertForSequenceClassification` computes: embeddings (word + position + token type) -> LayerNorm ->
 * dropout; per layer self-attention -> dense -> dropout -> LayerNorm(x + attn), then intermediate dense
 * -> GELU(erf) -> output dense -> dropout -> LayerNorm(x + ffn); pooler tanh(dense(h[:, 0])) -> dropout
 * -> classifier. Checked against a plain-PyTorch reference (tools/make_golden.py).
 *
 * Parameters are `tf.Variable`s keyed by their Hugging Face names, in PyTorch layout, so the trainer
 * chooses what to train by name: `tf.variableGrads(() => model.loss(model.logits(b), y), varList)`.
 *
 * ```ts
 * const ckpt = await loadCheckpoint(dir, { numLabels: 2 });
 * const model = new BertClassifier(ckpt.config, 2, ckpt.tensors);
 * const logits = model.logits(batchFromEncoded(rows)); // [batch, 2]
 * ```
 */
import { tf } from "../tf.ts";
import type { Batch } from "./batch.ts";
import type { BertConfig } from "./config.ts";
import {
  CLASSIFIER,
  EMBEDDINGS_LAYER_NORM,
  layerPrefix,
  parameterShapes,
  POOLER,
  POSITION_EMBEDDINGS,
  TOKEN_TYPE_EMBEDDINGS,
  WORD_EMBEDDINGS,
} from "./names.ts";
import { elementCount } from "../util/shape.ts";
import type { TensorMap } from "./safetensors.ts";
import { additiveMask, attention, dense, dropout, embedding, gelu, layerNorm } from "./ops.ts";

export interface ForwardOptions {
  /** Apply dropout (default false). */
  training?: boolean;
  /** Dropout seed: the same seed gives the same masks (default: random). */
  seed?: number;
  /**
   * Tensors that replace parameters in this pass, by name. Element-wise ones (biases, LayerNorm
   * weights) may be [batch, ...shape]: one copy per example, whose gradient is that example's own.
   */
  overrides?: Map<string, tf.Tensor>;
}

export class BertClassifier {
  readonly config: BertConfig;
  readonly numLabels: number;
  /** Hugging Face name -> variable, PyTorch layout, in the order of `parameterShapes`. */
  readonly params: Map<string, tf.Variable>;

  constructor(config: BertConfig, numLabels: number, tensors: TensorMap) {
    if (!Number.isInteger(numLabels) || numLabels < 1) {
      throw new Error(`numLabels must be a positive integer, got ${numLabels}`);
    }
    const shapes = parameterShapes(config, numLabels);
    // Check everything before allocating, so a bad checkpoint leaks no variables.
    for (const [name, shape] of shapes) {
      const t = tensors.get(name);
      if (!t) {
        throw new Error(`parameter "${name}" [${shape}] is missing from the tensors given to the model`);
      }
      if (
        t.shape.length !== shape.length || t.shape.some((d, i) => d !== shape[i]) ||
        t.data.length !== elementCount(shape)
      ) {
        throw new Error(
          `parameter "${name}" has shape [${t.shape}] (${t.data.length} values) but the config wants [${shape}]`,
        );
      }
    }
    this.config = config;
    this.numLabels = numLabels;
    this.params = new Map();
    for (const [name, shape] of shapes) {
      // The variable takes over the tensor's data; tidy disposes the temporary handle.
      const v = tf.tidy(() => tf.variable(tf.tensor(tensors.get(name)!.data, shape, "float32"), true));
      this.params.set(name, v);
    }
  }

  /** Logits [batch, numLabels] for a batch. */
  logits(batch: Batch, opts: ForwardOptions = {}): tf.Tensor2D {
    this.checkBatch(batch);
    const overrides = opts.overrides ?? new Map<string, tf.Tensor>();
    for (const name of overrides.keys()) {
      if (!this.params.has(name)) throw new Error(`override "${name}" is not a parameter of this model`);
    }
    const c = this.config;
    const { batchSize: b, seqLen: s } = batch;
    const h = c.hidden_size, eps = c.layer_norm_eps;
    const training = opts.training ?? false;
    const seed = opts.seed ?? Math.floor(Math.random() * 2 ** 31);
    let site = 0; // each dropout site gets its own seed, derived from opts.seed
    const drop = (x: tf.Tensor, rate: number) => training ? dropout(x, rate, `${seed}:${site++}`) : x;
    const hiddenDrop = c.hidden_dropout_prob;
    const classifierDrop = typeof c.classifier_dropout === "number" ? c.classifier_dropout : hiddenDrop;
    const p = (name: string): tf.Tensor => overrides.get(name) ?? this.params.get(name)!;
    const ln = (x: tf.Tensor, name: string) => layerNorm(x, p(`${name}.weight`), p(`${name}.bias`), eps);
    const linear = (x: tf.Tensor, name: string) => dense(x, p(`${name}.weight`), p(`${name}.bias`));

    return tf.tidy(() => {
      const ids = tf.tensor1d(batch.inputIds, "int32");
      const types = tf.tensor1d(batch.tokenTypeIds, "int32");
      const tokens = tf.add(embedding(p(WORD_EMBEDDINGS), ids), embedding(p(TOKEN_TYPE_EMBEDDINGS), types)); // [b*s, h]
      const positions = tf.slice(p(POSITION_EMBEDDINGS), [0, 0], [s, h]); // [s, h]
      let x = tf.add(tf.reshape(tokens, [b, s, h]), positions); // [b, s, h]
      x = drop(ln(x, EMBEDDINGS_LAYER_NORM), hiddenDrop);
      const mask = additiveMask(batch.attentionMask, b, s); // [b, 1, 1, s]
      const shape = { batch: b, seq: s, heads: c.num_attention_heads };
      const encoderLayer = (input: tf.Tensor, i: number): tf.Tensor => {
        const pre = layerPrefix(i);
        const q = linear(input, `${pre}.attention.self.query`); // [b, s, h]
        const k = linear(input, `${pre}.attention.self.key`);
        const v = linear(input, `${pre}.attention.self.value`);
        const ctx = tf.reshape(
          attention(q, k, v, mask, shape, (probs) => drop(probs, c.attention_probs_dropout_prob)),
          [b, s, h],
        );
        const attn = drop(linear(ctx, `${pre}.attention.output.dense`), hiddenDrop);
        const mid = ln(tf.add(attn, input), `${pre}.attention.output.LayerNorm`);
        const inter = gelu(linear(mid, `${pre}.intermediate.dense`)); // [b, s, intermediate]
        const out = drop(linear(inter, `${pre}.output.dense`), hiddenDrop);
        return ln(tf.add(out, mid), `${pre}.output.LayerNorm`);
      };
      for (let i = 0; i < c.num_hidden_layers; i++) {
        // A layer's own tidy frees its intermediates (a [b, s, intermediate] GELU input and output, the
        // attention probabilities) as soon as the layer is done, not at the end of the whole pass; what a
        // gradient needs, the engine keeps. An evaluation batch of 64 x 128 on bert-base otherwise holds
        // every layer's at once and overflows the 4 GiB wasm heap.
        const input = x;
        x = tf.tidy(() => encoderLayer(input, i));
      }
      const first = tf.reshape(tf.slice(x, [0, 0, 0], [b, 1, h]), [b, h]); // [CLS] states [b, h]
      const pooled = drop(tf.tanh(linear(first, POOLER)), classifierDrop);
      return linear(pooled, CLASSIFIER) as tf.Tensor2D; // [b, numLabels]
    });
  }

  /**
   * Mean cross-entropy over the batch (labels are class indices), or mean squared error when
   * numLabels is 1 (labels are targets), as Hugging Face computes them.
   */
  loss(logits: tf.Tensor2D, labels: Float32Array | Int32Array | number[]): tf.Scalar {
    const [n, k] = logits.shape;
    if (labels.length !== n) throw new Error(`loss: ${labels.length} labels for ${n} logits rows`);
    if (k !== this.numLabels) {
      throw new Error(`loss: logits have ${k} columns, the model has ${this.numLabels} labels`);
    }
    return tf.tidy(() => {
      if (k === 1) {
        const target = tf.tensor1d(Float32Array.from(labels), "float32");
        return tf.mean(tf.square(tf.sub(tf.reshape(logits, [n]), target))) as tf.Scalar;
      }
      const classes = Int32Array.from(labels, (y, i) => {
        if (!Number.isInteger(y) || y < 0 || y >= k) {
          throw new Error(`loss: label ${y} of row ${i} is not a class index in [0, ${k})`);
        }
        return y;
      });
      const picked = tf.sum(tf.mul(tf.oneHot(tf.tensor1d(classes, "int32"), k), tf.logSoftmax(logits)), 1); // [n]
      return tf.neg(tf.mean(picked)) as tf.Scalar;
    });
  }

  /** Current parameter values (copies), by name; read asynchronously (webgpu cannot read synchronously). */
  async exportTensors(): Promise<TensorMap> {
    const out: TensorMap = new Map();
    for (const [name, v] of this.params) {
      out.set(name, { shape: [...v.shape], data: new Float32Array((await v.data()) as Float32Array) });
    }
    return out;
  }

  dispose(): void {
    for (const v of this.params.values()) v.dispose();
  }

  private checkBatch(batch: Batch): void {
    const c = this.config;
    const { batchSize: b, seqLen: s } = batch;
    const n = b * s;
    if (batch.inputIds.length !== n || batch.tokenTypeIds.length !== n || batch.attentionMask.length !== n) {
      throw new Error(`batch arrays must hold batchSize * seqLen = ${n} entries`);
    }
    if (s > c.max_position_embeddings) {
      throw new Error(
        `sequence length ${s} exceeds max_position_embeddings ${c.max_position_embeddings}: encode with a smaller max length`,
      );
    }
    for (let i = 0; i < n; i++) {
      const id = batch.inputIds[i], type = batch.tokenTypeIds[i];
      if (id < 0 || id >= c.vocab_size || type < 0 || type >= c.type_vocab_size) {
        throw new Error(
          `row ${Math.floor(i / s)}, position ${i % s}: token id ${id} / token type ${type} outside ` +
            `vocab_size ${c.vocab_size} / type_vocab_size ${c.type_vocab_size}: was it encoded with this model's vocab?`,
        );
      }
    }
  }
}
