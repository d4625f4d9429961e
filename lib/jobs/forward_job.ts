/**
 * The forward operation: the classifier without dropout on encoded inputs (lib/jobs/encoded_inputs.ts),
 * giving logits for every input and, when every input has a label, the mean loss (cross-entropy, or mean
 * squared error when numLabels is 1) and its gradient for every parameter under its Hugging Face name:
 * the hook for checking the TypeScript model against PyTorch on any checkpoint. `normtune forward` is its
 * command.
 *
 * ```ts
 * const r = await runForward({ model: "bert-tiny-mlm", inputs: "in.jsonl", numLabels: 2, out: "out/" });
 * r.logits; r.files; // OUT/logits.json (+ loss.json, grads.safetensors)
 * ```
 */
import { join } from "node:path";
import { batchFromEncoded } from "../bert/batch.ts";
import { loadCheckpoint } from "../bert/checkpoint.ts";
import { BertClassifier } from "../bert/model.ts";
import { readSafetensors, type TensorMap, writeSafetensors } from "../bert/safetensors.ts";
import type { GemmAsk } from "../backend/gemm_choice.ts";
import { type BackendName, initCompute, tf } from "../tf.ts";
import { writeJsonAtomic } from "../util/atomic.ts";
import { modelDir } from "../util/paths.ts";
import { type EncodedInput, readEncodedInputs } from "./encoded_inputs.ts";

export interface ForwardConfig {
  /** Model folder or name. */
  model: string;
  /** The JSONL inputs. */
  inputs: string;
  numLabels: number;
  /** A head (classifier, optionally pooler) to use instead of a fresh one. */
  head?: string;
  /** Inputs per pass; default 32. */
  batchSize?: number;
  backend?: BackendName;
  /** The wasm backend's product (lib/backend/gemm_choice.ts); default NORMTUNE_GEMM, else wasm. */
  gemm?: GemmAsk;
  /** OpenBLAS threads; default `blasThreads(1)`. */
  gemmThreads?: number;
  /** Folder for logits.json, loss.json and grads.safetensors; nothing is written without it. */
  out?: string;
}

/** Checks a forward configuration and fills its defaults. */
export function forwardConfig(
  c: ForwardConfig,
): Required<Omit<ForwardConfig, "head" | "backend" | "gemm" | "gemmThreads" | "out">> & ForwardConfig {
  if (!Number.isInteger(c.numLabels) || c.numLabels < 1) {
    throw new Error(`num labels must be a positive integer, got ${c.numLabels}`);
  }
  const batchSize = c.batchSize ?? 32;
  if (!Number.isInteger(batchSize) || batchSize < 1) {
    throw new Error(`batch size must be a positive integer, got ${batchSize}`);
  }
  return { ...c, batchSize };
}

export interface ForwardRun extends ForwardResult {
  /** The inputs read. */
  n: number;
  /** The files written in `out`. */
  files: string[];
}

/** Runs a forward configuration: reads the inputs, loads the model, computes and writes the results. */
export async function runForward(config: ForwardConfig): Promise<ForwardRun> {
  const c = forwardConfig(config);
  const rows = await readEncodedInputs(c.inputs, { numLabels: c.numLabels });
  const head = c.head ? await readSafetensors(c.head) : undefined;
  await initCompute({ backend: c.backend, gemm: c.gemm, gemmThreads: c.gemmThreads });
  const ckpt = await loadCheckpoint(modelDir(c.model), { numLabels: c.numLabels, head });
  const model = new BertClassifier(ckpt.config, c.numLabels, ckpt.tensors);
  let result: ForwardResult;
  try {
    result = await forwardAll(model, rows, c.batchSize);
  } finally {
    model.dispose();
  }
  const files: string[] = [];
  if (c.out) {
    files.push(join(c.out, "logits.json"));
    await writeJsonAtomic(files[0], result.logits);
    if (result.grads) {
      files.push(join(c.out, "loss.json"), join(c.out, "grads.safetensors"));
      await writeJsonAtomic(files[1], {
        loss: result.loss,
        kind: c.numLabels === 1 ? "mean_squared_error" : "cross_entropy",
        n: rows.length,
      });
      await writeSafetensors(files[2], result.grads);
    }
  }
  return { ...result, n: rows.length, files };
}

export interface ForwardResult {
  logits: number[][];
  /** Present when every input has a label. */
  loss?: number;
  grads?: TensorMap;
}

/**
 * Logits for every row (in batches), and with labels the mean loss over all rows and its gradient for
 * every parameter: the sum over batches of (batch share) x (gradient of the batch mean). Values are read
 * with `await` (webgpu cannot read synchronously), so tensors are disposed by hand, not by tf.tidy.
 */
export async function forwardAll(
  model: BertClassifier,
  rows: EncodedInput[],
  batchSize: number,
): Promise<ForwardResult> {
  const labelled = rows[0].label !== undefined;
  const names = [...model.params.keys()];
  const vars = names.map((n) => model.params.get(n)!);
  const acc = labelled ? names.map((n) => new Float32Array(model.params.get(n)!.size)) : [];
  const logits: number[][] = [];
  let loss = 0;
  for (let start = 0; start < rows.length; start += batchSize) {
    const chunk = rows.slice(start, start + batchSize);
    const batch = batchFromEncoded(chunk);
    if (!labelled) {
      const l = tf.tidy(() => model.logits(batch));
      try {
        logits.push(...(await l.array()) as number[][]);
      } finally {
        l.dispose();
      }
      continue;
    }
    const labels = chunk.map((r) => r.label!);
    const share = chunk.length / rows.length;
    let kept: tf.Tensor | undefined;
    const { value, grads } = tf.variableGrads(() => {
      const l = model.logits(batch);
      kept = tf.keep(l); // read after the pass: nothing can be awaited inside it
      return model.loss(l, labels);
    }, vars);
    try {
      logits.push(...(await kept!.array()) as number[][]);
      loss += share * (await value.data())[0];
      for (let i = 0; i < vars.length; i++) {
        const g = await grads[vars[i].name].data();
        const a = acc[i];
        for (let j = 0; j < a.length; j++) a[j] += share * g[j];
      }
    } finally {
      tf.dispose([kept!, value, ...Object.values(grads)]);
    }
  }
  if (!labelled) return { logits };
  const gradMap: TensorMap = new Map(
    names.map((n, i) => [n, { shape: [...model.params.get(n)!.shape], data: acc[i] }]),
  );
  return { logits, loss, grads: gradMap };
}
