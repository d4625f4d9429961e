/**
 * Encoding GLUE examples and scoring a model on them: batched, no dropout, each batch padded only to its
 * own longest example (batches sorted by length), predictions put back in example order.
 *
 * ```ts
 * const data = encodeExamples(tokenizer, examples, 128);
 * const { metrics, predictions } = await evaluateModel(model, task, data, { batchSize: 64 });
 * ```
 */
import { type EncodedSet, makeBatch } from "../bert/batch.ts";
import type { BertClassifier } from "../bert/model.ts";
import type { WordPieceTokenizer } from "../bert/tokenizer.ts";
import { computeMetrics, type Example, type GlueTask } from "../glue/mod.ts";
import { tf } from "../tf.ts";
import { progress } from "../util/progress.ts";
import { evalBatches } from "./batches.ts";

/** Tokenizes examples without padding (batches pad to their own longest row). */
export function encodeExamples(
  tokenizer: WordPieceTokenizer,
  examples: Example[],
  maxLen: number,
): EncodedSet {
  const rows = examples.map((e) => tokenizer.encode(e.textA, e.textB, { maxLen, pad: false }));
  return { rows, labels: examples.map((e) => e.label), lengths: rows.map((r) => r.inputIds.length) };
}

export interface EvalOptions {
  batchSize?: number;
  /** Label for the progress line; none when omitted. */
  label?: string;
}

/**
 * Predictions in example order: the argmax class (first of equal logits), or the score when the model
 * has one output (regression).
 */
export async function predict(
  model: BertClassifier,
  set: EncodedSet,
  opts: EvalOptions = {},
): Promise<number[]> {
  const batchSize = opts.batchSize ?? 64;
  const out = new Array<number>(set.rows.length);
  const batches = evalBatches(set.lengths, batchSize);
  const bar = opts.label ? progress(opts.label, set.rows.length, { unit: "ex" }) : undefined;
  let done = 0;
  for (const indices of batches) {
    const batch = makeBatch(set, indices);
    const logits = tf.tidy(() => model.logits(batch, { training: false }));
    const k = logits.shape[1];
    let values: Float32Array; // [batch, numLabels]
    try {
      values = (await logits.data()) as Float32Array; // async: webgpu cannot read synchronously
    } finally {
      logits.dispose();
    }
    indices.forEach((idx, r) => {
      if (k === 1) {
        out[idx] = values[r];
        return;
      }
      let best = 0;
      for (let c = 1; c < k; c++) if (values[r * k + c] > values[r * k + best]) best = c;
      out[idx] = best;
    });
    done += indices.length;
    bar?.update(done);
  }
  bar?.done();
  return out;
}

export interface EvalResult {
  metrics: Record<string, number>;
  predictions: number[];
  seconds: number;
}

/** Scores the model on an encoded split with the task's official metrics (`main` included). */
export async function evaluateModel(
  model: BertClassifier,
  task: GlueTask,
  set: EncodedSet,
  opts: EvalOptions = {},
): Promise<EvalResult> {
  const start = performance.now();
  const predictions = await predict(model, set, opts);
  const metrics = computeMetrics(task, predictions, set.labels);
  return { metrics, predictions, seconds: (performance.now() - start) / 1000 };
}
