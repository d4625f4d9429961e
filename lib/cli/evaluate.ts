/**
 * `normtune evaluate --model DIR [--delta FILE] --task NAME [--split dev]`: scores a model (a fine-tuned
 * checkpoint, or a base model plus a run's delta) on a GLUE split and prints the metrics as JSON.
 *
 * ```sh
 * deno task normtune evaluate --model bert-tiny-mlm --delta runs/rte-ln/delta.safetensors --task RTE
 * ```
 */
import { loadCheckpoint } from "../bert/checkpoint.ts";
import { BertClassifier } from "../bert/model.ts";
import { WordPieceTokenizer } from "../bert/tokenizer.ts";
import { getTask, loadSplit } from "../glue/mod.ts";
import { initBackend } from "../tf.ts";
import { loadWithDelta } from "../tuning/delta.ts";
import { encodeExamples, evaluateModel } from "../tuning/evaluate.ts";
import { modelDir } from "../util/paths.ts";
import { backendFlag, maxLenFlag } from "./flags.ts";
import { parseFlags, UsageError } from "./flags.ts";

export async function run(args: string[]): Promise<void> {
  const f = parseFlags(args, {
    model: "string",
    delta: "string",
    task: "string",
    split: "string",
    "max-len": "number",
    "batch-size": "number",
    "max-examples": "number",
    seed: "number",
    backend: "string",
    "glue-dir": "string",
  }, ["model", "task"]);
  const backend = await initBackend(backendFlag(f.optionalString("backend")));
  const task = getTask(f.string("task"));
  const split = f.string("split", task.mainSplit);
  const batchSize = f.number("batch-size", 64);
  if (!Number.isInteger(batchSize) || batchSize < 1) {
    throw new UsageError(`--batch-size must be a positive integer`);
  }
  const dir = modelDir(f.string("model"));
  const maxLen = await maxLenFlag(f, dir);
  const deltaFile = f.optionalString("delta");
  const ck = deltaFile
    ? await loadWithDelta(dir, deltaFile)
    : await loadCheckpoint(dir, { numLabels: task.numLabels, seed: f.number("seed", 42) });
  if (ck.numLabels !== task.numLabels) {
    throw new Error(
      `${deltaFile}: its head has ${ck.numLabels} outputs but ${task.name} needs ${task.numLabels}`,
    );
  }
  if (ck.initialized.some((n) => n.startsWith("classifier."))) {
    console.error(`note: ${dir} has no ${task.name} head; scores are those of a random classifier`);
  }
  const tokenizer = await WordPieceTokenizer.fromModelDir(dir);
  const { examples } = await loadSplit(task, split, {
    glueDir: f.optionalString("glue-dir"),
    maxExamples: f.optionalNumber("max-examples"),
  });
  const model = new BertClassifier(ck.config, ck.numLabels, ck.tensors);
  try {
    const set = encodeExamples(tokenizer, examples, maxLen);
    const r = evaluateModel(model, task, set, { batchSize, label: `eval ${task.name} ${split}` });
    console.log(JSON.stringify(
      {
        task: task.name,
        split,
        examples: examples.length,
        model: dir,
        delta: deltaFile ?? null,
        backend,
        metrics: r.metrics,
        seconds: r.seconds,
      },
      null,
      2,
    ));
  } finally {
    model.dispose();
  }
}
