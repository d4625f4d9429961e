/**
 * Loads GLUE TSV files by the GLUE rules: fields split on tabs and never on quotes (GLUE texts hold
 * unbalanced `"`), a UTF-8 BOM accepted (MRPC has one), CoLA's missing header, `\r\n` endings and a
 * missing final newline. Empty lines carry nothing and are passed over.
 *
 * A malformed row (wrong column count, a label outside the task's label set, a score that is not a
 * number) is an error naming `file:line` (quoted input cut to a readable length), unless `skipBadRows` is
 * set: then it is counted in `skipped` and the first few reasons are kept in `skipReasons`. Files are streamed line by line, so MNLI's
 * ~400 MB train file never sits in memory as one string.
 *
 * `maxExamples` with `seed` (default 0) keeps a deterministic random subset, in file order (for SST-2's
 * 67k training rows on a small machine).
 *
 * ```ts
 * const { examples, skipped } = await loadSplit(getTask("rte"), "dev", { glueDir: "data/glue" });
 * ```
 */
import { join } from "node:path";
import { glueDir as defaultGlueDir } from "../util/paths.ts";
import { mulberry32 } from "../util/random.ts";
import { quote } from "../util/text.ts";
import { type Example, type GlueTask, splitFile } from "./tasks.ts";

export interface LoadOptions {
  /** The GLUE root holding one folder per task; default `glueDir()` (GLUE_DIR, else data/glue). */
  glueDir?: string;
  /** Count and pass over malformed rows instead of failing on the first. */
  skipBadRows?: boolean;
  /** Keep at most this many examples, a seeded random subset in file order. */
  maxExamples?: number;
  /** Seed of the subset; default 0. */
  seed?: number;
}

export interface LoadResult {
  examples: Example[];
  /** Malformed rows passed over (only with `skipBadRows`). */
  skipped: number;
  /** `file:line: reason` of the first few skipped rows. */
  skipReasons: string[];
  /** The file read. */
  file: string;
}

const MAX_REASONS = 5;

/** Loads one split (`train`, `dev`, `dev_matched`, ...) of a task from the GLUE root. */
export async function loadSplit(task: GlueTask, split: string, opts: LoadOptions = {}): Promise<LoadResult> {
  const name = splitFile(task, split);
  const root = defaultGlueDir(opts.glueDir);
  const folder = join(root, task.folder);
  if (!isDir(folder)) {
    throw new Error(
      `GLUE task ${task.name} not found: no folder ${folder}. Run \`deno task normtune glue download ` +
        `${task.name}\` (add --glue-dir DIR to choose where), or set GLUE_DIR to a folder holding ${task.folder}/.`,
    );
  }
  return await loadFile(task, join(folder, name), opts);
}

/** Loads a TSV file laid out like the task's files (same header or columns). */
export async function loadFile(task: GlueTask, file: string, opts: LoadOptions = {}): Promise<LoadResult> {
  checkSubsetOptions(opts);
  let handle: Deno.FsFile;
  try {
    handle = await Deno.open(file);
  } catch (err) {
    if (err instanceof Deno.errors.NotFound) {
      throw new Error(
        `${file}: no such file. The ${task.name} folder is incomplete; run \`deno task normtune glue ` +
          `download ${task.name}\` again or point GLUE_DIR at a complete copy.`,
      );
    }
    throw err;
  }
  const examples: Example[] = [];
  const skipReasons: string[] = [];
  let skipped = 0;
  let layout: Layout | undefined = task.header ? undefined : headerlessLayout(task);
  for await (const [line, text] of readLines(handle, file)) {
    if (layout === undefined) {
      layout = headerLayout(task, text.split("\t"), file, line);
      continue;
    }
    if (text === "") continue;
    const parsed = parseRow(task, layout, text.split("\t"));
    if (typeof parsed === "string") {
      const reason = `${file}:${line}: ${parsed}`;
      if (!opts.skipBadRows) {
        throw new Error(`${reason}; fix or remove that line`);
      }
      skipped++;
      if (skipReasons.length < MAX_REASONS) skipReasons.push(reason);
      continue;
    }
    parsed.line = line;
    examples.push(parsed);
  }
  if (layout === undefined) throw new Error(`${file}: empty file, expected a header line`);
  return { examples: subsample(examples, opts), skipped, skipReasons, file };
}

/** Where the wanted fields sit in a row, and how many columns a row must have. */
interface Layout {
  a: number;
  b?: number;
  label: number;
  columns: number;
}

function headerlessLayout(task: GlueTask): Layout {
  const index = (c: string | number | undefined, what: string): number => {
    if (typeof c !== "number") {
      throw new Error(`${task.name}: headerless task needs a column index for ${what}`);
    }
    return c;
  };
  const a = index(task.textA, "textA");
  const b = task.textB === undefined ? undefined : index(task.textB, "textB");
  const label = index(task.label, "label");
  const columns = task.columns ?? Math.max(a, b ?? 0, label) + 1;
  return { a, b, label, columns };
}

function headerLayout(task: GlueTask, header: string[], file: string, line: number): Layout {
  const index = (c: string | number): number => {
    if (typeof c === "number") return c;
    const i = header.indexOf(c);
    if (i < 0) {
      throw new Error(
        `${file}:${line}: no column "${c}" in the header (found ${quote(header)}); ` +
          `is this the ${task.name} file?`,
      );
    }
    return i;
  };
  return {
    a: index(task.textA),
    b: task.textB === undefined ? undefined : index(task.textB),
    label: index(task.label),
    columns: header.length,
  };
}

/** An example (line filled in by the caller), or why the row is malformed. */
function parseRow(task: GlueTask, layout: Layout, cols: string[]): Example | string {
  if (cols.length !== layout.columns) {
    return `expected ${layout.columns} tab-separated columns, found ${cols.length}`;
  }
  const raw = cols[layout.label].trim();
  let label: number;
  if (task.labels === null) {
    label = Number(raw);
    if (raw === "" || !Number.isFinite(label)) return `score ${quote(raw)} is not a number`;
  } else {
    label = task.labels.indexOf(raw);
    if (label < 0) return `label ${quote(raw)} is not one of ${JSON.stringify(task.labels)}`;
  }
  return layout.b === undefined
    ? { textA: cols[layout.a], label, line: 0 }
    : { textA: cols[layout.a], textB: cols[layout.b], label, line: 0 };
}

/** Yields [1-based line number, text without its line ending]; closes the file when done or abandoned. */
async function* readLines(handle: Deno.FsFile, file: string): AsyncGenerator<[number, string]> {
  const reader = handle.readable.pipeThrough(new TextDecoderStream("utf-8", { fatal: true })).getReader();
  let rest = "";
  let line = 0;
  const clean = (s: string) => {
    line++;
    // TextDecoderStream drops a leading BOM already; this covers a BOM split oddly or doubled.
    if (line === 1 && s.startsWith("\ufeff")) s = s.slice(1);
    return s.endsWith("\r") ? s.slice(0, -1) : s;
  };
  try {
    while (true) {
      let chunk: ReadableStreamReadResult<string>;
      try {
        chunk = await reader.read();
      } catch (err) {
        throw new Error(`${file}: cannot decode as UTF-8 near line ${line + 1} (${(err as Error).message})`);
      }
      if (chunk.done) break;
      rest += chunk.value;
      let start = 0;
      for (let nl = rest.indexOf("\n"); nl >= 0; nl = rest.indexOf("\n", start)) {
        const text = clean(rest.slice(start, nl));
        yield [line, text];
        start = nl + 1;
      }
      rest = rest.slice(start);
    }
    if (rest !== "") {
      const text = clean(rest);
      yield [line, text];
    }
  } finally {
    await reader.cancel().catch(() => {});
  }
}

function checkSubsetOptions(opts: LoadOptions): void {
  const { maxExamples, seed } = opts;
  if (maxExamples !== undefined && !(Number.isInteger(maxExamples) && maxExamples >= 1)) {
    throw new Error(`maxExamples must be a positive integer, got ${maxExamples}`);
  }
  if (seed !== undefined && !Number.isInteger(seed)) throw new Error(`seed must be an integer, got ${seed}`);
}

/** A seeded random subset of `maxExamples` rows, kept in file order; all rows when there are fewer. */
function subsample(examples: Example[], opts: LoadOptions): Example[] {
  const k = opts.maxExamples;
  if (k === undefined || k >= examples.length) return examples;
  const rng = mulberry32(opts.seed ?? 0);
  const order = Array.from(examples.keys());
  // Partial Fisher-Yates: the first k slots end up a uniform random k-subset.
  for (let i = 0; i < k; i++) {
    const j = i + Math.floor(rng() * (order.length - i));
    [order[i], order[j]] = [order[j], order[i]];
  }
  return order.slice(0, k).sort((x, y) => x - y).map((i) => examples[i]);
}

function isDir(path: string): boolean {
  try {
    return Deno.statSync(path).isDirectory;
  } catch {
    return false;
  }
}
