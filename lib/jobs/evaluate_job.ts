/**
 * The evaluate operation: scores a model (a fine-tuned checkpoint, or a base model plus a run's delta) on
 * a GLUE split, batched without dropout (lib/tuning/evaluate.ts). `normtune evaluate` is its command; the
 * trainer scores its dev set each epoch with the same `evaluateModel`.
 *
 * ```ts
 * const r = await runEvaluate({ model: "bert-tiny-mlm", delta: "runs/rte-ln/delta.safetensors", task: "RTE" });
 * r.metrics.main;
 * ```
 */
import { loadCheckpoint } from "../bert/checkpoint.ts";
import { maxLenProblem, readConfig } from "../bert/config.ts";
import { BertClassifier } from "../bert/model.ts";
import { WordPieceTokenizer } from "../bert/tokenizer.ts";
import { getTask, loadSplit } from "../glue/mod.ts";
import type { GemmAsk } from "../backend/gemm_choice.ts";
import { type BackendName, initCompute } from "../tf.ts";
import { loadWithDelta } from "../tuning/delta.ts";
import { encodeExamples, evaluateModel } from "../tuning/evaluate.ts";
import { modelDir } from "../util/paths.ts";
import { join } from "node:path";

export interface EvaluateConfig {
  /** Model folder or name. */
  model: string;
  /** A run's delta applied to the model. */
  delta?: string;
  task: string;
  /** Default: the task's main dev split. */
  split?: string;
  /** Tokens per example; default 128. */
  maxLen?: number;
  /** Default 64. */
  batchSize?: number;
  /** A fixed random subset of the split. */
  maxExamples?: number;
  /** Seeds a fresh head when the model has none; default 42. */
  seed?: number;
  backend?: BackendName;
  /** The wasm backend's product (lib/backend/gemm_choice.ts); default NORMTUNE_GEMM, else wasm. */
  gemm?: GemmAsk;
  /** OpenBLAS threads; default `blasThreads(1)`. */
  gemmThreads?: number;
  glueDir?: string;
}

export interface EvaluateRun {
  task: string;
  split: string;
  examples: number;
  model: string;
  delta: string | null;
  backend: string;
  metrics: Record<string, number>;
  seconds: number;
  /** True when the model had no head for the task: the scores are a random classifier's. */
  freshHead: boolean;
}

/** Runs an evaluation configuration. */
export async function runEvaluate(c: EvaluateConfig): Promise<EvaluateRun> {
  const batchSize = c.batchSize ?? 64;
  if (!Number.isInteger(batchSize) || batchSize < 1) {
    throw new Error(`batch size must be a positive integer, got ${batchSize}`);
  }
  const backend =
    (await initCompute({ backend: c.backend, gemm: c.gemm, gemmThreads: c.gemmThreads })).identity;
  const task = getTask(c.task);
  const split = c.split ?? task.mainSplit;
  const dir = modelDir(c.model);
  const maxLen = c.maxLen ?? 128;
  const tooLong = maxLenProblem(maxLen, await readConfig(join(dir, "config.json")));
  if (tooLong) throw new Error(`max length ${tooLong} (${dir})`);
  const ck = c.delta
    ? await loadWithDelta(dir, c.delta)
    : await loadCheckpoint(dir, { numLabels: task.numLabels, seed: c.seed ?? 42 });
  if (ck.numLabels !== task.numLabels) {
    throw new Error(
      `${c.delta}: its head has ${ck.numLabels} outputs but ${task.name} needs ${task.numLabels}`,
    );
  }
  const tokenizer = await WordPieceTokenizer.fromModelDir(dir);
  const { examples } = await loadSplit(task, split, { glueDir: c.glueDir, maxExamples: c.maxExamples });
  const model = new BertClassifier(ck.config, ck.numLabels, ck.tensors);
  try {
    const set = encodeExamples(tokenizer, examples, maxLen);
    const r = await evaluateModel(model, task, set, { batchSize, label: `eval ${task.name} ${split}` });
    return {
      task: task.name,
      split,
      examples: examples.length,
      model: dir,
      delta: c.delta ?? null,
      backend,
      metrics: r.metrics,
      seconds: r.seconds,
      freshHead: ck.initialized.some((n) => n.startsWith("classifier.")),
    };
  } finally {
    model.dispose();
  }
}
