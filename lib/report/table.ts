/**
 * Tables for the reports: rows of plain objects rendered as an HTML table (for notebooks and the exported
 * pages) and as an aligned pipe table (text/plain, also valid Markdown), plus the one aggregation the
 * reports keep needing (mean +- std over seeds, grouped by some columns).
 *
 * Rendering stays here rather than in a table library: the reports only need rendering and a grouped
 * mean/std, which fit in this file. DataFrames for notebook users come from polars (lib/experiments/
 * frame.ts) and are rendered by this file too (display.ts `frameBundle`); danfojs needs native tfjs-node,
 * and arquero 8.0.3 does not install under `deno install` (its dependency `@uwdata/flechette@^2` resolves to
 * 2.7.0, which depends on `@uwdata/wk-geojson`, a package npm does not have).
 *
 * ```ts
 * const rows = meanStdBy(runs, ["task", "method"], "score"); // [{task, method, mean, std, n}]
 * const { html, text } = renderTable(rows, { caption: "Dev scores", digits: 2 });
 * ```
 */

export type Row = Record<string, unknown>;

export interface TableOptions {
  caption?: string;
  /** Columns to show, in order (default: every key, in first-seen order). */
  columns?: readonly string[];
  /** Decimals for non-integer numbers (default 3). */
  digits?: number;
  /** Per-column formatters, which win over the default formatting. */
  format?: Record<string, (value: unknown, row: Row) => string>;
}

/** How a cell value is written: integers as is, tiny numbers in exponent form, others with `digits` decimals. */
export function formatCell(value: unknown, digits = 3): string {
  if (value === null || value === undefined) return "";
  if (typeof value === "number") {
    if (Number.isInteger(value)) return String(value);
    if (!Number.isFinite(value)) return String(value);
    // Fisher scores and parameter changes are often ~1e-6: fixed decimals would print 0.000.
    if (value !== 0 && Math.abs(value) < 10 ** -digits) return value.toExponential(Math.max(1, digits - 1));
    return value.toFixed(digits);
  }
  if (typeof value === "string") return value;
  if (typeof value === "boolean" || typeof value === "bigint") return String(value);
  return JSON.stringify(value);
}

/** `81.23 ± 0.45`. */
export function formatMeanStd(mean: number, std: number, digits = 2): string {
  return `${mean.toFixed(digits)} ± ${std.toFixed(digits)}`;
}

export function escapeHtml(s: string): string {
  return s.replaceAll("&", "&amp;").replaceAll("<", "&lt;").replaceAll(">", "&gt;").replaceAll('"', "&quot;");
}

/** Every key of the rows, in first-seen order. */
export function columnsOf(rows: readonly Row[]): string[] {
  const seen = new Set<string>();
  for (const row of rows) for (const k of Object.keys(row)) seen.add(k);
  return [...seen];
}

interface Cells {
  columns: string[];
  cells: string[][];
  numeric: boolean[];
}

function toCells(rows: readonly Row[], opts: TableOptions): Cells {
  const columns = opts.columns ? [...opts.columns] : columnsOf(rows);
  const digits = opts.digits ?? 3;
  const cells = rows.map((row) =>
    columns.map((c) => opts.format?.[c] ? opts.format[c](row[c], row) : formatCell(row[c], digits))
  );
  // A column is numeric (right-aligned) when every present value is a number.
  const numeric = columns.map((c) => {
    const present = rows.map((r) => r[c]).filter((v) => v !== null && v !== undefined);
    return present.length > 0 && present.every((v) => typeof v === "number");
  });
  return { columns, cells, numeric };
}

/** The table as HTML (`html`) and as an aligned pipe table (`text`). */
export function renderTable(rows: readonly Row[], opts: TableOptions = {}): { html: string; text: string } {
  const { columns, cells, numeric } = toCells(rows, opts);
  // Explicit both ways: JupyterLab's stylesheet right-aligns every cell.
  const align = (j: number) => ` style="text-align:${numeric[j] ? "right" : "left"}"`;
  const head = columns.map((c, j) => `<th${align(j)}>${escapeHtml(c)}</th>`).join("");
  const body = cells.map((r) =>
    `<tr>${r.map((v, j) => `<td${align(j)}>${escapeHtml(v)}</td>`).join("")}</tr>`
  )
    .join("\n");
  const caption = opts.caption ? `<caption>${escapeHtml(opts.caption)}</caption>` : "";
  const html = `<table class="normtune-table">${caption}\n<thead><tr>${head}</tr></thead>\n` +
    `<tbody>\n${body}\n</tbody></table>`;

  const widths = columns.map((c, j) => Math.max(c.length, 3, ...cells.map((r) => r[j].length)));
  const pad = (s: string, j: number) => numeric[j] ? s.padStart(widths[j]) : s.padEnd(widths[j]);
  const line = (r: string[]) => `| ${r.map(pad).join(" | ")} |`;
  const rule = `| ${
    widths.map((w, j) => numeric[j] ? "-".repeat(w - 1) + ":" : "-".repeat(w)).join(" | ")
  } |`;
  const lines = [line(columns), rule, ...cells.map(line)];
  const text = (opts.caption ? `${opts.caption}\n\n` : "") + lines.join("\n");
  return { html, text };
}

/** Sample mean and standard deviation (n - 1 in the denominator; 0 for a single value). */
export function meanStd(values: readonly number[]): { mean: number; std: number; n: number } {
  const n = values.length;
  if (n === 0) throw new Error("meanStd: no values");
  const mean = values.reduce((a, b) => a + b, 0) / n;
  const variance = n > 1 ? values.reduce((a, v) => a + (v - mean) ** 2, 0) / (n - 1) : 0;
  return { mean, std: Math.sqrt(variance), n };
}

/**
 * Groups rows by the `by` columns and returns one row per group, in first-seen order:
 * the `by` values plus `mean`, `std` (sample) and `n` of column `value`. A non-number value is an error.
 */
export function meanStdBy(rows: readonly Row[], by: readonly string[], value: string): Row[] {
  const groups = new Map<string, { keys: Row; values: number[] }>();
  rows.forEach((row, i) => {
    const v = row[value];
    if (typeof v !== "number" || Number.isNaN(v)) {
      throw new Error(`meanStdBy: row ${i} has ${value}=${JSON.stringify(v)}, expected a number`);
    }
    const keys = Object.fromEntries(by.map((k) => [k, row[k]]));
    const id = JSON.stringify(by.map((k) => row[k]));
    const g = groups.get(id) ?? { keys, values: [] };
    g.values.push(v);
    groups.set(id, g);
  });
  return [...groups.values()].map((g) => ({ ...g.keys, ...meanStd(g.values) }));
}
