/**
 * `normtune evaluate --model DIR [--delta FILE] --task NAME [--split dev]`: scores a model (a fine-tuned
 * checkpoint, or a base model plus a run's delta) on a GLUE split and prints the metrics as JSON.
 *
 * Thin: the work is `runEvaluate` in lib/jobs/evaluate_job.ts.
 *
 * ```sh
 * deno task normtune evaluate --model bert-tiny-mlm --delta runs/rte-ln/delta.safetensors --task RTE
 * ```
 */
import { runEvaluate } from "../jobs/evaluate_job.ts";
import { modelDir } from "../util/paths.ts";
import { backendFlag, maxLenFlag, parseFlags, runGemm, UsageError } from "./flags.ts";

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
    gemm: "string",
    "glue-dir": "string",
  }, ["model", "task"]);
  const batchSize = f.number("batch-size", 64);
  if (!Number.isInteger(batchSize) || batchSize < 1) {
    throw new UsageError(`--batch-size must be a positive integer`);
  }
  const r = await runEvaluate({
    model: f.string("model"),
    delta: f.optionalString("delta"),
    task: f.string("task"),
    split: f.optionalString("split"),
    maxLen: await maxLenFlag(f, modelDir(f.string("model"))),
    batchSize,
    maxExamples: f.optionalNumber("max-examples"),
    seed: f.optionalNumber("seed"),
    backend: backendFlag(f.optionalString("backend")),
    gemm: runGemm(f.optionalString("gemm")),
    glueDir: f.optionalString("glue-dir"),
  });
  if (r.freshHead) {
    console.error(`note: ${r.model} has no ${r.task} head; scores are those of a random classifier`);
  }
  const { freshHead: _, ...shown } = r;
  console.log(JSON.stringify(shown, null, 2));
}
