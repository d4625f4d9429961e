/**
 * `normtune apply-delta --model DIR --delta FILE --out DIR`: base checkpoint + a run's delta -> a full
 * fine-tuned checkpoint (config.json, model.safetensors, tokenizer files) that transformers loads as
 * `BertForSequenceClassification`.
 */
import { saveCheckpoint } from "../bert/checkpoint.ts";
import { loadWithDelta, readDelta } from "../tuning/delta.ts";
import { modelDir } from "../util/paths.ts";
import { parseFlags } from "./flags.ts";

export async function run(args: string[]): Promise<void> {
  const f = parseFlags(args, { model: "string", delta: "string", out: "string" }, ["model", "delta", "out"]);
  const dir = modelDir(f.string("model"));
  const deltaFile = f.string("delta");
  const { tensors: delta } = await readDelta(deltaFile);
  const ck = await loadWithDelta(dir, deltaFile);
  const out = f.string("out");
  await saveCheckpoint(out, ck, { vocabFrom: dir, regression: ck.numLabels === 1 });
  console.log(`wrote ${out}: ${dir} with ${delta.size} tensors from ${deltaFile}`);
}
