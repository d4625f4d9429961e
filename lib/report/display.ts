/**
 * Showing figures, tables and Markdown from a Deno Jupyter notebook. Each `show*` call sends one
 * `display_data` message through `Deno.jupyter.display(bundle, { raw: true })` (we never rely on a cell's
 * last expression: the Deno kernel sometimes drops it). Outside Jupyter (tests, `deno run`) the same calls
 * print their text/plain form, so notebook code can run and be tested anywhere.
 *
 * A figure's bundle carries:
 * - `application/vnd.plotly.v1+json`: the figure spec, drawn natively by JupyterLab with the plotly
 *   extension and by VS Code;
 * - `text/html`: a `<div>` and a small script calling `Plotly.newPlot`, used by everything else (JupyterLab
 *   without the extension, nbconvert's HTML export). It never contains plotly.js (~5 MB). It uses
 *   `window.Plotly` when present: the exported HTML (`export.ts`) puts plotly.js once into its `<head>`.
 *   Otherwise (interactive JupyterLab without the extension, the classic Notebook) it loads plotly.js once
 *   per page, through the Jupyter server's `files/` route under the server's base URL, from the project's
 *   `node_modules/plotly.js-dist-min/plotly.min.js`: first at the path relative to the notebook's folder
 *   (taken from the page URL `.../tree/<path>` or `.../notebooks/<path>` and the kernel's cwd, which is the
 *   notebook's folder), then at `files/node_modules/...` (server started at the project root). If neither
 *   loads, the output says so instead of drawing;
 * - `text/plain`: a one-line summary.
 *
 * ```ts
 * import { heatmap, showFigure, showMarkdown, showTable } from "../lib/report/mod.ts";
 * await showMarkdown("## Fisher scores");
 * await showFigure(heatmap(z, layers, components, { title: "Fisher score" }));
 * await showTable(rows, { caption: "Dev scores", digits: 2 });
 * await showFrame(df, { caption: "Fine-tuning cells", maxRows: 10 }); // a polars DataFrame, first rows
 * ```
 */
import { join, relative, sep } from "node:path";
import { ROOT } from "../util/paths.ts";
import { type Figure, figureTitle } from "./plot.ts";
import { renderTable, type Row, type TableOptions } from "./table.ts";

/** A Jupyter MIME bundle: MIME type -> data. */
export type MediaBundle = Record<string, string | object>;

/** Where plotly.js lives, relative to the project root (what `deno install` puts there). */
export const PLOTLY_FILE = "node_modules/plotly.js-dist-min/plotly.min.js";

export const PLOTLY_MIME = "application/vnd.plotly.v1+json";

/** True inside a `deno jupyter` kernel. (Reading `Deno.jupyter` elsewhere throws, hence the try.) */
export function inJupyter(): boolean {
  try {
    return typeof Deno.jupyter?.display === "function";
  } catch {
    return false;
  }
}

/** JSON that is safe inside a `<script>` element (no `</script>`, no `<!--`). */
function scriptJson(value: unknown): string {
  return JSON.stringify(value).replaceAll("<", "\\u003c").replaceAll("\u2028", "\\u2028")
    .replaceAll("\u2029", "\\u2029");
}

/**
 * The browser-side part of the html fallback: draw now if `window.Plotly` exists, else load plotly.js once
 * per page (one shared promise) from the candidate URLs, then draw. Plain ES5, no modules: it runs in
 * JupyterLab's output area and in nbconvert's exported page alike.
 */
const LOADER = `
  function draw() {
    el.textContent = "";
    window.Plotly.newPlot(el, fig.data, fig.layout, { responsive: true, displaylogo: false });
  }
  if (window.Plotly) { draw(); return; }
  function candidates() {
    // JupyterLab and Notebook 7 publish the server's base URL in a JSON element, the classic Notebook on
    // <body data-base-url>; it is not "/" behind JupyterHub (/user/NAME/) or with --base-url.
    var base = (document.body && document.body.getAttribute("data-base-url")) || "/";
    var cfg = document.getElementById("jupyter-config-data");
    if (cfg) { try { base = JSON.parse(cfg.textContent).baseUrl || "/"; } catch (e) {} }
    if (base.charAt(base.length - 1) !== "/") base += "/";
    var urls = [];
    var m = /\\/(?:lab(?:\\/workspaces\\/[^/]+)?\\/tree|notebooks|doc\\/tree|tree)\\/(.+)$/.exec(location.pathname);
    if (m) {
      var parts = decodeURIComponent(m[1]).split("/").slice(0, -1).concat(fromNotebook.split("/"));
      var out = [];
      for (var i = 0; i < parts.length; i++) {
        if (parts[i] === "..") { if (out.length === 0) { out = null; break; } out.pop(); }
        else if (parts[i] !== "." && parts[i] !== "") out.push(parts[i]);
      }
      if (out) urls.push(base + "files/" + out.map(encodeURIComponent).join("/"));
    }
    var rootUrl = base + "files/" + fromRoot;
    if (urls.indexOf(rootUrl) < 0) urls.push(rootUrl);
    return urls;
  }
  if (!window.__normtunePlotly) {
    window.__normtunePlotly = new Promise(function (resolve, reject) {
      var urls = candidates();
      (function next(i) {
        if (i >= urls.length) { window.__normtunePlotly = null; reject(urls); return; }
        var s = document.createElement("script");
        s.src = urls[i];
        s.onload = function () { if (window.Plotly) resolve(); else next(i + 1); };
        s.onerror = function () { s.remove(); next(i + 1); };
        document.head.appendChild(s);
      })(0);
    });
  }
  el.textContent = "Loading plotly.js...";
  window.__normtunePlotly.then(draw, function (urls) {
    el.textContent = "Figure not drawn: plotly.js was not found at " + urls.join(", ") +
      ". Run \\"deno install\\" in the project, start Jupyter at the project root or install the JupyterLab " +
      "plotly extension; the exported report (normtune report) always draws.";
  });
`;

let figureCount = 0;

export interface FigureBundleOptions {
  /** The notebook's folder (default: the cwd, which is the notebook's folder in a Jupyter kernel). */
  notebookDir?: string;
  /** The `<div>` id (default: a fresh unique id). */
  id?: string;
}

/** The MIME bundle for a figure (pure; see the module doc for what each entry is for). */
export function figureBundle(fig: Figure, opts: FigureBundleOptions = {}): MediaBundle {
  const id = opts.id ?? `normtune-fig-${++figureCount}-${crypto.randomUUID().slice(0, 8)}`;
  const notebookDir = opts.notebookDir ?? Deno.cwd();
  const fromNotebook = relative(notebookDir, join(ROOT, PLOTLY_FILE)).split(sep).join("/");
  // The div gets the figure's height: with `responsive`, Plotly drops layout.height on resize and sizes to
  // the container, which would otherwise have no height of its own.
  const height = typeof fig.layout.height === "number" ? fig.layout.height : 450;
  const html = `<div id="${id}" class="normtune-figure" style="width:100%;height:${height}px"></div>\n` +
    `<script type="text/javascript">\n` +
    `(function () {\n  var el = document.getElementById(${scriptJson(id)});\n` +
    `  var fig = ${scriptJson({ data: fig.data, layout: fig.layout })};\n` +
    `  var fromNotebook = ${scriptJson(fromNotebook)}, fromRoot = ${scriptJson(PLOTLY_FILE)};\n` +
    `${LOADER}})();\n</script>`;
  const title = figureTitle(fig);
  return {
    [PLOTLY_MIME]: { data: fig.data, layout: fig.layout },
    "text/html": html,
    "text/plain": `[figure${title ? `: ${title}` : ""} (${fig.data.length} trace${
      fig.data.length === 1 ? "" : "s"
    })]`,
  };
}

/** The MIME bundle for a table. */
export function tableBundle(rows: readonly Row[], opts: TableOptions = {}): MediaBundle {
  const { html, text } = renderTable(rows, opts);
  return { "text/html": html, "text/plain": text };
}

/**
 * What `frameBundle` needs of a DataFrame: its size and a slice of its rows as plain objects. A polars
 * DataFrame (lib/experiments/frame.ts) has them; this module does not import the DataFrame library.
 * (`slice`, not `head`: a polars column hides the method of its name, and a pivot on `method` has a
 * column `head`, the head-only control.)
 */
export interface FrameLike {
  height: number;
  width: number;
  slice(offset: number, length: number): { toRecords(): Row[] };
}

export interface FrameOptions extends TableOptions {
  /** Rows shown at most (default 20): a notebook output and a report page stay small. */
  maxRows?: number;
}

/** The MIME bundle for a DataFrame: its first `maxRows` rows as a table; the caption gives the size. */
export function frameBundle(df: FrameLike, opts: FrameOptions = {}): MediaBundle {
  const { maxRows = 20, ...table } = opts;
  const shown = Math.min(df.height, maxRows);
  const size = shown < df.height
    ? `first ${shown} of ${df.height} rows, ${df.width} columns`
    : `${df.height} rows, ${df.width} columns`;
  const caption = table.caption ? `${table.caption} (${size})` : size;
  if (typeof df.slice !== "function") {
    throw new Error(
      'frameBundle: the frame\'s `slice` is not a method (a column named "slice" hides it); rename it',
    );
  }
  return tableBundle(df.slice(0, shown).toRecords(), { ...table, caption });
}

/** The MIME bundle for Markdown. */
export function markdownBundle(md: string): MediaBundle {
  return { "text/markdown": md, "text/plain": md };
}

/** Sends a bundle to the notebook, or prints its text/plain outside Jupyter. */
export async function display(bundle: MediaBundle): Promise<void> {
  if (inJupyter()) await Deno.jupyter.display(bundle, { raw: true });
  else console.log(String(bundle["text/plain"] ?? ""));
}

export function showFigure(fig: Figure, opts: FigureBundleOptions = {}): Promise<void> {
  return display(figureBundle(fig, opts));
}

export function showTable(rows: readonly Row[], opts: TableOptions = {}): Promise<void> {
  return display(tableBundle(rows, opts));
}

export function showFrame(df: FrameLike, opts: FrameOptions = {}): Promise<void> {
  return display(frameBundle(df, opts));
}

export function showMarkdown(md: string): Promise<void> {
  return display(markdownBundle(md));
}
