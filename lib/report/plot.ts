/**
 * Figure builders for the reports: pure functions that return plain Plotly figure specs (`{data, layout}`),
 * JSON-serialisable, with no plotly.js involved. `display.ts` shows them in notebooks; the exported HTML
 * draws them with the one copy of plotly.js that `export.ts` puts into the page.
 *
 * ```ts
 * const fig = rankedBar([{ label: "LayerNorm", value: 0.81, error: 0.01 }], { title: "CoLA", yTitle: "MCC" });
 * await showFigure(fig);
 * ```
 *
 * The figures the paper needs: `heatmap` (component x layer scores), `rankedBar` (parameter groups ranked,
 * with error bars), `lineBands` (score vs share of LayerNorm trained, own vs random mask, mean +- std
 * bands), `groupedBars` (methods x tasks).
 */

/** One Plotly trace; kept loose on purpose (Plotly's schema is large) but always plain JSON. */
export type Trace = Record<string, unknown>;
export type Layout = Record<string, unknown>;

/** A Plotly figure spec, what `Plotly.newPlot(div, fig.data, fig.layout)` takes. */
export interface Figure {
  data: Trace[];
  layout: Layout;
}

/** Options every builder takes. */
export interface FigureOptions {
  title?: string;
  xTitle?: string;
  yTitle?: string;
  /** Pixel height; width follows the page. */
  height?: number;
}

/** Plotly's default colour cycle (D3 category10), so that bands can match their line's colour. */
export const PALETTE = [
  "#1f77b4",
  "#ff7f0e",
  "#2ca02c",
  "#d62728",
  "#9467bd",
  "#8c564b",
  "#e377c2",
  "#7f7f7f",
  "#bcbd22",
  "#17becf",
] as const;

/** `#rrggbb` -> `rgba(r,g,b,alpha)`, for translucent error bands. */
export function withAlpha(hex: string, alpha: number): string {
  const m = /^#([0-9a-f]{2})([0-9a-f]{2})([0-9a-f]{2})$/i.exec(hex);
  if (!m) throw new Error(`withAlpha: expected a colour like #1f77b4, got ${JSON.stringify(hex)}`);
  const [r, g, b] = [m[1], m[2], m[3]].map((h) => parseInt(h, 16));
  return `rgba(${r},${g},${b},${alpha})`;
}

function baseLayout(opts: FigureOptions): Layout {
  const layout: Layout = {
    // layout.template takes an object in plotly.js (names like "plotly_white" are Python-only): style here.
    paper_bgcolor: "white",
    plot_bgcolor: "white",
    margin: { l: 70, r: 30, t: opts.title ? 60 : 30, b: 60 },
    xaxis: { title: { text: opts.xTitle ?? "" }, automargin: true, gridcolor: "#eee", zerolinecolor: "#ccc" },
    yaxis: { title: { text: opts.yTitle ?? "" }, automargin: true, gridcolor: "#eee", zerolinecolor: "#ccc" },
  };
  if (opts.title) layout.title = { text: opts.title };
  if (opts.height) layout.height = opts.height;
  return layout;
}

function checkFinite(values: readonly number[], what: string): void {
  const bad = values.findIndex((v) => typeof v !== "number" || Number.isNaN(v));
  if (bad >= 0) throw new Error(`${what}: value ${bad} is ${values[bad]}, expected a number`);
}

function checkLength(values: readonly unknown[] | undefined, n: number, what: string): void {
  if (values !== undefined && values.length !== n) {
    throw new Error(`${what}: has ${values.length} values, expected ${n} (one per x value)`);
  }
}

export interface HeatmapOptions extends FigureOptions {
  /** Plotly colour scale name, e.g. "Viridis" (default), "RdBu". */
  colorscale?: string;
  /** Colour bar title (what the cells measure). */
  zTitle?: string;
  zmin?: number;
  zmax?: number;
  /** Write each cell's value on it with this many decimals (off by default). */
  cellDigits?: number;
}

/**
 * A heatmap of `z[row][col]`, rows labelled `y` (e.g. components) and columns `x` (e.g. layers). The first
 * row is drawn at the top, as in a table. `null` cells (missing) stay blank.
 */
export function heatmap(
  z: readonly (readonly (number | null)[])[],
  x: readonly (string | number)[],
  y: readonly (string | number)[],
  opts: HeatmapOptions = {},
): Figure {
  if (z.length !== y.length) throw new Error(`heatmap: z has ${z.length} rows but y has ${y.length} labels`);
  z.forEach((row, i) => {
    if (row.length !== x.length) {
      throw new Error(`heatmap: row ${i} (${y[i]}) has ${row.length} values but x has ${x.length} labels`);
    }
  });
  const trace: Trace = {
    type: "heatmap",
    z: z.map((row) => [...row]),
    // Category axes: layer numbers are labels, not a continuous scale.
    x: x.map(String),
    y: y.map(String),
    colorscale: opts.colorscale ?? "Viridis",
    colorbar: { title: { text: opts.zTitle ?? "" } },
    hovertemplate: "%{y} · %{x}: %{z}<extra></extra>",
  };
  if (opts.zmin !== undefined) trace.zmin = opts.zmin;
  if (opts.zmax !== undefined) trace.zmax = opts.zmax;
  if (opts.cellDigits !== undefined) {
    trace.texttemplate = `%{z:.${opts.cellDigits}f}`;
  }
  const layout = baseLayout(opts);
  layout.xaxis = { ...(layout.xaxis as Layout), type: "category" };
  layout.yaxis = { ...(layout.yaxis as Layout), type: "category", autorange: "reversed" };
  return { data: [trace], layout };
}

export interface BarItem {
  label: string;
  value: number;
  /** Half-width of the error bar (e.g. std over seeds). */
  error?: number;
}

export interface RankedBarOptions extends FigureOptions {
  /** Largest first (default) or smallest first. */
  order?: "descending" | "ascending";
  /** Horizontal bars read better with long labels (parameter names). */
  horizontal?: boolean;
  color?: string;
  /** Log-scale value axis, ticks written 1e-4 (Plotly's default SI labels read "100μ"). */
  log?: boolean;
}

/** Bars sorted by value, with optional error bars. Ties keep their input order. */
export function rankedBar(items: readonly BarItem[], opts: RankedBarOptions = {}): Figure {
  checkFinite(items.map((i) => i.value), "rankedBar");
  const sign = opts.order === "ascending" ? 1 : -1;
  const sorted = items.map((item, i) => ({ item, i }))
    .sort((a, b) => sign * (a.item.value - b.item.value) || a.i - b.i)
    .map((s) => s.item);
  const labels = sorted.map((i) => i.label);
  const values = sorted.map((i) => i.value);
  const hasErrors = sorted.some((i) => i.error !== undefined);
  const errors = { type: "data", array: sorted.map((i) => i.error ?? 0), visible: true };
  const trace: Trace = opts.horizontal
    ? { type: "bar", orientation: "h", x: values, y: labels, ...(hasErrors ? { error_x: errors } : {}) }
    : { type: "bar", x: labels, y: values, ...(hasErrors ? { error_y: errors } : {}) };
  trace.marker = { color: opts.color ?? PALETTE[0] };
  const layout = baseLayout(opts);
  if (opts.horizontal) {
    // Plotly draws the first category at the bottom; reverse so rank 1 is on top.
    layout.yaxis = { ...(layout.yaxis as Layout), type: "category", autorange: "reversed" };
  } else {
    layout.xaxis = { ...(layout.xaxis as Layout), type: "category" };
  }
  if (opts.log) {
    if (values.some((v) => v <= 0)) throw new Error("rankedBar: log needs every value > 0");
    const axis = opts.horizontal ? "xaxis" : "yaxis";
    layout[axis] = { ...(layout[axis] as Layout), type: "log", exponentformat: "e" };
  }
  return { data: [trace], layout };
}

export interface LineSeries {
  name: string;
  x: readonly number[];
  y: readonly number[];
  /** Half-width of the band around `y` (e.g. std over seeds); no band when absent. */
  error?: readonly number[];
  dash?: "solid" | "dash" | "dot" | "dashdot";
  color?: string;
}

export interface LineBandsOptions extends FigureOptions {
  /** Band opacity (default 0.2). */
  bandAlpha?: number;
  /** Draw x as percentages (0.25 -> 25%). */
  xPercent?: boolean;
  /**
   * Log-scale x with a tick at each x value the series use: Plotly's own log ticks crowd near the low
   * end and, as rounded percentages, repeat labels ("1%1%1%").
   */
  xLog?: boolean;
}

/**
 * Several lines with markers, each with an optional shaded band `y +- error`. The band is one closed
 * polygon trace (upper edge left to right, lower edge back) drawn before its line, sharing its legend entry.
 */
export function lineBands(series: readonly LineSeries[], opts: LineBandsOptions = {}): Figure {
  const data: Trace[] = [];
  series.forEach((s, k) => {
    const what = `lineBands: series "${s.name}"`;
    checkLength(s.y, s.x.length, `${what} y`);
    checkLength(s.error, s.x.length, `${what} error`);
    checkFinite(s.x, `${what} x`);
    checkFinite(s.y, `${what} y`);
    const color = s.color ?? PALETTE[k % PALETTE.length];
    const group = `series-${k}`;
    if (s.error) {
      checkFinite(s.error, `${what} error`);
      const upper = s.y.map((y, i) => y + s.error![i]);
      const lower = s.y.map((y, i) => y - s.error![i]);
      data.push({
        type: "scatter",
        mode: "lines",
        x: [...s.x, ...[...s.x].reverse()],
        y: [...upper, ...lower.reverse()],
        fill: "toself",
        fillcolor: withAlpha(color, opts.bandAlpha ?? 0.2),
        line: { width: 0, color },
        hoverinfo: "skip",
        showlegend: false,
        legendgroup: group,
        name: `${s.name} band`,
      });
    }
    data.push({
      type: "scatter",
      mode: "lines+markers",
      name: s.name,
      x: [...s.x],
      y: [...s.y],
      line: { color, dash: s.dash ?? "solid" },
      legendgroup: group,
    });
  });
  const layout = baseLayout(opts);
  if (opts.xPercent) layout.xaxis = { ...(layout.xaxis as Layout), tickformat: ".0%" };
  if (opts.xLog) {
    const ticks = [...new Set(series.flatMap((s) => s.x))].sort((a, b) => a - b);
    if (ticks.some((x) => x <= 0)) throw new Error("lineBands: xLog needs every x > 0");
    const text = ticks.map((x) => opts.xPercent ? `${Number((x * 100).toPrecision(3))}%` : String(x));
    layout.xaxis = { ...(layout.xaxis as Layout), type: "log", tickvals: ticks, ticktext: text };
  }
  return { data, layout };
}

export interface BarSeries {
  name: string;
  /** One value per group, in the order of `groups`. */
  values: readonly number[];
  errors?: readonly number[];
  color?: string;
}

/** Bars grouped by category (e.g. tasks), one bar per series (e.g. tuning method) in each group. */
export function groupedBars(
  groups: readonly string[],
  series: readonly BarSeries[],
  opts: FigureOptions = {},
): Figure {
  const data: Trace[] = series.map((s, k) => {
    const what = `groupedBars: series "${s.name}"`;
    checkLength(s.values, groups.length, `${what} values`);
    checkLength(s.errors, groups.length, `${what} errors`);
    checkFinite(s.values, `${what} values`);
    const trace: Trace = {
      type: "bar",
      name: s.name,
      x: [...groups],
      y: [...s.values],
      marker: { color: s.color ?? PALETTE[k % PALETTE.length] },
    };
    if (s.errors) trace.error_y = { type: "data", array: [...s.errors], visible: true };
    return trace;
  });
  const layout = baseLayout(opts);
  layout.barmode = "group";
  layout.xaxis = { ...(layout.xaxis as Layout), type: "category" };
  return { data, layout };
}

/** The figure's title text, or "" (used for text fallbacks). */
export function figureTitle(fig: Figure): string {
  const t = fig.layout.title;
  if (typeof t === "string") return t;
  if (t && typeof t === "object" && typeof (t as { text?: unknown }).text === "string") {
    return (t as { text: string }).text;
  }
  return "";
}
