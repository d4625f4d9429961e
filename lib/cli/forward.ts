/**
 * `normtune forward --model DIR --inputs FILE.jsonl --num-labels K --out DIR [--head FILE.safetensors]
 * [--backend B] [--batch-size 32]`: runs the classifier without dropout on encoded inputs (what `encode`
 * writes: `{"input_ids", "token_type_ids", "attention_mask"}` per line, optionally with `"label"`).
 *
 * Writes `OUT/logits.json` (one array per input). When every line has a label it also writes
 * `OUT/loss.json` (mean cross-entropy, or mean squared error when K is 1) and `OUT/grads.safetensors`:
 * the gradient of that mean loss for every parameter, under its Hugging Face name. This is the hook for
 * checking the TypeScript model against PyTorch on any checkpoint.
 *
 * ```sh
 * echo '{"text_a": "a cat"}' | deno task normtune encode --model bert-tiny-mlm > in.jsonl
 * deno task normtune forward --model bert-tiny-mlm --inputs in.jsonl --num-labels 2 --out out/
 * ```
 */
import { batchFromEncoded, type EncodedRow } from "../bert/batch.ts";
import { join } from "node:path";
import { backendFromEnv, type BackendName, BACKENDS, initBackend, tf } from "../tf.ts";
import { loadCheckpoint } from "../bert/checkpoint.ts";
import { BertClassifier } from "../bert/model.ts";
import { readSafetensors, type TensorMap, writeSafetensors } from "../bert/safetensors.ts";
import { writeJsonAtomic } from "../util/atomic.ts";
import { modelDir } from "../util/paths.ts";
import { parseFlags, UsageError } from "./flags.ts";

export interface ForwardInput extends EncodedRow {
  label?: number;
}

function intArray(value: unknown, field: string, where: string): number[] {
  if (!Array.isArray(value) || !value.every((v) => Number.isInteger(v))) {
    throw new Error(`${where}: "${field}" must be an array of integers`);
  }
  return value as number[];
}

/** Parses the JSONL inputs; errors name the file and line. */
export function parseInputs(text: string, source: string, numLabels: number): ForwardInput[] {
  const rows: ForwardInput[] = [];
  text.split("\n").forEach((line, i) => {
    if (line.trim() === "") return;
    const where = `${source}:${i + 1}`;
    let raw: unknown;
    try {
      raw = JSON.parse(line);
    } catch (err) {
      throw new Error(`${where}: not valid JSON (${(err as Error).message})`);
    }
    if (typeof raw !== "object" || raw === null || Array.isArray(raw)) {
      throw new Error(`${where}: expected an object {input_ids, token_type_ids, attention_mask, label?}`);
    }
    const r = raw as Record<string, unknown>;
    const inputIds = intArray(r.input_ids, "input_ids", where);
    const tokenTypeIds = intArray(r.token_type_ids, "token_type_ids", where);
    const attentionMask = intArray(r.attention_mask, "attention_mask", where);
    if (inputIds.length === 0) throw new Error(`${where}: "input_ids" is empty`);
    if (tokenTypeIds.length !== inputIds.length || attentionMask.length !== inputIds.length) {
      throw new Error(`${where}: input_ids, token_type_ids and attention_mask must be equally long`);
    }
    const row: ForwardInput = { inputIds, tokenTypeIds, attentionMask };
    if (r.label !== undefined && r.label !== null) {
      const y = r.label;
      const ok = typeof y === "number" && Number.isFinite(y) &&
        (numLabels === 1 || (Number.isInteger(y) && y >= 0 && y < numLabels));
      if (!ok) {
        throw new Error(
          `${where}: label ${JSON.stringify(y)} is not ` +
            (numLabels === 1 ? "a finite number" : `a class index in [0, ${numLabels})`),
        );
      }
      row.label = y as number;
    }
    rows.push(row);
  });
  if (rows.length === 0) throw new Error(`${source}: no inputs`);
  const labelled = rows.filter((r) => r.label !== undefined).length;
  if (labelled !== 0 && labelled !== rows.length) {
    throw new Error(`${source}: ${labelled} of ${rows.length} inputs have a label; give all or none`);
  }
  return rows;
}

export interface ForwardResult {
  logits: number[][];
  /** Present when every input has a label. */
  loss?: number;
  grads?: TensorMap;
}

/**
 * Logits for every row (in batches), and with labels the mean loss over all rows and its gradient for
 * every parameter: the sum over batches of (batch share) x (gradient of the batch mean).
 */
export function forwardAll(model: BertClassifier, rows: ForwardInput[], batchSize: number): ForwardResult {
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
      logits.push(...tf.tidy(() => model.logits(batch).arraySync()));
      continue;
    }
    const labels = chunk.map((r) => r.label!);
    const share = chunk.length / rows.length;
    let out: number[][] = [];
    const { value, grads } = tf.variableGrads(() => {
      const l = model.logits(batch);
      out = l.arraySync();
      return model.loss(l, labels);
    }, vars);
    logits.push(...out);
    loss += share * value.dataSync()[0];
    vars.forEach((v, i) => {
      const g = grads[v.name].dataSync();
      const a = acc[i];
      for (let j = 0; j < a.length; j++) a[j] += share * g[j];
    });
    tf.dispose([value, ...Object.values(grads)]);
  }
  if (!labelled) return { logits };
  const gradMap: TensorMap = new Map(
    names.map((n, i) => [n, { shape: [...model.params.get(n)!.shape], data: acc[i] }]),
  );
  return { logits, loss, grads: gradMap };
}

export async function run(args: string[]): Promise<void> {
  const flags = parseFlags(args, {
    model: "string",
    inputs: "string",
    head: "string",
    "num-labels": "number",
    out: "string",
    backend: "string",
    "batch-size": "number",
  }, ["model", "inputs", "num-labels", "out"]);
  const numLabels = flags.number("num-labels");
  if (!Number.isInteger(numLabels) || numLabels < 1) {
    throw new UsageError(`--num-labels must be a positive integer, got ${numLabels}`);
  }
  const batchSize = flags.number("batch-size", 32);
  if (!Number.isInteger(batchSize) || batchSize < 1) {
    throw new UsageError(`--batch-size must be a positive integer, got ${batchSize}`);
  }
  const backend = flags.string("backend", backendFromEnv());
  if (!(BACKENDS as readonly string[]).includes(backend)) {
    throw new UsageError(`--backend ${backend} is not one of ${BACKENDS.join(", ")}`);
  }
  const inputsPath = flags.string("inputs");
  let text: string;
  try {
    text = await Deno.readTextFile(inputsPath);
  } catch (err) {
    throw new Error(`${inputsPath}: cannot read (${(err as Error).message})`);
  }
  const rows = parseInputs(text, inputsPath, numLabels);
  const headPath = flags.optionalString("head");
  const head = headPath ? await readSafetensors(headPath) : undefined;
  await initBackend(backend as BackendName);
  const ckpt = await loadCheckpoint(modelDir(flags.string("model")), { numLabels, head });
  const model = new BertClassifier(ckpt.config, numLabels, ckpt.tensors);
  try {
    const result = forwardAll(model, rows, batchSize);
    const out = flags.string("out");
    await writeJsonAtomic(join(out, "logits.json"), result.logits);
    if (result.grads) {
      await writeJsonAtomic(join(out, "loss.json"), {
        loss: result.loss,
        kind: numLabels === 1 ? "mean_squared_error" : "cross_entropy",
        n: rows.length,
      });
      await writeSafetensors(join(out, "grads.safetensors"), result.grads);
    }
    console.error(
      `forward: ${rows.length} input(s) -> ${out}/logits.json` +
        (result.grads ? `, loss.json (${result.loss}), grads.safetensors` : ""),
    );
  } finally {
    model.dispose();
  }
}
