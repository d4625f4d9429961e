/**
 * `normtune forward --model DIR --inputs FILE.jsonl --num-labels K --out DIR [--head FILE.safetensors]
 * [--backend B] [--gemm G] [--batch-size 32]`: runs the classifier without dropout on encoded inputs (what
 * `encode` writes: `{"input_ids", "token_type_ids", "attention_mask"}` per line, optionally with `"label"`).
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
import { runForward } from "../jobs/forward_job.ts";
import { backendFlag, parseFlags, runGemm, UsageError } from "./flags.ts";

export async function run(args: string[]): Promise<void> {
  const flags = parseFlags(args, {
    model: "string",
    inputs: "string",
    head: "string",
    "num-labels": "number",
    out: "string",
    backend: "string",
    gemm: "string",
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
  const out = flags.string("out");
  const r = await runForward({
    model: flags.string("model"),
    inputs: flags.string("inputs"),
    numLabels,
    head: flags.optionalString("head"),
    batchSize,
    backend: backendFlag(flags.optionalString("backend")),
    gemm: runGemm(flags.optionalString("gemm")),
    out,
  });
  console.error(
    `forward: ${r.n} input(s) -> ${out}/logits.json` +
      (r.grads ? `, loss.json (${r.loss}), grads.safetensors` : ""),
  );
}
