/**
 * BERT's WordPiece tokenizer, as google-research/bert `tokenization.py` does it (BasicTokenizer, then
 * WordpieceTokenizer), so that ids match what the checkpoints were trained on:
 *
 * 1. Clean: drop U+0000, U+FFFD and control characters (every Unicode category `C*`, except `\t \n \r`),
 *    and turn whitespace (`\t \n \r`, space, category `Zs`) into a space.
 * 2. Put spaces around CJK ideographs (the original's `_is_chinese_char` ranges), split on whitespace.
 * 3. Per word, with `do_lower_case`: lowercase, NFD, drop combining marks (`Mn`): accent stripping.
 * 4. Split off punctuation: ASCII 33-47, 58-64, 91-96, 123-126 and every category `P*`.
 * 5. Greedy longest-match-first WordPiece with `##` continuations; a word longer than 100 code points,
 *    or one that cannot be covered by the vocabulary, becomes `[UNK]`.
 *
 * Everything counts Unicode code points, as Python's `str` does, never UTF-16 units, so emoji and other
 * astral characters are handled as the original handles them.
 *
 * Two settings follow Hugging Face's `BertTokenizer` (what the project's checkpoints come with) where it
 * departs from the 2018 google-research file: control characters are all of category `C*` (the original:
 * only `Cc` and `Cf`), and words over 100 code points are `[UNK]` (the original: 200). Both are options
 * (`controlCategories`, `maxInputCharsPerWord`). Literal "[CLS]"/"[SEP]" in the text are split like any
 * text, as the original does (Hugging Face would keep them as special tokens).
 *
 * Unicode tables are V8's (Unicode 16 in Deno 2.9): characters assigned after the tables of an older
 * Python (3.11 has Unicode 14) are letters here but unassigned, so dropped, there; nothing else differs
 * (checked on all 1,114,112 code points and 200k random strings against tools/tokenizer_reference.py).
 *
 * Word results are cached (most words repeat), which makes encoding all of SST-2 take well under a second.
 *
 * ```ts
 * const tok = await WordPieceTokenizer.fromModelDir("../shared/models/bert-tiny-mlm");
 * tok.tokenize("Héllo, naïve 世界!"); // ["hello", ",", "naive", "世", "[UNK]", "!"] (界 is not in the vocab)
 * tok.encode("a premise", "a hypothesis", { maxLen: 128, pad: true }); // {inputIds, tokenTypeIds, attentionMask}
 * ```
 */
import { join } from "node:path";

/** Model inputs for one example; every array has the same length. */
export interface Encoded {
  inputIds: number[];
  tokenTypeIds: number[];
  attentionMask: number[];
}

export interface TokenizerOptions {
  /** Lowercase and (unless `stripAccents` is false) strip accents. Default true. */
  doLowerCase?: boolean;
  /** Hugging Face's `strip_accents`: undefined follows `doLowerCase`. */
  stripAccents?: boolean;
  /** Words longer than this many code points become `[UNK]`. Default 100 (Hugging Face; the original: 200). */
  maxInputCharsPerWord?: number;
  /** Which characters clean-up drops: "C" = every `C*` (default, Hugging Face) or "CcCf" (the original). */
  controlCategories?: "C" | "CcCf";
}

export interface EncodeOptions {
  /** Total length including [CLS] and [SEP]s. Default 128. */
  maxLen?: number;
  /** Pad with [PAD] / type 0 / mask 0 up to `maxLen`. Default false. */
  pad?: boolean;
}

// The original's _is_chinese_char ranges: CJK Unified Ideographs and their extensions / compatibility
// blocks. Hangul, kana and CJK punctuation are not in them, on purpose.
const CJK = new RegExp(
  "[\\u{4E00}-\\u{9FFF}\\u{3400}-\\u{4DBF}\\u{20000}-\\u{2A6DF}\\u{2A700}-\\u{2B73F}\\u{2B740}-\\u{2B81F}" +
    "\\u{2B820}-\\u{2CEAF}\\u{F900}-\\u{FAFF}\\u{2F800}-\\u{2FA1F}]",
  "gu",
);
// Dropped by clean-up: U+FFFD and control characters (NUL among them: it is Cc); \t \n \r are whitespace.
const DROP_ALL_C = /\uFFFD|(?![\t\n\r])\p{C}/gu;
const DROP_CC_CF = /\uFFFD|(?![\t\n\r])[\p{Cc}\p{Cf}]/gu;
const WHITESPACE = /[\t\n\r\p{Zs}]/gu;
// After clean-up, Python's str.split() still splits on U+2028/U+2029 (line/paragraph separators are
// `isspace()` but neither Zs nor C), so they separate words too.
const SPLIT = /[ \u2028\u2029]+/;
const PUNCT = /([!-/:-@[-`{-~]|\p{P})/u;
const MARKS = /\p{Mn}/gu;
// Text made only of these needs no clean-up pass (the common case for GLUE).
const PLAIN = /^[\x20-\x7E]*$/;
const SURROGATE = /[\uD800-\uDFFF]/;

// A bound on the word cache, so a stream of unique words cannot grow memory without limit.
const CACHE_LIMIT = 1_000_000;

export class WordPieceTokenizer {
  readonly clsId: number;
  readonly sepId: number;
  readonly padId: number;
  readonly unkId: number;
  readonly vocabSize: number;
  private readonly vocab: string[];
  private readonly ids = new Map<string, number>();
  private readonly doLowerCase: boolean;
  private readonly stripAccents: boolean;
  private readonly maxInputChars: number;
  private readonly drop: RegExp;
  // The longest vocabulary entry in code points: no longer substring can match, so the search starts there.
  private readonly maxTokenChars: number;
  private readonly cache = new Map<string, number[]>();

  /** Reads `vocab.txt` and (if present) `tokenizer_config.json` from a model folder. */
  static async fromModelDir(dir: string, opts: TokenizerOptions = {}): Promise<WordPieceTokenizer> {
    const vocabPath = join(dir, "vocab.txt");
    let text: string;
    try {
      text = await Deno.readTextFile(vocabPath);
    } catch (err) {
      if (err instanceof Deno.errors.NotFound) {
        throw new Error(`${vocabPath} not found: a BERT model folder needs its WordPiece vocab.txt`);
      }
      throw new Error(`${vocabPath}: cannot read (${(err as Error).message})`);
    }
    const vocab = parseVocab(text);
    if (vocab.length === 0) throw new Error(`${vocabPath} is empty: expected one token per line`);

    const configPath = join(dir, "tokenizer_config.json");
    let config: Record<string, unknown> = {};
    try {
      const parsed = JSON.parse(await Deno.readTextFile(configPath));
      if (parsed === null || typeof parsed !== "object" || Array.isArray(parsed)) {
        throw new Error("expected a JSON object");
      }
      config = parsed;
    } catch (err) {
      if (!(err instanceof Deno.errors.NotFound)) {
        throw new Error(`${configPath}: not a valid tokenizer config (${(err as Error).message})`);
      }
    }
    const bool = (key: string): boolean | undefined => {
      const v = config[key];
      if (v === undefined || v === null) return undefined;
      if (typeof v !== "boolean") throw new Error(`${configPath}: "${key}" must be true or false, got ${v}`);
      return v;
    };
    try {
      return new WordPieceTokenizer(vocab, {
        doLowerCase: bool("do_lower_case"),
        stripAccents: bool("strip_accents"),
        ...opts,
      });
    } catch (err) {
      throw new Error(`${vocabPath}: ${(err as Error).message}`);
    }
  }

  /** `vocab[i]` is the token with id `i`. */
  constructor(vocab: string[], opts: TokenizerOptions = {}) {
    this.vocab = vocab;
    this.vocabSize = vocab.length;
    // A repeated token keeps its last id, as the original's dict assignment does.
    vocab.forEach((token, id) => this.ids.set(token, id));
    this.doLowerCase = opts.doLowerCase ?? true;
    this.stripAccents = opts.stripAccents ?? this.doLowerCase;
    this.maxInputChars = opts.maxInputCharsPerWord ?? 100;
    this.drop = (opts.controlCategories ?? "C") === "C" ? DROP_ALL_C : DROP_CC_CF;
    let longest = 0;
    for (const token of vocab) longest = Math.max(longest, codePointLength(token));
    this.maxTokenChars = longest;
    const special = (token: string): number => {
      const id = this.ids.get(token);
      if (id === undefined) throw new Error(`the vocabulary has no ${token} token, which BERT needs`);
      return id;
    };
    this.clsId = special("[CLS]");
    this.sepId = special("[SEP]");
    this.padId = special("[PAD]");
    this.unkId = special("[UNK]");
  }

  /** The wordpieces of `text`, no special tokens added. */
  tokenize(text: string): string[] {
    return this.tokenIds(text).map((id) => this.vocab[id]);
  }

  /** The ids of `tokenize(text)`. */
  tokenIds(text: string): number[] {
    const out: number[] = [];
    for (const word of this.words(text)) {
      let ids = this.cache.get(word);
      if (ids === undefined) {
        ids = this.wordIds(word);
        if (this.cache.size >= CACHE_LIMIT) this.cache.clear();
        this.cache.set(word, ids);
      }
      for (const id of ids) out.push(id);
    }
    return out;
  }

  /**
   * `[CLS] A [SEP]` or `[CLS] A [SEP] B [SEP]`, token types 0 for the first segment and 1 for B.
   * Too long inputs are cut as the original's `_truncate_seq_pair`: drop the last token of the longer
   * segment (of B when they are equal) until everything fits.
   */
  encode(textA: string, textB?: string, opts: EncodeOptions = {}): Encoded {
    const maxLen = opts.maxLen ?? 128;
    const specials = textB === undefined ? 2 : 3;
    if (!Number.isInteger(maxLen) || maxLen < specials) {
      throw new Error(
        `maxLen must be an integer >= ${specials} (room for the special tokens), got ${maxLen}`,
      );
    }
    const a = this.tokenIds(textA);
    const b = textB === undefined ? [] : this.tokenIds(textB);
    let lenA = a.length;
    let lenB = b.length;
    while (lenA + lenB > maxLen - specials) {
      if (lenA > lenB) lenA--;
      else lenB--;
    }
    // [CLS] A [SEP] (B [SEP]); concat, not spread: a very long text must not overflow the call stack.
    let inputIds = [this.clsId].concat(a.slice(0, lenA), [this.sepId]);
    const tokenTypeIds = new Array<number>(lenA + 2).fill(0);
    if (textB !== undefined) {
      inputIds = inputIds.concat(b.slice(0, lenB), [this.sepId]);
      for (let i = 0; i <= lenB; i++) tokenTypeIds.push(1);
    }
    const attentionMask = new Array<number>(inputIds.length).fill(1);
    if (opts.pad) {
      while (inputIds.length < maxLen) {
        inputIds.push(this.padId);
        tokenTypeIds.push(0);
        attentionMask.push(0);
      }
    }
    return { inputIds, tokenTypeIds, attentionMask };
  }

  /** Basic tokenization up to the whitespace split: clean-up, CJK spacing. */
  private words(text: string): string[] {
    let clean = text;
    if (!PLAIN.test(text)) {
      clean = text.replace(this.drop, "").replace(WHITESPACE, " ").replace(CJK, " $& ");
    }
    return clean.split(SPLIT).filter((w) => w !== "");
  }

  /** One whitespace-separated word: lowercase/accents, punctuation split, then WordPiece. */
  private wordIds(word: string): number[] {
    let w = word;
    if (this.doLowerCase) w = w.toLowerCase();
    if (this.stripAccents) w = w.normalize("NFD").replace(MARKS, "");
    const out: number[] = [];
    // split() with a capturing group keeps each punctuation character as its own piece.
    for (const piece of w.split(PUNCT)) {
      if (piece !== "") this.wordPiece(piece, out);
    }
    return out;
  }

  /** Greedy longest-match-first over code points; appends the ids (or [UNK]) to `out`. */
  private wordPiece(piece: string, out: number[]): void {
    // bounds[i] = UTF-16 offset of code point i; plain BMP text needs no table.
    const bounds = SURROGATE.test(piece) ? codePointOffsets(piece) : undefined;
    const n = bounds ? bounds.length - 1 : piece.length;
    if (n > this.maxInputChars) {
      out.push(this.unkId);
      return;
    }
    const at = (i: number) => (bounds ? bounds[i] : i);
    const found: number[] = [];
    let start = 0;
    while (start < n) {
      let end = Math.min(n, start + this.maxTokenChars);
      let id: number | undefined;
      for (; end > start; end--) {
        const sub = piece.slice(at(start), at(end));
        id = this.ids.get(start > 0 ? "##" + sub : sub);
        if (id !== undefined) break;
      }
      if (id === undefined) {
        out.push(this.unkId);
        return;
      }
      found.push(id);
      start = end;
    }
    for (const id of found) out.push(id);
  }
}

/** One token per line, id = line index; a trailing newline does not make an extra empty token. */
export function parseVocab(text: string): string[] {
  const lines = text.split("\n");
  if (lines.at(-1) === "") lines.pop();
  return lines.map((line) => line.endsWith("\r") ? line.slice(0, -1) : line);
}

function codePointLength(s: string): number {
  if (!SURROGATE.test(s)) return s.length;
  let n = 0;
  for (const _ of s) n++;
  return n;
}

function codePointOffsets(s: string): number[] {
  const offsets: number[] = [];
  let i = 0;
  for (const ch of s) {
    offsets.push(i);
    i += ch.length;
  }
  offsets.push(i);
  return offsets;
}
