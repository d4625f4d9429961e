/**
 * The Fisher operation: empirical Fisher information per parameter element (lib/analysis/
 * fisher_information.ts) of a model state on N examples, written as a safetensors file (one tensor per
 * scored parameter, Hugging Face names), with its records per component x layer x kind and the ranking.
 * `normtune fisher` and the study's `fisher` cells run it.
 *
 * The model state: the pretrained encoder with a fresh head seeded by `seed` (or the `head` file), or
 * base + `delta` ("fine-tuned"). The examples: with `task`, a seeded random subset of the split (in file
 * order), encoded to `maxLen` without padding; with `inputs`, the JSONL file's first N encoded lines.
 *
 * Why no padding: computeFisher cuts every example to its last attended position before its pass, so
 * padding to `maxLen` changes no score (a test holds it) and only costs memory.
 *
 * ```ts
 * const r = await runFisher({ model: "bert-tiny-mlm", task: "RTE", examples: 256, out: "rte.safetensors" });
 * r.ranking[0].component;
 * ```
 */
import { batchFromEncoded, type EncodedRow } from "../bert/batch.ts";
import { type Checkpoint, loadCheckpoint } from "../bert/checkpoint.ts";
import { BertClassifier } from "../bert/model.ts";
import { readSafetensors, type TensorMap, writeSafetensors } from "../bert/safetensors.ts";
import { WordPieceTokenizer } from "../bert/tokenizer.ts";
import { getTask, loadSplit } from "../glue/mod.ts";
import type { GemmAsk } from "../backend/gemm_choice.ts";
import { type BackendName, initCompute } from "../tf.ts";
import { loadWithDelta } from "../tuning/delta.ts";
import { modelDir } from "../util/paths.ts";
import {
  aggregateFisher,
  computeFisher,
  type FisherParams,
  type FisherRank,
  type FisherRecord,
  rankComponentsByFisher,
} from "../analysis/fisher_information.ts";
import { readEncodedInputs } from "./encoded_inputs.ts";

export const FISHER_PARAMS: readonly FisherParams[] = ["all", "layernorm", "elementwise"];

export interface FisherConfig {
  /** Model folder or name. */
  model: string;
  /** Score base + this delta ("fine-tuned") instead of the pretrained model. */
  delta?: string;
  /** A head file to use instead of a fresh one (not with `delta`). */
  head?: string;
  /** Labels of the head (needed with `inputs` unless `delta` gives them). */
  numLabels?: number;
  /** GLUE task whose split gives the examples (or `inputs`). */
  task?: string;
  /** Default "train". */
  split?: string;
  glueDir?: string;
  /** JSONL encoded inputs with labels (or `task`). */
  inputs?: string;
  /** N; required with `task`; with `inputs` default every line. */
  examples?: number;
  /** With `task`: take what the split has when it holds fewer than N (else that is an error). */
  allowFewer?: boolean;
  /** Default "layernorm". */
  params?: FisherParams;
  /** Default "true" (the empirical Fisher). */
  labels?: "true" | "sampled";
  /** Seeds the subset, the fresh head and sampled labels; default 0. */
  seed?: number;
  /** Tokens per example with `task`; default 128. */
  maxLen?: number;
  /** Examples per backward pass; default 8. */
  batchSize?: number;
  backend?: BackendName;
  /** The wasm backend's product (lib/backend/gemm_choice.ts); default NORMTUNE_GEMM, else wasm. */
  gemm?: GemmAsk;
  /** OpenBLAS threads; default `blasThreads(1)`. */
  gemmThreads?: number;
  /** The safetensors file to write (nothing is written without it). */
  out?: string;
  onProgress?: (done: number, total: number, seconds: number) => void;
}

/** A Fisher configuration with its defaults filled and every value checked. */
export type CheckedFisherConfig =
  & FisherConfig
  & Required<Pick<FisherConfig, "split" | "params" | "labels" | "seed" | "maxLen" | "batchSize">>;

/** Fills the defaults and checks every value; errors name the setting. */
export function fisherConfig(c: FisherConfig): CheckedFisherConfig {
  const params = c.params ?? "layernorm";
  if (!FISHER_PARAMS.includes(params)) {
    throw new Error(`params must be all, layernorm or elementwise, got "${params}"`);
  }
  const labels = c.labels ?? "true";
  if (labels !== "true" && labels !== "sampled") {
    throw new Error(`labels must be true or sampled, got "${labels}"`);
  }
  if ((c.task === undefined) === (c.inputs === undefined)) {
    throw new Error("give exactly one of a task or an inputs file");
  }
  if (c.delta !== undefined && c.head !== undefined) {
    throw new Error("a head and a delta exclude each other (a delta has its head)");
  }
  if (c.examples !== undefined && (!Number.isInteger(c.examples) || c.examples < 1)) {
    throw new Error(`examples must be a positive integer, got ${c.examples}`);
  }
  if (c.task !== undefined && c.examples === undefined) throw new Error("examples N is required with a task");
  const seed = c.seed ?? 0;
  if (!Number.isSafeInteger(seed) || seed < 0) throw new Error(`seed must be an integer >= 0, got ${seed}`);
  const batchSize = c.batchSize ?? 8;
  if (!Number.isInteger(batchSize) || batchSize < 1) {
    throw new Error(`batch size must be a positive integer, got ${batchSize}`);
  }
  if (c.out !== undefined && !c.out.endsWith(".safetensors")) {
    throw new Error(`the Fisher file must end in .safetensors, got ${c.out}`);
  }
  return { ...c, split: c.split ?? "train", params, labels, seed, maxLen: c.maxLen ?? 128, batchSize };
}

export interface FisherRun {
  fisher: TensorMap;
  records: FisherRecord[];
  /** Components by mean Fisher per element (classifier excluded). */
  ranking: FisherRank[];
  /** How it was computed (what the file's metadata and `normtune fisher`'s JSON record). */
  summary: {
    model: string;
    delta?: string;
    head: string;
    state: "pretrained" | "fine-tuned";
    task: string | null;
    split: string | null;
    inputs: string | null;
    N: number;
    seed: number;
    params: FisherParams;
    labels: "true" | "sampled";
    maxLen: number | null;
    numLabels: number;
    backend: string;
    seconds: number;
  };
}

/** Runs a Fisher configuration: examples, model state, computeFisher, the file, records and ranking. */
export async function runFisher(config: FisherConfig): Promise<FisherRun> {
  const c = fisherConfig(config);
  // The identity ("wasm", "wasm+openblas-t1"): the file says what computed it.
  const backend =
    (await initCompute({ backend: c.backend, gemm: c.gemm, gemmThreads: c.gemmThreads })).identity;
  const dir = modelDir(c.model);
  const task = c.task !== undefined ? getTask(c.task) : undefined;

  // The model state first: its labels check the inputs'.
  let ck: Checkpoint;
  if (c.delta) {
    ck = await loadWithDelta(dir, c.delta);
  } else {
    const numLabels = c.numLabels ?? task?.numLabels;
    if (numLabels === undefined) throw new Error("the number of labels is needed with an inputs file");
    const head = c.head ? await readSafetensors(c.head) : undefined;
    ck = await loadCheckpoint(dir, { numLabels, seed: c.seed, head, quiet: true });
  }
  if (task && ck.numLabels !== task.numLabels) {
    throw new Error(`the model has ${ck.numLabels} labels but ${task.name} has ${task.numLabels}`);
  }

  let rows: EncodedRow[], labels: number[];
  if (task) {
    const { examples } = await loadSplit(task, c.split, {
      glueDir: c.glueDir,
      maxExamples: c.examples,
      seed: c.seed,
    });
    const tok = await WordPieceTokenizer.fromModelDir(dir);
    rows = examples.map((e) => tok.encode(e.textA, e.textB, { maxLen: c.maxLen }));
    labels = examples.map((e) => e.label);
  } else {
    const inputs = await readEncodedInputs(c.inputs!, {
      numLabels: ck.numLabels,
      labels: "required",
      max: c.examples,
    });
    rows = inputs;
    labels = inputs.map((r) => r.label!);
  }
  const n = rows.length;
  if (c.examples !== undefined && n < c.examples && !(task && c.allowFewer)) {
    throw new Error(`asked for ${c.examples} examples but only ${n} are available`);
  }

  const model = new BertClassifier(ck.config, ck.numLabels, ck.tensors);
  const started = performance.now();
  let fisher: TensorMap;
  try {
    fisher = await computeFisher(model, [{ batch: batchFromEncoded(rows), labels }], {
      params: c.params,
      examples: n,
      seed: c.seed,
      batchSize: c.batchSize,
      labels: c.labels,
      onProgress: c.onProgress &&
        ((done, total) => c.onProgress!(done, total, (performance.now() - started) / 1000)),
    });
  } finally {
    model.dispose();
  }
  const seconds = (performance.now() - started) / 1000;
  const summary: FisherRun["summary"] = {
    model: dir,
    ...(c.delta ? { delta: c.delta } : {}),
    head: c.delta ? "delta" : c.head ?? `fresh (seed ${c.seed})`,
    state: c.delta ? "fine-tuned" : "pretrained",
    task: task?.name ?? null,
    split: task ? c.split : null,
    inputs: c.inputs ?? null,
    N: n,
    seed: c.seed,
    params: c.params,
    labels: c.labels,
    maxLen: task ? c.maxLen : null,
    numLabels: ck.numLabels,
    backend,
    seconds,
  };
  if (c.out) {
    // The file says how it was computed, but not how long that took: the same inputs give the same bytes
    // (a cell's artefact is compared by checksum across machines).
    const { seconds: _, ...how } = summary;
    await writeSafetensors(c.out, fisher, { normtune: JSON.stringify({ kind: "fisher", ...how }) });
  }
  const records = aggregateFisher(fisher);
  return { fisher, records, ranking: rankComponentsByFisher(records), summary };
}
