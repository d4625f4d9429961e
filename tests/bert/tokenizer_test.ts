/**
 * WordPiece tokenizer: hand-checked hard cases on a tiny vocab, model-folder loading, encode/truncation,
 * and agreement with the independent Python reference (tools/tokenizer_reference.py) on every GLUE text,
 * through the digests it wrote to tests/fixtures/tokenizer_glue_digest.json.
 */
import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { join } from "node:path";
import { parseVocab, WordPieceTokenizer } from "../../lib/bert/tokenizer.ts";
import { sharedGlue, sharedModel, tempDir } from "../env.ts";

// Ids 0-4 specials, 5-14 hello ... naive, 15-24 don ... ##b, 25-34 😀 ... cafe.
const VOCAB = (
  "[PAD] [UNK] [CLS] [SEP] [MASK] hello world , ! ' $ 5 . 00 naive " +
  "don t 我 爱 你 un ##aff ##able a ##b 😀 ##😀 the cat dog sat on mat ? cafe"
).split(" ");

const tok = new WordPieceTokenizer(VOCAB);

Deno.test("accents are stripped and text lowercased", () => {
  assert.deepEqual(tok.tokenize("Héllo, WORLD!"), ["hello", ",", "world", "!"]);
  assert.deepEqual(tok.tokenize("naïve NAÏVE"), ["naive", "naive"]);
  // A precomposed é and e + combining acute are the same after NFD and mark removal.
  assert.deepEqual(tok.tokenize("caf\u00e9 cafe\u0301"), ["cafe", "cafe"]);
});

Deno.test("CJK ideographs become words of their own; punctuation splits", () => {
  assert.deepEqual(tok.tokenize("我爱你"), ["我", "爱", "你"]);
  assert.deepEqual(tok.tokenize("hello我world"), ["hello", "我", "world"]);
  assert.deepEqual(tok.tokenize("don't"), ["don", "'", "t"]);
  assert.deepEqual(tok.tokenize("$5.00"), ["$", "5", ".", "00"]);
  assert.deepEqual(tok.tokenize("hello?!"), ["hello", "?", "!"]);
});

Deno.test("greedy longest match with ## continuations; no match means [UNK] for the whole word", () => {
  assert.deepEqual(tok.tokenize("unaffable"), ["un", "##aff", "##able"]);
  assert.deepEqual(tok.tokenize("abbb"), ["a", "##b", "##b", "##b"]);
  assert.deepEqual(tok.tokenize("helloz zzz hello"), ["[UNK]", "[UNK]", "hello"]);
  assert.deepEqual(tok.tokenIds("unaffable"), [20, 21, 22]);
});

Deno.test("control characters are dropped, whitespace of every kind separates words", () => {
  // NUL, U+FFFD, zero-width space (Cf), BOM (Cf) and private use (Co) vanish: the word is not split.
  assert.deepEqual(tok.tokenize("a\u0000b\uFFFDb\u200Bb\uFEFFb\uE000b"), [
    "a",
    "##b",
    "##b",
    "##b",
    "##b",
    "##b",
  ]);
  assert.deepEqual(tok.tokenize("hello\u200bworld"), ["[UNK]"]);
  // Tab, newline, CR, no-break space (Zs), ideographic space (Zs), line separator all separate words.
  assert.deepEqual(
    tok.tokenize("hello\tworld\nhello\r\nworld\u00a0hello\u3000world\u2028hello"),
    ["hello", "world", "hello", "world", "hello", "world", "hello"],
  );
  assert.deepEqual(tok.tokenize(" \t\n\u200b "), []);
  assert.deepEqual(tok.tokenize(""), []);
});

Deno.test("the original's clean-up keeps private-use characters (controlCategories CcCf)", () => {
  const original = new WordPieceTokenizer(VOCAB, { controlCategories: "CcCf" });
  assert.deepEqual(original.tokenize("a\uE000b"), ["[UNK]"]);
  assert.deepEqual(original.tokenize("a\u200bb"), ["a", "##b"]);
});

Deno.test("emoji are single code points; the 100-character limit counts code points", () => {
  assert.deepEqual(tok.tokenize("😀😀 a😀"), ["😀", "##😀", "a", "##😀"]);
  // 100 emoji are 200 UTF-16 units but 100 characters: still tokenized.
  const hundred = tok.tokenize("😀".repeat(100));
  assert.equal(hundred.length, 100);
  assert.deepEqual(hundred.slice(0, 2), ["😀", "##😀"]);
  assert.deepEqual(tok.tokenize("😀".repeat(101)), ["[UNK]"]);
  assert.equal(tok.tokenize("a" + "b".repeat(99)).length, 100);
  assert.deepEqual(tok.tokenize("a" + "b".repeat(100) + " hello"), ["[UNK]", "hello"]);
  // The limit applies after punctuation splitting, as in the original.
  assert.equal(tok.tokenize("a" + "b".repeat(60) + "," + "a" + "b".repeat(60)).length, 123);
  const original = new WordPieceTokenizer(VOCAB, { maxInputCharsPerWord: 200 });
  assert.equal(original.tokenize("a" + "b".repeat(150)).length, 151);
});

Deno.test("doLowerCase false keeps case and accents", () => {
  const cased = new WordPieceTokenizer(VOCAB, { doLowerCase: false });
  assert.deepEqual(cased.tokenize("Hello héllo hello"), ["[UNK]", "[UNK]", "hello"]);
});

Deno.test("encode builds [CLS] A [SEP] B [SEP] with token types and optional padding", () => {
  const e = tok.encode("the cat", "a dog", { maxLen: 10, pad: true });
  assert.deepEqual(e.inputIds, [2, 27, 28, 3, 23, 29, 3, 0, 0, 0]);
  assert.deepEqual(e.tokenTypeIds, [0, 0, 0, 0, 1, 1, 1, 0, 0, 0]);
  assert.deepEqual(e.attentionMask, [1, 1, 1, 1, 1, 1, 1, 0, 0, 0]);
  const single = tok.encode("the cat");
  assert.deepEqual(single, {
    inputIds: [2, 27, 28, 3],
    tokenTypeIds: [0, 0, 0, 0],
    attentionMask: [1, 1, 1, 1],
  });
});

Deno.test("truncation pops from the longer side, from B when equal (_truncate_seq_pair)", () => {
  // A = 5 tokens, B = 3, room 8 - 3 = 5: A->4, A->3, then equal so B->2.
  const e = tok.encode("the cat sat on mat", "a dog cat", { maxLen: 8 });
  assert.deepEqual(e.inputIds, [2, 27, 28, 30, 3, 23, 29, 3]);
  assert.deepEqual(e.tokenTypeIds, [0, 0, 0, 0, 0, 1, 1, 1]);
  // A single text keeps its first maxLen - 2 tokens.
  assert.deepEqual(tok.encode("the cat sat on mat", undefined, { maxLen: 4 }).inputIds, [2, 27, 28, 3]);
  // Room for specials only: both sides empty.
  assert.deepEqual(tok.encode("the", "cat", { maxLen: 3 }).inputIds, [2, 3, 3]);
  assert.throws(() => tok.encode("the", "cat", { maxLen: 2 }), /maxLen must be an integer >= 3/);
});

Deno.test("vocab parsing: id = line index, trailing newline and CR tolerated, last duplicate wins", () => {
  assert.deepEqual(parseVocab("a\r\nb\n\nc\n"), ["a", "b", "", "c"]);
  const dup = new WordPieceTokenizer([...VOCAB, "hello"]);
  assert.deepEqual(dup.tokenIds("hello"), [VOCAB.length]);
  assert.throws(() => new WordPieceTokenizer(["[CLS]", "[SEP]", "[PAD]"]), /no \[UNK\] token/);
});

Deno.test("fromModelDir reads vocab.txt and tokenizer_config.json, with errors naming the file", async () => {
  const [dir, cleanup] = await tempDir();
  try {
    await assert.rejects(WordPieceTokenizer.fromModelDir(dir), /vocab\.txt not found/);
    await Deno.writeTextFile(join(dir, "vocab.txt"), VOCAB.join("\n") + "\n");
    // No config: lowercase by default.
    const dflt = await WordPieceTokenizer.fromModelDir(dir);
    assert.equal(dflt.vocabSize, VOCAB.length);
    assert.deepEqual([dflt.padId, dflt.unkId, dflt.clsId, dflt.sepId], [0, 1, 2, 3]);
    assert.deepEqual(dflt.tokenize("HELLO"), ["hello"]);
    await Deno.writeTextFile(join(dir, "tokenizer_config.json"), `{"do_lower_case": false}`);
    assert.deepEqual((await WordPieceTokenizer.fromModelDir(dir)).tokenize("HELLO"), ["[UNK]"]);
    await Deno.writeTextFile(join(dir, "tokenizer_config.json"), `{"do_lower_case": `);
    await assert.rejects(WordPieceTokenizer.fromModelDir(dir), /tokenizer_config\.json: not a valid/);
    await Deno.writeTextFile(join(dir, "tokenizer_config.json"), `{}`);
    await Deno.writeTextFile(join(dir, "vocab.txt"), "[CLS]\n[SEP]\n");
    await assert.rejects(WordPieceTokenizer.fromModelDir(dir), /vocab\.txt: the vocabulary has no \[PAD\]/);
  } finally {
    await cleanup();
  }
});

Deno.test("real bert-base-uncased vocab: known ids", async () => {
  const real = await WordPieceTokenizer.fromModelDir(sharedModel());
  assert.equal(real.vocabSize, 30522);
  assert.deepEqual([real.padId, real.unkId, real.clsId, real.sepId], [0, 100, 101, 102]);
  assert.deepEqual(real.tokenIds("Héllo, world!"), [7592, 1010, 2088, 999]);
  // Greedy longest-match-first, not the "best" split: "una" beats "un".
  assert.deepEqual(real.tokenize("unaffable"), ["una", "##ffa", "##ble"]);
});

// --- GLUE: agreement with the Python reference ------------------------------------------------------

/** [task/file, has header, text columns]; the same table as tools/tokenizer_reference.py. */
const GLUE_FILES: [string, boolean, number[]][] = [
  ["CoLA/train.tsv", false, [3]],
  ["CoLA/dev.tsv", false, [3]],
  ["SST-2/train.tsv", true, [0]],
  ["SST-2/dev.tsv", true, [0]],
  ["MRPC/train.tsv", true, [3, 4]],
  ["MRPC/dev.tsv", true, [3, 4]],
  ["STS-B/train.tsv", true, [7, 8]],
  ["STS-B/dev.tsv", true, [7, 8]],
  ["RTE/train.tsv", true, [1, 2]],
  ["RTE/dev.tsv", true, [1, 2]],
  ["WNLI/train.tsv", true, [1, 2]],
  ["WNLI/dev.tsv", true, [1, 2]],
  ["QNLI/dev.tsv", true, [1, 2]],
];

/** Tab-split rows (quotes never interpreted), BOM and header dropped; the last newline is optional. */
function readTexts(path: string, header: boolean, columns: number[]): { rows: number; texts: string[] } {
  let text = Deno.readTextFileSync(path);
  if (text.startsWith("\uFEFF")) text = text.slice(1);
  const lines = text.split("\n");
  if (lines.at(-1) === "") lines.pop();
  if (header) lines.shift();
  const texts: string[] = [];
  lines.forEach((line, i) => {
    const cells = line.split("\t");
    for (const c of columns) {
      assert.ok(c < cells.length, `${path}:${i + 1 + Number(header)}: only ${cells.length} columns`);
      texts.push(cells[c]);
    }
  });
  return { rows: lines.length, texts };
}

type Digest = { rows: number; texts: number; tokens: number; sha256: string };

Deno.test("every GLUE text tokenizes as the Python reference does (digests)", async () => {
  const fixture = JSON.parse(
    await Deno.readTextFile(new URL("../fixtures/tokenizer_glue_digest.json", import.meta.url)),
  ) as { files: Record<string, Digest> };
  const real = await WordPieceTokenizer.fromModelDir(sharedModel());
  const glue = sharedGlue();
  assert.deepEqual(Object.keys(fixture.files).sort(), GLUE_FILES.map(([f]) => f).sort());
  let compared = 0;
  for (const [file, header, columns] of GLUE_FILES) {
    const { rows, texts } = readTexts(join(glue, file), header, columns);
    const hash = createHash("sha256");
    let tokens = 0;
    for (const t of texts) {
      const ids = real.tokenIds(t);
      tokens += ids.length;
      hash.update(JSON.stringify(ids) + "\n");
    }
    assert.deepEqual(
      { rows, texts: texts.length, tokens, sha256: hash.digest("hex") },
      fixture.files[file],
      file,
    );
    compared += texts.length;
  }
  assert.equal(compared, 118337);
});

Deno.test("encoding all of SST-2 train takes seconds", async () => {
  const real = await WordPieceTokenizer.fromModelDir(sharedModel()); // cold word cache
  const { texts } = readTexts(join(sharedGlue(), "SST-2/train.tsv"), true, [0]);
  const t0 = performance.now();
  let realTokens = 0;
  for (const t of texts) realTokens += real.encode(t, undefined, { maxLen: 128 }).attentionMask.length;
  const seconds = (performance.now() - t0) / 1000;
  assert.equal(texts.length, 67349);
  assert.equal(realTokens, 762341 + 2 * 67349); // no SST-2 sentence needs truncation at 128
  // About 0.5 s here; the bound leaves room for a busy shared machine.
  assert.ok(seconds < 15, `encoding SST-2 train took ${seconds.toFixed(1)} s`);
});
