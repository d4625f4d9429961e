/**
 * `normtune fisher`: empirical Fisher information per parameter element (lib/analysis/fisher.ts), written
 * as FILE.safetensors (one tensor per scored parameter, HF names) plus FILE.json beside it: the records per
 * component x layer x kind, the rankings, the model state and how it was computed.
 *
 * ```sh
 * normtune fisher --model DIR [--delta FILE] --task NAME --examples N --seed S --params all|layernorm
 *   --out FILE.safetensors [--labels true|sampled] [--max-len 128] [--split train] [--batch-size 8]
 * normtune fisher --model DIR --inputs FILE.jsonl --head HEAD.safetensors --num-labels K ...
 * ```
 *
 * The model state: without `--delta`, the pretrained encoder with a fresh head (seeded by `--seed`) or
 * the `--head` file ("pretrained"); with `--delta`, base + delta ("fine-tuned"). With `--task` the N
 * examples are a seeded random subset of the split (in file order); with `--inputs` they are the file's
 * first N lines, each `{input_ids, token_type_ids, attention_mask, label}` as `forward` reads them, so the
 * numbers can be compared with another tool's on exactly the same examples and head.
 */
import { batchFromEncoded } from "../bert/batch.ts";
import { loadCheckpoint } from "../bert/checkpoint.ts";
import { BertClassifier } from "../bert/model.ts";
import { readSafetensors, writeSafetensors } from "../bert/safetensors.ts";
import { WordPieceTokenizer } from "../bert/tokenizer.ts";
import { getTask, loadSplit } from "../glue/mod.ts";
import { type BackendName, BACKENDS, initBackend } from "../tf.ts";
import { loadWithDelta } from "../tuning/delta.ts";
import { writeJsonAtomic } from "../util/atomic.ts";
import { modelDir } from "../util/paths.ts";
import {
  aggregateFisher,
  computeFisher,
  type FisherParams,
  type LabeledBatch,
  rankComponentsByFisher,
} from "../analysis/fisher.ts";
import { maxLenFlag } from "./finetune.ts";
import { parseFlags, UsageError } from "./flags.ts";

interface Row {
  inputIds: number[];
  tokenTypeIds: number[];
  attentionMask: number[];
}

/** Reads `--inputs` lines: encoded rows with a label. */
async function readInputs(path: string, max: number): Promise<{ rows: Row[]; labels: number[] }> {
  const text = await Deno.readTextFile(path).catch((err) => {
    throw new Error(`${path}: cannot read (${(err as Error).message})`);
  });
  const rows: Row[] = [], labels: number[] = [];
  const lines = text.split("\n");
  for (let i = 0; i < lines.length && rows.length < max; i++) {
    if (lines[i].trim() === "") continue;
    let v: Record<string, unknown>;
    try {
      v = JSON.parse(lines[i]);
    } catch (err) {
      throw new Error(`${path}:${i + 1}: not JSON (${(err as Error).message})`);
    }
    const ids = v.input_ids, types = v.token_type_ids ?? (Array.isArray(ids) ? ids.map(() => 0) : undefined);
    const mask = v.attention_mask ?? (Array.isArray(ids) ? ids.map(() => 1) : undefined);
    const isInts = (a: unknown): a is number[] =>
      Array.isArray(a) && a.length === (ids as unknown[]).length && a.every(Number.isInteger);
    if (
      !Array.isArray(ids) || !isInts(ids) || !isInts(types) || !isInts(mask) || typeof v.label !== "number"
    ) {
      throw new Error(
        `${path}:${
          i + 1
        }: expected {"input_ids": int[], "token_type_ids"?: int[], "attention_mask"?: int[], ` +
          `"label": number} with arrays of equal length`,
      );
    }
    rows.push({ inputIds: ids, tokenTypeIds: types, attentionMask: mask });
    labels.push(v.label);
  }
  return { rows, labels };
}

export async function run(args: string[]): Promise<void> {
  const flags = parseFlags(args, {
    model: "string",
    delta: "string",
    task: "string",
    inputs: "string",
    head: "string",
    "num-labels": "number",
    examples: "number",
    seed: "number",
    params: "string",
    out: "string",
    labels: "string",
    "max-len": "number",
    split: "string",
    "batch-size": "number",
    "glue-dir": "string",
    backend: "string",
  }, ["model", "out"]);
  const params = flags.string("params", "layernorm") as FisherParams;
  if (!["all", "layernorm", "elementwise"].includes(params)) {
    throw new UsageError(`--params must be all, layernorm or elementwise, got "${params}"`);
  }
  const labelsMode = flags.string("labels", "true");
  if (labelsMode !== "true" && labelsMode !== "sampled") {
    throw new UsageError(`--labels must be true or sampled, got "${labelsMode}"`);
  }
  if (flags.has("task") === flags.has("inputs")) {
    throw new UsageError("give exactly one of --task NAME or --inputs FILE");
  }
  if (flags.has("delta") && flags.has("head")) {
    throw new UsageError("--head and --delta exclude each other (a delta has its head)");
  }
  const seed = flags.number("seed", 0);
  const wanted = flags.optionalNumber("examples");
  if (wanted !== undefined && (!Number.isInteger(wanted) || wanted < 1)) {
    throw new UsageError(`--examples must be a positive integer, got ${wanted}`);
  }
  const out = flags.string("out");
  if (!out.endsWith(".safetensors")) throw new UsageError(`--out must end in .safetensors, got ${out}`);
  const backendWish = flags.string("backend", Deno.env.get("NORMTUNE_BACKEND") ?? "auto") as BackendName;
  if (!BACKENDS.includes(backendWish)) {
    throw new UsageError(`--backend must be one of ${BACKENDS.join(", ")}`);
  }
  const backend = await initBackend(backendWish);

  const dir = modelDir(flags.string("model"));
  const task = flags.has("task") ? getTask(flags.string("task")) : undefined;
  // With --inputs the rows come encoded: --max-len is then only recorded.
  const maxLen = task ? await maxLenFlag(flags, dir) : flags.number("max-len", 128);
  const split = flags.string("split", "train");

  // The examples.
  let rows: Row[], labels: number[];
  if (task) {
    if (wanted === undefined) throw new UsageError("--examples N is required with --task");
    const { examples } = await loadSplit(task, split, {
      glueDir: flags.optionalString("glue-dir"),
      maxExamples: wanted,
      seed,
    });
    const tok = await WordPieceTokenizer.fromModelDir(dir);
    rows = examples.map((e) => tok.encode(e.textA, e.textB, { maxLen, pad: true }));
    labels = examples.map((e) => e.label);
  } else {
    ({ rows, labels } = await readInputs(flags.string("inputs"), wanted ?? Infinity));
  }
  const n = rows.length;
  if (wanted !== undefined && n < wanted) {
    throw new Error(`asked for --examples ${wanted} but only ${n} are available`);
  }

  // The model state.
  let state: "pretrained" | "fine-tuned";
  let ck;
  if (flags.has("delta")) {
    ck = await loadWithDelta(dir, flags.string("delta"));
    state = "fine-tuned";
  } else {
    const numLabels = flags.optionalNumber("num-labels") ?? task?.numLabels;
    if (numLabels === undefined) throw new UsageError("--num-labels K is required with --inputs");
    const head = flags.has("head") ? await readSafetensors(flags.string("head")) : undefined;
    ck = await loadCheckpoint(dir, { numLabels, seed, head, quiet: true });
    state = "pretrained";
  }
  if (task && ck.numLabels !== task.numLabels) {
    throw new Error(`the model has ${ck.numLabels} labels but ${task.name} has ${task.numLabels}`);
  }
  const model = new BertClassifier(ck.config, ck.numLabels, ck.tensors);

  const seqLen = Math.max(...rows.map((r) => r.inputIds.length));
  const batches: LabeledBatch[] = [{ batch: batchFromEncoded(rows, seqLen), labels }];
  const started = performance.now();
  let lastPrint = 0;
  const fisher = await computeFisher(model, batches, {
    params,
    examples: n,
    seed,
    batchSize: flags.number("batch-size", 8),
    labels: labelsMode,
    maxLen,
    onProgress: (done, total) => {
      const now = performance.now();
      if (now - lastPrint > 5000 || done === total) {
        console.error(`fisher: ${done}/${total} examples, ${((now - started) / 1000).toFixed(1)} s`);
        lastPrint = now;
      }
    },
  });
  const seconds = (performance.now() - started) / 1000;
  model.dispose();

  const records = aggregateFisher(fisher);
  const summary = {
    model: dir,
    ...(flags.has("delta") ? { delta: flags.string("delta") } : {}),
    head: flags.has("delta") ? "delta" : flags.has("head") ? flags.string("head") : `fresh (seed ${seed})`,
    state,
    task: task?.name ?? null,
    split: task ? split : null,
    inputs: flags.optionalString("inputs") ?? null,
    N: n,
    seed,
    params,
    labels: labelsMode,
    maxLen: task ? maxLen : null,
    numLabels: ck.numLabels,
    backend,
    seconds,
  };
  await writeSafetensors(out, fisher, { normtune: JSON.stringify({ kind: "fisher", ...summary }) });
  const jsonPath = out.replace(/\.safetensors$/, ".json");
  const ranking = rankComponentsByFisher(records);
  await writeJsonAtomic(jsonPath, {
    ...summary,
    records,
    ranking,
    rankingByKind: rankComponentsByFisher(records, { by: "component+kind" }),
    rankingByGroup: rankComponentsByFisher(records, { by: "group" }),
  });
  console.log(
    `${out} (+ ${jsonPath}): ${state} model, ${task?.name ?? "inputs"}, N ${n}, ${seconds.toFixed(1)} s`,
  );
  console.log("component ranking by mean Fisher per element (classifier excluded):");
  for (const r of ranking) {
    console.log(
      `  ${r.component.padEnd(28)} mean ${r.mean.toExponential(3)}  max ${r.max.toExponential(3)}  n ${r.n}`,
    );
  }
}
