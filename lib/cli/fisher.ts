/**
 * `normtune fisher`: empirical Fisher information per parameter element (lib/jobs/fisher_job.ts), written
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
import { writeJsonAtomic } from "../util/atomic.ts";
import { rankComponentsByFisher } from "../analysis/fisher_information.ts";
import { FISHER_PARAMS, runFisher } from "../jobs/fisher_job.ts";
import type { FisherParams } from "../analysis/fisher_information.ts";
import { backendFlag, maxLenFlag, parseFlags, runGemm, UsageError } from "./flags.ts";
import { modelDir } from "../util/paths.ts";

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
    gemm: "string",
  }, ["model", "out"]);
  // Usage errors name the flag; the configuration's own checks (lib/jobs/fisher_job.ts) cover the rest.
  const params = flags.string("params", "layernorm") as FisherParams;
  if (!FISHER_PARAMS.includes(params)) {
    throw new UsageError(`--params must be all, layernorm or elementwise, got "${params}"`);
  }
  const labels = flags.string("labels", "true");
  if (labels !== "true" && labels !== "sampled") {
    throw new UsageError(`--labels must be true or sampled, got "${labels}"`);
  }
  if (flags.has("task") === flags.has("inputs")) {
    throw new UsageError("give exactly one of --task NAME or --inputs FILE");
  }
  if (flags.has("delta") && flags.has("head")) {
    throw new UsageError("--head and --delta exclude each other (a delta has its head)");
  }
  const examples = flags.optionalNumber("examples");
  if (examples !== undefined && (!Number.isInteger(examples) || examples < 1)) {
    throw new UsageError(`--examples must be a positive integer, got ${examples}`);
  }
  if (flags.has("task") && examples === undefined) {
    throw new UsageError("--examples N is required with --task");
  }
  const out = flags.string("out");
  if (!out.endsWith(".safetensors")) throw new UsageError(`--out must end in .safetensors, got ${out}`);
  const model = flags.string("model");
  // With --inputs the rows come encoded: --max-len is then only recorded.
  const maxLen = flags.has("task") ? await maxLenFlag(flags, modelDir(model)) : flags.number("max-len", 128);
  if (!flags.has("delta") && !flags.has("task") && !flags.has("num-labels")) {
    throw new UsageError("--num-labels K is required with --inputs");
  }
  let lastPrint = 0;
  const r = await runFisher({
    model,
    delta: flags.optionalString("delta"),
    head: flags.optionalString("head"),
    numLabels: flags.optionalNumber("num-labels"),
    task: flags.optionalString("task"),
    split: flags.optionalString("split"),
    glueDir: flags.optionalString("glue-dir"),
    inputs: flags.optionalString("inputs"),
    examples,
    params,
    labels,
    seed: flags.optionalNumber("seed"),
    maxLen,
    batchSize: flags.optionalNumber("batch-size"),
    backend: backendFlag(flags.optionalString("backend")),
    gemm: runGemm(flags.optionalString("gemm")),
    out,
    onProgress: (done, total, seconds) => {
      const now = performance.now();
      if (now - lastPrint > 5000 || done === total) {
        console.error(`fisher: ${done}/${total} examples, ${seconds.toFixed(1)} s`);
        lastPrint = now;
      }
    },
  });
  const s = r.summary;
  const jsonPath = out.replace(/\.safetensors$/, ".json");
  await writeJsonAtomic(jsonPath, {
    ...s,
    records: r.records,
    ranking: r.ranking,
    rankingByKind: rankComponentsByFisher(r.records, { by: "component+kind" }),
    rankingByGroup: rankComponentsByFisher(r.records, { by: "group" }),
  });
  console.log(
    `${out} (+ ${jsonPath}): ${s.state} model, ${s.task ?? "inputs"}, N ${s.N}, ${s.seconds.toFixed(1)} s`,
  );
  console.log("component ranking by mean Fisher per element (classifier excluded):");
  for (const x of r.ranking) {
    console.log(
      `  ${x.component.padEnd(28)} mean ${x.mean.toExponential(3)}  max ${x.max.toExponential(3)}  n ${x.n}`,
    );
  }
}
