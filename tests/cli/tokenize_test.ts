/**
 * The `tokenize` and `encode` commands as a user runs them: `deno run -A lib/cli/main.ts ...` in a
 * subprocess, JSON lines in, JSON lines out.
 */
import assert from "node:assert/strict";
import { ROOT } from "../../lib/util/paths.ts";
import { sharedModel } from "../env.ts";

async function normtune(
  args: string[],
  input: string,
): Promise<{ code: number; stdout: string; stderr: string }> {
  const child = new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", "lib/cli/main.ts", ...args],
    cwd: ROOT,
    stdin: "piped",
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  const writer = child.stdin.getWriter();
  await writer.write(new TextEncoder().encode(input));
  await writer.close();
  const out = await child.output();
  const dec = new TextDecoder();
  return { code: out.code, stdout: dec.decode(out.stdout), stderr: dec.decode(out.stderr) };
}

const lines = (s: string) => s.trimEnd().split("\n").map((l) => JSON.parse(l));

Deno.test("tokenize: one JSON id array per input line, no special tokens", async () => {
  const r = await normtune(["tokenize", "--model", sharedModel()], `"Héllo, world!"\n"don't"\n""\n`);
  assert.equal(r.code, 0, r.stderr);
  assert.deepEqual(lines(r.stdout), [[7592, 1010, 2088, 999], [2123, 1005, 1056], []]);
});

Deno.test("encode: pairs, padding to --max-len by default, --no-pad, truncation", async () => {
  const input = `{"text_a": "a cat", "text_b": "a dog"}\n{"text_a": "hello world"}\n`;
  const padded = await normtune(["encode", "--model", sharedModel(), "--max-len", "8"], input);
  assert.equal(padded.code, 0, padded.stderr);
  assert.deepEqual(lines(padded.stdout), [
    {
      input_ids: [101, 1037, 4937, 102, 1037, 3899, 102, 0],
      token_type_ids: [0, 0, 0, 0, 1, 1, 1, 0],
      attention_mask: [1, 1, 1, 1, 1, 1, 1, 0],
    },
    {
      input_ids: [101, 7592, 2088, 102, 0, 0, 0, 0],
      token_type_ids: [0, 0, 0, 0, 0, 0, 0, 0],
      attention_mask: [1, 1, 1, 1, 0, 0, 0, 0],
    },
  ]);
  const bare = await normtune(["encode", "--model", sharedModel(), "--max-len", "5", "--no-pad"], input);
  assert.equal(bare.code, 0, bare.stderr);
  // max-len 5 leaves 2 tokens for the pair: one from each side.
  assert.deepEqual(lines(bare.stdout).map((e) => e.input_ids), [[101, 1037, 102, 1037, 102], [
    101,
    7592,
    2088,
    102,
  ]]);
});

Deno.test("encode: bad input names the line and fails", async () => {
  const r = await normtune(["encode", "--model", sharedModel()], `{"text_a": "ok"}\n{"text_a": \n`);
  assert.equal(r.code, 1);
  assert.match(r.stderr, /stdin line 2: not valid JSON/);
  assert.equal(r.stdout, "");
  const wrong = await normtune(["encode", "--model", sharedModel()], `{"text": "ok"}\n`);
  assert.equal(wrong.code, 1);
  assert.match(wrong.stderr, /stdin line 1: expected \{"text_a": string/);
  const usage = await normtune(["tokenize"], "");
  assert.equal(usage.code, 2);
  assert.match(usage.stderr, /missing required flag --model/);
});
