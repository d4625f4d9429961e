/**
 * WordPiece tokenizer: hand-checked hard cases on a tiny vocab, model-folder loading, encode/truncation,
 * and agreement with the independent Python reference (tools/tokenizer_reference.py) on every GLUE text,
 * through the digests it wrote to tests/fixtures/tokenizer_glue_digest.json.
 */
import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { join } from "node:path";
import { parseVocab, type TokenizerOptions, WordPieceTokenizer } from "../../lib/bert/tokenizer.ts";
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
    await assert.rejects(WordPieceTokenizer.fromModelDir(dir), /vocab\.txt: the vocabulary has no \[UNK\]/);
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

// --- Hugging Face BertTokenizer parity ------------------------------------------------------------------
// Expected outputs are those published in transformers' tests/models/bert/test_tokenization_bert.py and
// the behaviour its BertTokenizer documents; the cases and vocabularies here are written for this project.

/** The vocabulary of HF's BERT tokenizer tests (ids 0-14). */
const HF_VOCAB = "[UNK] [CLS] [SEP] [PAD] [MASK] want ##want ##ed wa un runn ##ing , low lowest".split(" ");
/** Every word the basic-tokenizer cases expect, so a wrong answer shows as a different token or [UNK]. */
const WORDS = [
  ..."[UNK] [CLS] [SEP] [PAD] [MASK] ! ? , ' [ ] hello how are you hällo hallo héllo Héllo HeLLo HäLLo HaLLo"
    .split(" "),
  ..."Are yoU a ll to d of can t ah 博 推 zz mask x.y [FOO] foo οδοσ οδος".split(" "),
];

Deno.test("HF: full tokenizer on its test vocabulary (lowercase, accents, punctuation, WordPiece)", () => {
  const hf = new WordPieceTokenizer(HF_VOCAB);
  assert.deepEqual(hf.tokenize("UNwant\u00E9d,running"), ["un", "##want", "##ed", ",", "runn", "##ing"]);
  assert.deepEqual(hf.tokenIds("UNwant\u00E9d,running"), [9, 6, 7, 12, 10, 11]);
  // Clean-up: the soft hyphen (Cf) vanishes; "test" is not in the vocabulary.
  assert.deepEqual(["Test", "\xad", "test"].map((t) => hf.tokenize(t)), [["[UNK]"], [], ["[UNK]"]]);
});

Deno.test("HF: a vocabulary without [PAD] is accepted; only padding fails, naming the vocabulary", () => {
  const vocab = "[UNK] [CLS] [SEP] want ##want ##ed wa un runn ##ing".split(" ");
  const hf = new WordPieceTokenizer(vocab, { source: "wp/vocab.txt" });
  assert.deepEqual(hf.tokenize(""), []);
  assert.deepEqual(hf.tokenize("unwanted running"), ["un", "##want", "##ed", "runn", "##ing"]);
  assert.deepEqual(hf.tokenize("unwantedX running"), ["[UNK]", "runn", "##ing"]);
  assert.equal(hf.padId, undefined);
  assert.deepEqual(hf.encode("unwanted", undefined, { maxLen: 8 }).inputIds, [1, 7, 4, 5, 2]);
  assert.throws(
    () => hf.encode("unwanted", undefined, { maxLen: 8, pad: true }),
    /cannot pad to 8: wp\/vocab\.txt has no pad token \[PAD\]; encode without padding/,
  );
});

Deno.test("HF: lowercasing and accent stripping in all six combinations", () => {
  const text = " \tHäLLo!how  \n Are yoU?  ";
  const rest = ["!", "how"];
  const cases: [TokenizerOptions, string[], string[]][] = [
    [{}, ["hallo", ...rest, "are", "you", "?"], ["hello"]],
    [{ stripAccents: true }, ["hallo", ...rest, "are", "you", "?"], ["hello"]],
    [{ stripAccents: false }, ["hällo", ...rest, "are", "you", "?"], ["héllo"]],
    [{ doLowerCase: false }, ["HäLLo", ...rest, "Are", "yoU", "?"], ["Héllo"]],
    [{ doLowerCase: false, stripAccents: false }, ["HäLLo", ...rest, "Are", "yoU", "?"], ["Héllo"]],
    [{ doLowerCase: false, stripAccents: true }, ["HaLLo", ...rest, "Are", "yoU", "?"], ["Hello"]],
  ];
  for (const [opts, want, wantHello] of cases) {
    const tok = new WordPieceTokenizer([...WORDS, "Hello"], opts);
    assert.deepEqual(tok.tokenize(text), want, JSON.stringify(opts));
    assert.deepEqual(tok.tokenize("H\u00E9llo"), wantHello, JSON.stringify(opts));
  }
  assert.deepEqual(
    new WordPieceTokenizer(WORDS, { doLowerCase: false }).tokenize(" \tHeLLo!how  \n Are yoU?  "),
    ["HeLLo", "!", "how", "Are", "yoU", "?"],
  );
});

Deno.test("HF: NFC first where accents are kept, so a decomposed é matches the vocabulary's é", () => {
  const decomposed = "He\u0301llo"; // e + combining acute
  assert.deepEqual(new WordPieceTokenizer(WORDS, { doLowerCase: false }).tokenize(decomposed), ["Héllo"]);
  assert.deepEqual(new WordPieceTokenizer(WORDS, { stripAccents: false }).tokenize(decomposed), ["héllo"]);
  assert.deepEqual(new WordPieceTokenizer(WORDS).tokenize(decomposed), ["hello"]);
  // A singleton: U+212B ANGSTROM SIGN is canonically Å (U+00C5); cased and accent-keeping, it reads as Å.
  assert.deepEqual(
    new WordPieceTokenizer(["[UNK]", "[CLS]", "[SEP]", "\u00C5"], { doLowerCase: false })
      .tokenize("\u212B"),
    ["\u00C5"],
  );
});

Deno.test("HF: punctuation, CJK and tokenize_chinese_chars", () => {
  assert.deepEqual(new WordPieceTokenizer(WORDS).tokenize("a\n'll !!to?'d of, can't"), [
    "a",
    "'",
    "ll",
    "!",
    "!",
    "to",
    "?",
    "'",
    "d",
    "of",
    ",",
    "can",
    "'",
    "t",
  ]);
  assert.deepEqual(new WordPieceTokenizer(WORDS).tokenize("ah\u535A\u63A8zz"), [
    "ah",
    "\u535A",
    "\u63A8",
    "zz",
  ]);
  const zh = ["[UNK]", "[CLS]", "[SEP]", "的", "人", "有", "##人", "##有"];
  assert.deepEqual(new WordPieceTokenizer(zh).tokenize("的人有"), ["的", "人", "有"]);
  assert.deepEqual(new WordPieceTokenizer(zh, { tokenizeChineseChars: false }).tokenize("的人有"), [
    "的",
    "##人",
    "##有",
  ]);
});

Deno.test("HF: special tokens in the text stay whole, anywhere; split_special_tokens makes them text", () => {
  const tok = new WordPieceTokenizer(WORDS);
  assert.deepEqual(tok.tokenize("[CLS] Hello [MASK] how [SEP]"), [
    "[CLS]",
    "hello",
    "[MASK]",
    "how",
    "[SEP]",
  ]);
  assert.deepEqual(tok.tokenIds("[PAD][UNK]"), [3, 0]);
  // Inside a word too, and never lowercased; written in lowercase it is ordinary text.
  assert.deepEqual(tok.tokenize("hello[MASK]how"), ["hello", "[MASK]", "how"]);
  assert.deepEqual(tok.tokenize("[mask]"), ["[", "mask", "]"]);
  const split = new WordPieceTokenizer(WORDS, { splitSpecialTokens: true });
  assert.deepEqual(split.tokenize("hello [MASK]"), ["hello", "[", "mask", "]"]);
  // A special token the vocabulary lacks is text (HF would give it an id past the vocabulary's end).
  const noMask = new WordPieceTokenizer(WORDS.filter((w) => w !== "[MASK]"));
  assert.deepEqual(noMask.tokenize("[MASK]"), ["[", "mask", "]"]);
  // Renamed special tokens are the ones kept whole.
  const renamed = new WordPieceTokenizer(["<unk>", "<s>", "</s>", "<pad>", "hello"], {
    specialTokens: { unk: "<unk>", cls: "<s>", sep: "</s>", pad: "<pad>" },
  });
  assert.deepEqual(renamed.tokenize("hello</s>zz"), ["hello", "</s>", "<unk>"]);
  assert.deepEqual(renamed.encode("hello", undefined, { maxLen: 4, pad: true }).inputIds, [1, 4, 2, 3]);
});

Deno.test("HF: never_split keeps a word whole after lowercasing, unsplit and not WordPiece'd", () => {
  const cased = new WordPieceTokenizer(WORDS, { doLowerCase: false, neverSplit: ["[FOO]", "[BAR]"] });
  assert.deepEqual(cased.tokenize(" \tHeLLo!how  \n Are yoU? [FOO]"), [
    "HeLLo",
    "!",
    "how",
    "Are",
    "yoU",
    "?",
    "[FOO]",
  ]);
  // Kept whole only as a whole word; not in the vocabulary, it is [UNK] (not "[", "BAR", "]").
  assert.deepEqual(cased.tokenize("[BAR] a[FOO]"), ["[UNK]", "a", "[", "[UNK]", "]"]);
  // The text is lowercased before the check (as HF's base tokenizer does): a lowercase entry matches.
  const lower = new WordPieceTokenizer(WORDS, { neverSplit: ["x.y", "[FOO]"] });
  assert.deepEqual(lower.tokenize("X.Y x.y"), ["x.y", "x.y"]);
  assert.deepEqual(lower.tokenize("[FOO]"), ["[", "foo", "]"]);
});

Deno.test("HF: lowercasing is per character, so a capital sigma becomes σ even at a word's end", () => {
  assert.deepEqual(new WordPieceTokenizer(WORDS).tokenize("ΟΔΟΣ"), ["οδοσ"]);
});

Deno.test("HF: tokenizer_config.json fields are honoured; wrong types and do_basic_tokenize false refused", async () => {
  const [dir, cleanup] = await tempDir();
  try {
    await Deno.writeTextFile(join(dir, "vocab.txt"), [...WORDS, "<unk>", "的", "##人"].join("\n"));
    const config = (c: unknown) => Deno.writeTextFile(join(dir, "tokenizer_config.json"), JSON.stringify(c));
    await config({
      do_lower_case: false,
      strip_accents: null,
      tokenize_chinese_chars: false,
      never_split: ["[FOO]"],
      model_max_length: 6,
      unk_token: { content: "<unk>", lstrip: false, normalized: false, __type: "AddedToken" },
      tokenizer_class: "BertTokenizer",
    });
    const tok = await WordPieceTokenizer.fromModelDir(dir);
    assert.deepEqual(tok.tokenize("HeLLo [FOO] 的人 qq"), ["HeLLo", "[FOO]", "的", "##人", "<unk>"]);
    assert.equal(tok.modelMaxLength, 6);
    assert.equal(tok.encode("a a a a a a a").inputIds.length, 6, "the default length is capped at 6");
    assert.throws(
      () => tok.encode("a", undefined, { maxLen: 7 }),
      /maxLen 7 exceeds the model's limit of 6 tokens/,
    );
    // Explicit options win over the file.
    assert.deepEqual((await WordPieceTokenizer.fromModelDir(dir, { doLowerCase: true })).tokenize("HeLLo"), [
      "hello",
    ]);
    // transformers' "no limit" value.
    await config({ model_max_length: 1000000000000000019884624838656, split_special_tokens: true });
    const open = await WordPieceTokenizer.fromModelDir(dir);
    assert.equal(open.modelMaxLength, Infinity);
    assert.deepEqual(open.tokenize("[MASK]"), ["[", "mask", "]"]);
    assert.equal(open.encode("a ".repeat(300)).inputIds.length, 128);

    const bad: [unknown, RegExp][] = [
      [{ do_lower_case: "yes" }, /tokenizer_config\.json: "do_lower_case" must be true or false, got "yes"/],
      [{ never_split: "[FOO]" }, /"never_split" must be a list of strings/],
      [{ model_max_length: 0 }, /"model_max_length" must be a positive integer, got 0/],
      [{ pad_token: 3 }, /"pad_token" must be a string or \{"content": string\}/],
      [{ do_basic_tokenize: false }, /"do_basic_tokenize": false is not supported/],
    ];
    for (const [c, re] of bad) {
      await config(c);
      await assert.rejects(WordPieceTokenizer.fromModelDir(dir), re, JSON.stringify(c));
    }
  } finally {
    await cleanup();
  }
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
