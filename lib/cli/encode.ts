/**
 * `normtune encode --model DIR [--max-len 128] [--no-pad]`: JSON lines `{"text_a": ..., "text_b": ...}`
 * (`text_b` optional) on stdin, one JSON line `{"input_ids", "token_type_ids", "attention_mask"}` per
 * input on stdout, as BERT's `[CLS] A [SEP] (B [SEP])` with the original pair truncation.
 *
 * Padding: by default every row is padded to `--max-len` (like Hugging Face `padding="max_length"`), so
 * the rows stack into one [rows, max-len] batch. `--no-pad` leaves each row at its own length. `--pad`
 * is accepted and means the default.
 *
 * ```sh
 * echo '{"text_a": "a cat", "text_b": "a dog"}' | deno task normtune encode --model bert-tiny-mlm --max-len 8
 * # {"input_ids":[101,1037,4937,102,1037,3899,102,0],"token_type_ids":[0,0,0,0,1,1,1,0],"attention_mask":[1,1,1,1,1,1,1,0]}
 * ```
 */
import { WordPieceTokenizer } from "../bert/tokenizer.ts";
import { modelDir } from "../util/paths.ts";
import { parseFlags, readStdinLines, UsageError } from "./flags.ts";
import { parseJsonLine, writeLines } from "./tokenize.ts";

export async function run(args: string[]): Promise<void> {
  const flags = parseFlags(args, {
    model: "string",
    "max-len": "number",
    pad: "boolean",
    "no-pad": "boolean",
  }, [
    "model",
  ]);
  if (flags.bool("pad") && flags.bool("no-pad")) {
    throw new UsageError("--pad and --no-pad contradict each other");
  }
  const maxLen = flags.number("max-len", 128);
  if (!Number.isInteger(maxLen) || maxLen < 3) {
    throw new UsageError(`--max-len must be an integer >= 3 (room for [CLS] and two [SEP]), got ${maxLen}`);
  }
  const pad = !flags.bool("no-pad");
  const tok = await WordPieceTokenizer.fromModelDir(modelDir(flags.string("model")));
  const lines = await readStdinLines();
  const out = lines.map((line, i) => {
    const row = parseJsonLine(line, i + 1) as { text_a?: unknown; text_b?: unknown } | null;
    const a = row?.text_a;
    const b = row?.text_b ?? undefined;
    if (typeof a !== "string" || (b !== undefined && typeof b !== "string")) {
      throw new Error(
        `stdin line ${i + 1}: expected {"text_a": string, "text_b"?: string}, got ${line.slice(0, 200)}`,
      );
    }
    const e = tok.encode(a, b, { maxLen, pad });
    return JSON.stringify({
      input_ids: e.inputIds,
      token_type_ids: e.tokenTypeIds,
      attention_mask: e.attentionMask,
    });
  });
  await writeLines(out);
}
