/**
 * BERT's WordPiece tokenizer as Hugging Face's `BertTokenizer` (the slow, Python one) runs it, so that ids
 * match what the hub's checkpoints were trained and evaluated with:
 *
 * 1. Special tokens written in the text (`[CLS]`, `[SEP]`, `[PAD]`, `[UNK]`, `[MASK]`, the ones the
 *    vocabulary has) are cut out whole first, wherever they occur, and never lowercased or split
 *    (`splitSpecialTokens: true` treats them as text, as HF's `split_special_tokens`).
 * 2. Clean: drop U+0000, U+FFFD and control characters (every Unicode category `C*`, except `\t \n \r`),
 *    and turn whitespace (`\t \n \r`, space, category `Zs`) into a space.
 * 3. Put spaces around CJK ideographs (the original's `_is_chinese_char` ranges; `tokenizeChineseChars`),
 *    split on whitespace.
 * 4. Per word: with `doLowerCase`, lowercase character by character (HF lowercases the text one character
 *    at a time, so a final capital sigma becomes σ, not Python's word-final ς); NFC-normalise (HF does;
 *    it only changes the result where accents are kept: `doLowerCase` false or `stripAccents` false); a
 *    word listed in `neverSplit` is then kept whole (its id, or [UNK]); otherwise strip accents (NFD, drop
 *    combining marks `Mn`) when `stripAccents` (default: = `doLowerCase`).
 * 5. Split off punctuation: ASCII 33-47, 58-64, 91-96, 123-126 and every category `P*`.
 * 6. Greedy longest-match-first WordPiece with `##` continuations; a word longer than 100 code points,
 *    or one that cannot be covered by the vocabulary, becomes `[UNK]`.
 *
 * `fromModelDir` honours the `tokenizer_config.json` fields HF's BertTokenizer reads: `do_lower_case`,
 * `strip_accents`, `tokenize_chinese_chars`, `never_split`, `split_special_tokens`, `model_max_length`
 * (the longest `encode` allows; its default length is min(128, it)) and the special tokens' names
 * (`unk_token`, `sep_token`, `pad_token`, `cls_token`, `mask_token`, as strings or `{content}` objects).
 * `do_basic_tokenize: false` is refused rather than ignored.
 *
 * A vocabulary without `[PAD]` is accepted, as HF accepts it; only `encode(..., {pad: true})` then fails.
 * One deliberate difference: HF adds special tokens missing from the vocabulary as new ids past its end
 * (which the model's embedding cannot look up); here a special token the vocabulary lacks is plain text.
 *
 * Everything counts Unicode code points, as Python's `str` does, never UTF-16 units, so emoji and other
 * astral characters are handled as Python handles them. Two settings are options for reproducing the 2018
 * google-research file instead: control characters of category `Cc`/`Cf` only (`controlCategories`), and
 * words up to 200 code points (`maxInputCharsPerWord`).
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
 * tok.tokenize("a [MASK] b"); // ["a", "[MASK]", "b"]
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
  /** Put spaces around CJK ideographs (HF's `tokenize_chinese_chars`). Default true. */
  tokenizeChineseChars?: boolean;
  /** Words kept whole, neither lowercased nor split (HF's `never_split`). */
  neverSplit?: readonly string[];
  /** Treat special tokens written in the text as plain text (HF's `split_special_tokens`). Default false. */
  splitSpecialTokens?: boolean;
  /** The special tokens' strings, if not the usual `[UNK]`, `[SEP]`, `[PAD]`, `[CLS]`, `[MASK]`. */
  specialTokens?: Partial<Record<SpecialToken, string>>;
  /** The longest input `encode` allows (HF's `model_max_length`). Default unlimited. */
  modelMaxLength?: number;
  /** Words longer than this many code points become `[UNK]`. Default 100 (Hugging Face; the original: 200). */
  maxInputCharsPerWord?: number;
  /** Which characters clean-up drops: "C" = every `C*` (default, Hugging Face) or "CcCf" (the original). */
  controlCategories?: "C" | "CcCf";
  /** Names the vocabulary in errors (fromModelDir sets its path). */
  source?: string;
}

export type SpecialToken = "unk" | "sep" | "pad" | "cls" | "mask";

const SPECIAL_DEFAULTS: Record<SpecialToken, string> = {
  unk: "[UNK]",
  sep: "[SEP]",
  pad: "[PAD]",
  cls: "[CLS]",
  mask: "[MASK]",
};

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
const NON_ASCII = /[^\x20-\x7E]/; // (control characters never reach words: clean-up dropped them)
// Text made only of these needs no clean-up pass (the common case for GLUE).
const PLAIN = /^[\x20-\x7E]*$/;
const SURROGATE = /[\uD800-\uDFFF]/;

// A bound on the word cache, so a stream of unique words cannot grow memory without limit.
const CACHE_LIMIT = 1_000_000;

export class WordPieceTokenizer {
  readonly clsId: number;
  readonly sepId: number;
  /** Undefined when the vocabulary has no pad token: `encode` then refuses to pad. */
  readonly padId: number | undefined;
  readonly unkId: number;
  readonly vocabSize: number;
  readonly modelMaxLength: number;
  private readonly vocab: string[];
  private readonly ids = new Map<string, number>();
  private readonly doLowerCase: boolean;
  private readonly stripAccents: boolean;
  private readonly tokenizeChineseChars: boolean;
  private readonly neverSplit: ReadonlySet<string>;
  /** Cuts the special tokens the vocabulary has out of the text (a capturing split), or undefined. */
  private readonly specials: RegExp | undefined;
  private readonly padToken: string;
  private readonly source: string;
  private readonly maxInputChars: number;
  private readonly drop: RegExp;
  // The longest vocabulary entry in code points: no longer substring can match, so the search starts there.
  private readonly maxTokenChars: number;
  private readonly cache = new Map<string, number[]>();

  /** Reads `vocab.txt` and (if present) `tokenizer_config.json` from a model folder; `opts` win over it. */
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
    const fromConfig = await readTokenizerConfig(join(dir, "tokenizer_config.json"));
    try {
      return new WordPieceTokenizer(vocab, {
        ...fromConfig,
        ...opts,
        specialTokens: { ...fromConfig.specialTokens, ...opts.specialTokens },
        source: opts.source ?? vocabPath,
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
    this.tokenizeChineseChars = opts.tokenizeChineseChars ?? true;
    this.neverSplit = new Set(opts.neverSplit ?? []);
    this.maxInputChars = opts.maxInputCharsPerWord ?? 100;
    this.drop = (opts.controlCategories ?? "C") === "C" ? DROP_ALL_C : DROP_CC_CF;
    this.source = opts.source ?? "the vocabulary";
    const limit = opts.modelMaxLength ?? Infinity;
    if (!(limit === Infinity || (Number.isInteger(limit) && limit > 0))) {
      throw new Error(`model_max_length must be a positive integer, got ${limit}`);
    }
    this.modelMaxLength = limit;
    let longest = 0;
    for (const token of vocab) longest = Math.max(longest, codePointLength(token));
    this.maxTokenChars = longest;
    const names = { ...SPECIAL_DEFAULTS, ...opts.specialTokens };
    const required = (kind: SpecialToken): number => {
      const id = this.ids.get(names[kind]);
      if (id === undefined) throw new Error(`the vocabulary has no ${names[kind]} token, which BERT needs`);
      return id;
    };
    this.clsId = required("cls");
    this.sepId = required("sep");
    this.unkId = required("unk");
    this.padToken = names.pad;
    this.padId = this.ids.get(names.pad);
    // Longest first, so that of two specials starting at the same place the longer one wins.
    const present = Object.values(names).filter((t) => t !== "" && this.ids.has(t));
    const alternatives = [...new Set(present)].sort((a, b) => b.length - a.length).map(escapeRegExp);
    this.specials = opts.splitSpecialTokens || alternatives.length === 0
      ? undefined
      : new RegExp(`(${alternatives.join("|")})`, "u");
  }

  /** The wordpieces of `text`, no special tokens added. */
  tokenize(text: string): string[] {
    return this.tokenIds(text).map((id) => this.vocab[id]);
  }

  /** The ids of `tokenize(text)`. */
  tokenIds(text: string): number[] {
    const out: number[] = [];
    if (this.specials === undefined) {
      this.segmentIds(text, out);
      return out;
    }
    // split() with a capturing group: odd pieces are the special tokens themselves.
    text.split(this.specials).forEach((piece, i) => {
      if (i % 2 === 1) out.push(this.ids.get(piece)!);
      else if (piece !== "") this.segmentIds(piece, out);
    });
    return out;
  }

  /** Text without special tokens: basic tokenization and WordPiece, word by word through the cache. */
  private segmentIds(text: string, out: number[]): void {
    for (const word of this.words(text)) {
      let ids = this.cache.get(word);
      if (ids === undefined) {
        ids = this.wordIds(word);
        if (this.cache.size >= CACHE_LIMIT) this.cache.clear();
        this.cache.set(word, ids);
      }
      for (const id of ids) out.push(id);
    }
  }

  /**
   * `[CLS] A [SEP]` or `[CLS] A [SEP] B [SEP]`, token types 0 for the first segment and 1 for B.
   * Too long inputs are cut as the original's `_truncate_seq_pair`: drop the last token of the longer
   * segment (of B when they are equal) until everything fits.
   */
  encode(textA: string, textB?: string, opts: EncodeOptions = {}): Encoded {
    const maxLen = opts.maxLen ?? Math.min(128, this.modelMaxLength);
    const specials = textB === undefined ? 2 : 3;
    if (!Number.isInteger(maxLen) || maxLen < specials) {
      throw new Error(
        `maxLen must be an integer >= ${specials} (room for the special tokens), got ${maxLen}`,
      );
    }
    if (maxLen > this.modelMaxLength) {
      throw new Error(
        `maxLen ${maxLen} exceeds the model's limit of ${this.modelMaxLength} tokens ` +
          `(model_max_length of ${this.source}'s tokenizer_config.json)`,
      );
    }
    if (opts.pad && this.padId === undefined) {
      throw new Error(
        `cannot pad to ${maxLen}: ${this.source} has no pad token ${this.padToken}; encode without padding`,
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
        inputIds.push(this.padId!);
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
      clean = text.replace(this.drop, "").replace(WHITESPACE, " ");
      if (this.tokenizeChineseChars) clean = clean.replace(CJK, " $& ");
    }
    return clean.split(SPLIT).filter((w) => w !== "");
  }

  /** One whitespace-separated word: lowercase, NFC, never-split, accents, punctuation split, WordPiece. */
  private wordIds(word: string): number[] {
    let w = word;
    // HF lowercases one character at a time: only the capital sigma, whose lowercase depends on its
    // place in a word (σ or final ς), comes out differently from lowercasing the word.
    if (this.doLowerCase) w = w.replace(/\u03A3/g, "\u03C3").toLowerCase();
    if (NON_ASCII.test(w)) w = w.normalize("NFC");
    if (this.neverSplit.has(w)) return [this.ids.get(w) ?? this.unkId];
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

/**
 * The tokenizer_config.json fields HF's BertTokenizer honours, as options; {} when the file is absent.
 * A field of the wrong type is an error naming the file and the field.
 */
export async function readTokenizerConfig(path: string): Promise<TokenizerOptions> {
  let config: Record<string, unknown>;
  try {
    const parsed = JSON.parse(await Deno.readTextFile(path));
    if (parsed === null || typeof parsed !== "object" || Array.isArray(parsed)) {
      throw new Error("expected a JSON object");
    }
    config = parsed;
  } catch (err) {
    if (err instanceof Deno.errors.NotFound) return {};
    throw new Error(`${path}: not a valid tokenizer config (${(err as Error).message})`);
  }
  const field = <T>(key: string, ok: (v: unknown) => boolean, what: string): T | undefined => {
    const v = config[key];
    if (v === undefined || v === null) return undefined;
    if (!ok(v)) throw new Error(`${path}: "${key}" must be ${what}, got ${JSON.stringify(v)}`);
    return v as T;
  };
  const bool = (key: string) => field<boolean>(key, (v) => typeof v === "boolean", "true or false");
  if (bool("do_basic_tokenize") === false) {
    throw new Error(`${path}: "do_basic_tokenize": false is not supported (WordPiece on raw text)`);
  }
  const opts: TokenizerOptions = {
    doLowerCase: bool("do_lower_case"),
    stripAccents: bool("strip_accents"),
    tokenizeChineseChars: bool("tokenize_chinese_chars"),
    splitSpecialTokens: bool("split_special_tokens"),
    neverSplit: field<string[]>(
      "never_split",
      (v) => Array.isArray(v) && v.every((t) => typeof t === "string"),
      "a list of strings",
    ),
  };
  // transformers writes int(1e30) when a model sets no limit: that means none.
  const limit = field<number>(
    "model_max_length",
    (v) => Number.isInteger(v) && (v as number) > 0,
    "a positive integer",
  );
  if (limit !== undefined) opts.modelMaxLength = limit > Number.MAX_SAFE_INTEGER ? Infinity : limit;
  const specialTokens: Partial<Record<SpecialToken, string>> = {};
  for (const kind of Object.keys(SPECIAL_DEFAULTS) as SpecialToken[]) {
    // A string, or an AddedToken as transformers serialises it: {"content": "[UNK]", ...}.
    const v = field<string | { content: string }>(
      `${kind}_token`,
      (v) =>
        typeof v === "string" ||
        (typeof v === "object" && typeof (v as { content?: unknown }).content === "string"),
      'a string or {"content": string}',
    );
    if (v !== undefined) specialTokens[kind] = typeof v === "string" ? v : v.content;
  }
  opts.specialTokens = specialTokens;
  // Drop the fields the file does not set, so that spreading these options overrides nothing.
  return Object.fromEntries(Object.entries(opts).filter(([, v]) => v !== undefined));
}

function escapeRegExp(s: string): string {
  return s.replace(/[.*+?^${}()|[\]\\]/g, "\\$&");
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
