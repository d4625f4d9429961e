/**
 * `deno task normtune download MODEL_ID [--revision main] [--cache DIR] [--force] [--quiet]`: fetches a
 * BERT model (config.json, vocab.txt, tokenizer_config.json and the weights: model.safetensors, else
 * sharded safetensors, else pytorch_model.bin) from the Hugging Face hub into the cache, where
 * `--model MODEL_ID` then finds it, and says which weights format it used. Interrupted downloads resume
 * when run again.
 */
import { parseFlags, UsageError } from "./flags.ts";
import { downloadModel, MODEL_FILES } from "../bert/hub.ts";
import { formatAmount } from "../util/progress.ts";

export async function run(args: string[]): Promise<void> {
  const f = parseFlags(args, { revision: "string", cache: "string", force: "boolean", quiet: "boolean" });
  if (f.positionals.length !== 1) {
    throw new UsageError(
      "usage: deno task normtune download MODEL_ID [--revision main] [--cache DIR] [--force] [--quiet]\n" +
        "  e.g. deno task normtune download google-bert/bert-base-uncased",
    );
  }
  const id = f.positionals[0];
  const { dir, format, files } = await downloadModel(id, {
    revision: f.string("revision", "main"),
    cache: f.optionalString("cache"),
    force: f.bool("force"),
    quiet: f.bool("quiet"),
  });
  for (const file of files) {
    const what = file.status === "missing"
      ? "not on the hub (optional)"
      : `${file.status}, ${formatAmount(file.bytes, "B")}` +
        (file.verified !== "none" ? `, ${file.verified} verified` : "");
    console.error(`  ${file.name}: ${what}`);
  }
  const weights = files.filter((r) => !MODEL_FILES.some((m) => m.name === r.name)).map((r) => r.name);
  console.error(`weights: ${format} (${weights.join(", ")})`);
  console.error(`${id} is in ${dir}; use it with --model ${id}`);
  console.log(dir);
}
