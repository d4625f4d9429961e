/**
 * `normtune tokenize --model DIR`: one JSON string per line on stdin, one JSON array of WordPiece ids per
 * line on stdout (no [CLS]/[SEP]). Lets other tools, and the check against the Python reference
 * (tools/tokenizer_reference.py), use exactly the tokenizer training uses.
 *
 * ```sh
 * echo '"Héllo, world!"' | deno task normtune tokenize --model bert-tiny-mlm   # [7592,1010,2088,999]
 * ```
 */
import { WordPieceTokenizer } from "../bert/tokenizer.ts";
import { modelDir } from "../util/paths.ts";
import { parseFlags, readStdinLines } from "./flags.ts";

export async function run(args: string[]): Promise<void> {
  const flags = parseFlags(args, { model: "string" }, ["model"]);
  const tok = await WordPieceTokenizer.fromModelDir(modelDir(flags.string("model")));
  const lines = await readStdinLines();
  const out = lines.map((line, i) => {
    const text = parseJsonLine(line, i + 1);
    if (typeof text !== "string") throw new Error(`stdin line ${i + 1}: expected a JSON string, got ${line}`);
    return JSON.stringify(tok.tokenIds(text));
  });
  await writeLines(out);
}

/** Parses one line of JSON input; a failure names the line (1-based). */
export function parseJsonLine(line: string, lineNo: number): unknown {
  try {
    return JSON.parse(line);
  } catch (err) {
    throw new Error(`stdin line ${lineNo}: not valid JSON (${(err as Error).message})`);
  }
}

/** Writes lines to stdout in large chunks: one write per line would dominate the run time. */
export async function writeLines(lines: string[]): Promise<void> {
  const encoder = new TextEncoder();
  for (let i = 0; i < lines.length; i += 4096) {
    const bytes = encoder.encode(lines.slice(i, i + 4096).join("\n") + "\n");
    for (let off = 0; off < bytes.length;) off += await Deno.stdout.write(bytes.subarray(off));
  }
}
