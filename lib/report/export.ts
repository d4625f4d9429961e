/**
 * Notebooks -> offline HTML reports. `jupyter nbconvert` runs the notebooks headless with the Deno kernel
 * and writes HTML; this module adds what nbconvert does not: plotly.js exactly once per page (cell outputs
 * never carry it, see `display.ts`), the page title from the notebook's first heading, atomic writes, and
 * an `index.html` listing the reports.
 *
 * Execution: the notebook runs where it is (so the kernel's cwd is the notebook's folder and relative
 * imports like `../lib/report/mod.ts` resolve), and the executed copy is written to `<outDir>/<name>.ipynb`
 * through a temporary name and a rename. The source notebook is never modified (no outputs in git). A cell
 * that throws fails `executeNotebook` with that cell's source and error in the message.
 *
 * Offline: the page gets plotly.js inline in `<head>`, before any other script, so figures draw with no
 * network. nbconvert's template still references require.js and MathJax (local `file://` paths on Debian,
 * a CDN upstream); figures do not depend on them, and plotly.js 4 sets `window.Plotly` even when an AMD
 * loader is present.
 *
 * ```ts
 * const executed = await executeNotebook("notebooks/fisher.ipynb", { outDir: "reports" });
 * await exportHtml(executed, "reports/fisher.html");
 * await writeIndex(await listReports("reports"), "reports");
 * ```
 */
import { basename, join, relative, resolve } from "node:path";
import { writeFileAtomic } from "../util/atomic.ts";
import { ROOT } from "../util/paths.ts";
import { PLOTLY_FILE } from "./display.ts";
import { escapeHtml } from "./table.ts";

const JUPYTER = "jupyter";

interface RunResult {
  code: number;
  stdout: string;
  stderr: string;
}

// deno-lint-ignore no-control-regex
const ANSI = /\x1b\[[0-9;]*[A-Za-z]/g;

async function run(cmd: string, args: string[], env: Record<string, string> = {}): Promise<RunResult> {
  let out;
  try {
    out = await new Deno.Command(cmd, {
      args,
      // Silences the "frozen modules" debugger warning Python prints for every kernel client.
      env: { PYDEVD_DISABLE_FILE_VALIDATION: "1", ...env },
      stdout: "piped",
      stderr: "piped",
    }).output();
  } catch (err) {
    if (err instanceof Deno.errors.NotFound) {
      throw new Error(
        `"${cmd}" not found: install Jupyter's nbconvert and client (Debian: apt install jupyter-nbconvert ` +
          `jupyter-client python3-ipykernel python3-nbclient; or pip install nbconvert nbclient)`,
      );
    }
    throw err;
  }
  const text = (b: Uint8Array) => new TextDecoder().decode(b).replace(ANSI, "");
  return { code: out.code, stdout: text(out.stdout), stderr: text(out.stderr) };
}

let kernelReady: Promise<void> | undefined;

/** Registers Deno's Jupyter kernel (`deno jupyter --install`) if `jupyter kernelspec list` lacks it. */
export function ensureDenoKernel(): Promise<void> {
  kernelReady ??= (async () => {
    const list = await run(JUPYTER, ["kernelspec", "list", "--json"]);
    if (list.code !== 0) throw new Error(`jupyter kernelspec list failed:\n${list.stderr}`);
    const specs = (JSON.parse(list.stdout) as { kernelspecs: Record<string, unknown> }).kernelspecs;
    if (specs.deno) return;
    const install = await run(Deno.execPath(), ["jupyter", "--install"]);
    if (install.code !== 0) throw new Error(`deno jupyter --install failed:\n${install.stderr}`);
  })();
  kernelReady.catch(() => kernelReady = undefined);
  return kernelReady;
}

/** The useful part of nbconvert's stderr when a cell fails: the cell's source and its error. */
export function cellError(stderr: string): string {
  const start = stderr.indexOf("An error occurred while executing the following cell");
  if (start >= 0) return stderr.slice(start).trim();
  return stderr.trim().split("\n").slice(-40).join("\n");
}

export interface ExecuteOptions {
  /** Extra environment for the kernel (on top of this process's). */
  env?: Record<string, string>;
  /** Per-cell timeout in seconds (default 3600; -1 for none). */
  timeoutS?: number;
  /** Folder for the executed copy (default `reports/` under the project root). */
  outDir?: string;
  /** Kernel name (default "deno", whatever the notebook's metadata says). */
  kernel?: string;
  /** Where a line about a repeated run goes (default stderr). */
  log?: (line: string) => void;
}

/** Executions of one notebook before a cell whose display the kernel dropped fails it (`executeNotebook`). */
export const EXECUTE_ATTEMPTS = 3;

/**
 * Runs every cell of `path` headless and writes the executed notebook to `<outDir>/<name>.ipynb`
 * (atomically); returns that path. Throws with the failing cell's source and error if a cell throws.
 *
 * The Deno kernel now and then drops a cell's display (seen in CI: the findings notebook's one display of
 * the six findings came back empty, the run otherwise fine), which would leave a report silently missing
 * its content. So a run in which a cell that calls a display function (`droppedDisplays`) has no output is
 * repeated, up to `EXECUTE_ATTEMPTS` runs in all, and then it is an error naming those cells.
 */
export async function executeNotebook(path: string, opts: ExecuteOptions = {}): Promise<string> {
  const log = opts.log ?? ((line: string) => console.error(line));
  for (let attempt = 1;; attempt++) {
    const executed = await executeOnce(path, opts);
    const dropped = droppedDisplays(await readNotebook(executed.tmp));
    if (dropped.length === 0) {
      await Deno.rename(executed.tmp, executed.target);
      return executed.target;
    }
    await Deno.remove(executed.tmp).catch(() => {});
    const cells = `code cell(s) ${dropped.join(", ")} (counting from 1)`;
    if (attempt >= EXECUTE_ATTEMPTS) {
      throw new Error(
        `${path}: ${cells} displayed nothing in ${attempt} runs: the kernel dropped their output, or they ` +
          `display nothing in a run like this one`,
      );
    }
    log(`${basename(path)}: ${cells} came back without output; running the notebook again`);
  }
}

/** One headless run of `path` into a temporary file beside its target. */
async function executeOnce(path: string, opts: ExecuteOptions): Promise<{ tmp: string; target: string }> {
  await ensureDenoKernel();
  const source = resolve(path);
  const outDir = resolve(opts.outDir ?? join(ROOT, "reports"));
  await Deno.mkdir(outDir, { recursive: true });
  const name = basename(source, ".ipynb");
  const tmpName = `${name}.tmp-${Deno.pid}-${crypto.randomUUID().slice(0, 8)}`;
  const result = await run(JUPYTER, [
    "nbconvert",
    "--to=notebook",
    "--execute",
    `--ExecutePreprocessor.kernel_name=${opts.kernel ?? "deno"}`,
    `--ExecutePreprocessor.timeout=${opts.timeoutS ?? 3600}`,
    `--output-dir=${outDir}`,
    `--output=${tmpName}`,
    source,
  ], opts.env);
  const tmp = join(outDir, `${tmpName}.ipynb`);
  if (result.code !== 0) {
    await Deno.remove(tmp).catch(() => {});
    throw new Error(`${path}: execution failed.\n${cellError(result.stderr)}`);
  }
  return { tmp, target: join(outDir, `${name}.ipynb`) };
}

/** A call of a display function: `Deno.jupyter.display(`, `display(` or a `show...(` helper. */
const DISPLAY_CALL = /\b(?:display|show[A-Z]\w*)\(/;

/**
 * The code cells (numbered from 1 among code cells) that call a display function but hold no output
 * after execution.
 */
export function droppedDisplays(nb: NotebookJson): number[] {
  const out: number[] = [];
  nb.cells.filter((c) => c.cell_type === "code").forEach((c, i) => {
    if (DISPLAY_CALL.test(sourceText(c.source)) && !c.outputs?.length) out.push(i + 1);
  });
  return out;
}

interface NotebookJson {
  cells: { cell_type: string; source: string | string[]; outputs?: unknown[] }[];
}

async function readNotebook(path: string): Promise<NotebookJson> {
  try {
    return JSON.parse(await Deno.readTextFile(path)) as NotebookJson;
  } catch (err) {
    throw new Error(`${path}: cannot read notebook (${(err as Error).message})`);
  }
}

const sourceText = (s: string | string[]) => Array.isArray(s) ? s.join("") : s;

/** The notebook's title: its first Markdown heading, else the file name. */
export function notebookTitle(nb: NotebookJson, fallback: string): string {
  for (const cell of nb.cells) {
    if (cell.cell_type !== "markdown") continue;
    const m = /^#{1,6}[ \t]+(.+?)[ \t#]*$/m.exec(sourceText(cell.source));
    if (m) return m[1].replace(/[*_`]/g, "").trim();
  }
  return fallback;
}

/** Number of code cells without any output (a notebook that was never run, or saved cleared). */
export function cellsWithoutOutput(nb: NotebookJson): number {
  return nb.cells.filter((c) => c.cell_type === "code" && sourceText(c.source).trim() && !c.outputs?.length)
    .length;
}

/**
 * A 64-character piece of the plotly.js bundle made of characters that survive JSON and HTML unchanged,
 * used to count copies of the bundle in a page or a notebook.
 */
export function plotlySignature(plotlyJs: string): string {
  for (let i = Math.floor(plotlyJs.length / 2); i < plotlyJs.length - 64; i++) {
    const piece = plotlyJs.slice(i, i + 64);
    if (/^[A-Za-z0-9_.,(){}=;:+*\-]+$/.test(piece)) return piece;
  }
  throw new Error("plotlySignature: no plain 64-character piece in the second half of plotly.js");
}

export function countOccurrences(text: string, piece: string): number {
  let n = 0;
  for (let i = text.indexOf(piece); i >= 0; i = text.indexOf(piece, i + piece.length)) n++;
  return n;
}

/** plotly.js as shipped by the npm package (see `PLOTLY_FILE`). */
export async function readPlotly(path = join(ROOT, PLOTLY_FILE)): Promise<string> {
  try {
    return await Deno.readTextFile(path);
  } catch (err) {
    throw new Error(`${path}: cannot read plotly.js (${(err as Error).message}); run \`deno install\``);
  }
}

/** Marks the end of the injected plotly.js (whose SVG strings hold `<title>` tags of their own). */
export const PLOTLY_END = "<!-- /plotly.js -->";

/**
 * Puts plotly.js into `<head>` once, before any other script (right after `<meta charset>` when present,
 * so the charset stays within the first bytes). `</script` inside the bundle is escaped so it cannot end
 * the element early.
 */
export function injectPlotly(html: string, plotlyJs: string): string {
  const head = /<head[^>]*>/i.exec(html);
  if (!head) throw new Error("injectPlotly: the page has no <head>");
  const headEnd = html.search(/<\/head>/i);
  const charset = /<meta[^>]*charset[^>]*>/i.exec(html.slice(head.index));
  let at = head.index + head[0].length;
  if (charset && (headEnd < 0 || head.index + charset.index < headEnd)) {
    at = head.index + charset.index + charset[0].length;
  }
  const js = plotlyJs.replace(/<\/script/gi, "<\\/script");
  const block = `\n<script type="text/javascript">/* plotly.js, once for every figure on this page */\n` +
    `${js}\n</script>${PLOTLY_END}\n`;
  return html.slice(0, at) + block + html.slice(at);
}

/** Sets the page's `<title>` (or adds one to `<head>`). */
export function setTitle(html: string, title: string): string {
  const tag = `<title>${escapeHtml(title)}</title>`;
  if (/<title>[\s\S]*?<\/title>/i.test(html)) return html.replace(/<title>[\s\S]*?<\/title>/i, () => tag);
  return html.replace(/<head[^>]*>/i, (m) => m + tag);
}

export interface ExportOptions {
  /** Hide code cells, keep outputs (nbconvert `--no-input`). */
  noInput?: boolean;
  /** Page title (default: the notebook's first heading). */
  title?: string;
  /** plotly.js source (default: read from node_modules). */
  plotlyJs?: string;
}

/** Converts an (executed) notebook to a standalone HTML page with plotly.js once in `<head>`. */
export async function exportHtml(notebook: string, outHtml: string, opts: ExportOptions = {}): Promise<void> {
  const nb = await readNotebook(notebook);
  const title = opts.title ?? notebookTitle(nb, basename(notebook, ".ipynb"));
  const plotlyJs = opts.plotlyJs ?? await readPlotly();
  const tmpDir = await Deno.makeTempDir({ prefix: "normtune-html-" });
  try {
    const result = await run(JUPYTER, [
      "nbconvert",
      "--to=html",
      ...(opts.noInput ? ["--no-input"] : []),
      `--output-dir=${tmpDir}`,
      "--output=page",
      resolve(notebook),
    ]);
    if (result.code !== 0) throw new Error(`${notebook}: HTML export failed:\n${result.stderr.trim()}`);
    const html = await Deno.readTextFile(join(tmpDir, "page.html"));
    await writeFileAtomic(outHtml, injectPlotly(setTitle(html, title), plotlyJs));
  } finally {
    await Deno.remove(tmpDir, { recursive: true }).catch(() => {});
  }
}

export interface ReportEntry {
  title: string;
  /** The HTML file. */
  html: string;
}

/** The reports in `outDir` (every `*.html` but `index.html`), by file name, titled by their `<title>`. */
export async function listReports(outDir: string): Promise<ReportEntry[]> {
  const entries: ReportEntry[] = [];
  for await (const e of Deno.readDir(outDir)) {
    if (!e.isFile || !e.name.endsWith(".html") || e.name === "index.html") continue;
    const path = join(outDir, e.name);
    const html = await Deno.readTextFile(path);
    // Look past the injected plotly.js, whose SVG icons carry <title> tags.
    const end = html.indexOf(PLOTLY_END);
    const m = /<title>([\s\S]*?)<\/title>/i.exec(end >= 0 ? html.slice(end) : html);
    const title = m
      ? m[1].replaceAll("&lt;", "<").replaceAll("&gt;", ">").replaceAll("&quot;", '"')
        .replaceAll("&amp;", "&")
      : basename(e.name, ".html");
    entries.push({ title, html: path });
  }
  return entries.sort((a, b) => a.html.localeCompare(b.html));
}

/** Writes `<outDir>/index.html` linking every report (relative links, so the folder can move). */
export async function writeIndex(reports: readonly ReportEntry[], outDir: string): Promise<string> {
  const items = reports.map((r) => {
    const href = relative(outDir, r.html).split("\\").join("/").split("/").map(encodeURIComponent).join("/");
    return `  <li><a href="${href}">${escapeHtml(r.title)}</a> <small>(${escapeHtml(basename(r.html))})` +
      `</small></li>`;
  });
  const html = `<!DOCTYPE html>
<html>
<head>
<meta charset="utf-8">
<title>normtune reports</title>
<style>
body { font-family: system-ui, sans-serif; max-width: 50rem; margin: 2rem auto; padding: 0 1rem; }
li { margin: 0.4rem 0; } small { color: #777; }
</style>
</head>
<body>
<h1>normtune reports</h1>
<ul>
${items.join("\n")}
</ul>
<p><small>Generated ${new Date().toISOString()}.</small></p>
</body>
</html>
`;
  const path = join(outDir, "index.html");
  await writeFileAtomic(path, html);
  return path;
}

export interface BuildOptions {
  notebooksDir: string;
  outDir: string;
  /** Run the notebooks first (else export them with the outputs they were saved with). */
  execute?: boolean;
  /** Only these notebooks (file names, with or without `.ipynb`); default all. */
  names?: readonly string[];
  timeoutS?: number;
  env?: Record<string, string>;
  noInput?: boolean;
  log?: (line: string) => void;
}

/**
 * Builds one HTML report per notebook in `notebooksDir` (files starting with `_` or `.` are skipped), then
 * the index. Every notebook is tried; failures are collected and thrown together at the end.
 */
export async function buildReports(opts: BuildOptions): Promise<ReportEntry[]> {
  const log = opts.log ?? ((line: string) => console.error(line));
  const wanted = opts.names?.map((n) => n.endsWith(".ipynb") ? n : `${n}.ipynb`);
  const notebooks: string[] = [];
  for await (const e of Deno.readDir(opts.notebooksDir)) {
    if (!e.isFile || !e.name.endsWith(".ipynb") || /^[_.]/.test(e.name)) continue;
    if (wanted && !wanted.includes(e.name)) continue;
    notebooks.push(join(opts.notebooksDir, e.name));
  }
  notebooks.sort();
  const missing = wanted?.filter((w) => !notebooks.some((n) => basename(n) === w)) ?? [];
  if (missing.length) throw new Error(`not found in ${opts.notebooksDir}: ${missing.join(", ")}`);
  if (notebooks.length === 0) throw new Error(`no notebooks (*.ipynb) in ${opts.notebooksDir}`);

  await Deno.mkdir(opts.outDir, { recursive: true });
  const failures: string[] = [];
  for (const path of notebooks) {
    const name = basename(path, ".ipynb");
    const started = performance.now();
    try {
      let source = path;
      if (opts.execute) {
        log(`${name}: executing`);
        source = await executeNotebook(path, {
          outDir: opts.outDir,
          timeoutS: opts.timeoutS,
          env: opts.env,
          log,
        });
      } else {
        const empty = cellsWithoutOutput(await readNotebook(path));
        if (empty) log(`${name}: ${empty} code cell(s) have no output; pass --execute to run the notebook`);
      }
      const html = join(opts.outDir, `${name}.html`);
      await exportHtml(source, html, { noInput: opts.noInput });
      const size = (await Deno.stat(html)).size;
      log(
        `${name}: ${html} (${(size / 1e6).toFixed(1)} MB, ${
          ((performance.now() - started) / 1000).toFixed(1)
        } s)`,
      );
    } catch (err) {
      failures.push(`${name}: ${(err as Error).message}`);
      log(`${name}: FAILED`);
    }
  }
  const reports = await listReports(opts.outDir);
  const index = await writeIndex(reports, opts.outDir);
  log(`index: ${index} (${reports.length} report(s))`);
  if (failures.length) {
    throw new Error(
      `${failures.length} of ${notebooks.length} notebook(s) failed:\n\n${failures.join("\n\n")}`,
    );
  }
  return reports;
}
