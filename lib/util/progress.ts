/**
 * Progress reporting for downloads, training and the experiment grid, in the form that suits where the
 * output goes:
 *
 * - a terminal: one line redrawn with `\r` (bar, done/total, rate, ETA, info fields such as loss);
 * - a log (stderr redirected, CI): plain lines, at most one per 10 % or per 10 s, plus the final one;
 * - a Jupyter kernel (`deno jupyter`): one display updated in place via `update_display_data`.
 *
 * ```ts
 * const p = progress("train SST-2", steps, { unit: "steps" });
 * p.update(step, { loss: 0.42 });
 * p.done("best acc 0.91");
 * ```
 *
 * The clock and the sink can be injected, so the formatting is tested deterministically.
 */

export interface Progress {
  update(done: number, info?: Record<string, string | number>): void;
  done(message?: string): void;
}

export type ProgressOut = "auto" | "tty" | "log" | "jupyter";

export interface ProgressOptions {
  /** Unit of `done`/`total`; "B" formats as bytes (KiB, MiB, ...). Default "it". */
  unit?: string;
  out?: ProgressOut;
  /** Amount already done before this run (a resumed download): shown, but not counted in the rate. */
  initial?: number;
  /** Clock in milliseconds (default performance.now). */
  now?: () => number;
  /** Where tty/log text goes (default stderr). */
  write?: (text: string) => void;
  /** Where Jupyter displays go (default Deno.jupyter.broadcast). */
  broadcast?: (type: string, content: Record<string, unknown>) => Promise<void>;
}

/** `m:ss`, `h:mm:ss`, or `?` when unknown. */
export function formatDuration(seconds: number): string {
  if (!Number.isFinite(seconds) || seconds < 0) return "?";
  const s = Math.round(seconds);
  const h = Math.floor(s / 3600), m = Math.floor((s % 3600) / 60), sec = s % 60;
  const mm = h > 0 ? String(m).padStart(2, "0") : String(m);
  return `${h > 0 ? `${h}:` : ""}${mm}:${String(sec).padStart(2, "0")}`;
}

const BYTE_UNITS = ["B", "KiB", "MiB", "GiB", "TiB"];

/** An amount in its unit: bytes scaled (`1.5 MiB`), anything else as a plain number. */
export function formatAmount(n: number, unit: string): string {
  if (unit === "B") {
    let i = 0;
    while (Math.abs(n) >= 1024 && i < BYTE_UNITS.length - 1) {
      n /= 1024;
      i++;
    }
    return i === 0 ? `${Math.round(n)} B` : `${n.toFixed(1)} ${BYTE_UNITS[i]}`;
  }
  return formatNumber(n);
}

/** A rate: `12.3 it/s`, or for slow work `4.2 s/it`, or `?` before anything was measured. */
export function formatRate(perSecond: number, unit: string): string {
  if (!Number.isFinite(perSecond) || perSecond <= 0) return `? ${unit}/s`;
  if (unit === "B") return `${formatAmount(perSecond, "B")}/s`;
  if (perSecond < 1) return `${(1 / perSecond).toFixed(1)} s/${unit}`;
  return `${perSecond >= 100 ? Math.round(perSecond) : perSecond.toFixed(1)} ${unit}/s`;
}

/** Integers as they are, other numbers to 4 significant digits. */
export function formatNumber(x: number): string {
  if (Number.isInteger(x)) return String(x);
  if (!Number.isFinite(x)) return String(x);
  const a = Math.abs(x);
  if (a !== 0 && (a < 1e-3 || a >= 1e6)) return x.toExponential(2);
  return String(Number(x.toPrecision(4)));
}

/** A text bar of `width` cells. */
export function bar(fraction: number, width = 20): string {
  const f = Math.min(1, Math.max(0, fraction));
  const full = Math.round(f * width);
  return `[${"#".repeat(full)}${"-".repeat(width - full)}]`;
}

export interface ProgressState {
  label: string;
  done: number;
  total: number;
  unit: string;
  /** Seconds since the start. */
  elapsed: number;
  /** Units per second, over this run. */
  rate: number;
  info?: Record<string, string | number>;
}

/** One progress line. `withBar` for terminals; logs leave it out. */
export function renderLine(s: ProgressState, withBar: boolean): string {
  const parts = [s.label];
  const known = s.total > 0;
  if (known) {
    const pct = `${Math.floor((100 * Math.min(s.done, s.total)) / s.total)}%`.padStart(4);
    parts.push(withBar ? `${pct} ${bar(s.done / s.total)}` : pct);
    parts.push(
      `${formatAmount(s.done, s.unit)}/${formatAmount(s.total, s.unit)}${s.unit === "B" ? "" : ` ${s.unit}`}`,
    );
  } else {
    parts.push(`${formatAmount(s.done, s.unit)}${s.unit === "B" ? "" : ` ${s.unit}`}`);
  }
  parts.push(formatRate(s.rate, s.unit));
  if (known) {
    const eta = s.rate > 0 ? Math.max(0, s.total - s.done) / s.rate : NaN;
    parts.push(`ETA ${formatDuration(eta)}`);
  }
  for (const [k, v] of Object.entries(s.info ?? {})) {
    parts.push(`${k}=${typeof v === "number" ? formatNumber(v) : v}`);
  }
  return parts.join("  ");
}

/** The final line: what was done, in how long, at what rate. */
export function renderDone(s: ProgressState, message?: string): string {
  const amount = s.total > 0 && s.done === s.total
    ? `${formatAmount(s.done, s.unit)}${s.unit === "B" ? "" : ` ${s.unit}`}`
    : `${formatAmount(s.done, s.unit)}/${formatAmount(s.total, s.unit)}${s.unit === "B" ? "" : ` ${s.unit}`}`;
  const info = Object.entries(s.info ?? {}).map(([k, v]) =>
    `${k}=${typeof v === "number" ? formatNumber(v) : v}`
  );
  return [
    `${s.label}: ${amount} in ${formatDuration(s.elapsed)} (${formatRate(s.rate, s.unit)})`,
    ...info,
    ...(message ? [message] : []),
  ].join("  ");
}

type Broadcast = (type: string, content: Record<string, unknown>) => Promise<void>;

/** Deno.jupyter's broadcast when running under `deno jupyter`; accessing Deno.jupyter elsewhere throws. */
export function jupyterBroadcast(): Broadcast | undefined {
  try {
    const j = (Deno as unknown as { jupyter?: { broadcast?: Broadcast } }).jupyter;
    return typeof j?.broadcast === "function" ? j.broadcast.bind(j) : undefined;
  } catch {
    return undefined;
  }
}

function stderrWrite(text: string): void {
  const bytes = new TextEncoder().encode(text);
  let off = 0;
  while (off < bytes.length) off += Deno.stderr.writeSync(bytes.subarray(off));
}

function resolveOut(out: ProgressOut): Exclude<ProgressOut, "auto"> {
  if (out !== "auto") return out;
  if (jupyterBroadcast()) return "jupyter";
  try {
    return Deno.stderr.isTerminal() ? "tty" : "log";
  } catch {
    return "log";
  }
}

const TTY_EVERY_MS = 100;
const JUPYTER_EVERY_MS = 500;
const LOG_EVERY_MS = 10_000;

let displayCounter = 0;

export function progress(label: string, total: number, opts: ProgressOptions = {}): Progress {
  const unit = opts.unit ?? "it";
  const out = resolveOut(opts.out ?? "auto");
  const now = opts.now ?? (() => performance.now());
  const write = opts.write ?? stderrWrite;
  const initial = opts.initial ?? 0;
  const start = now();
  let last: ProgressState = { label, done: initial, total, unit, elapsed: 0, rate: 0 };
  let lastDraw = -Infinity;
  let lastDecile = total > 0 ? Math.floor((10 * initial) / total) : 0;
  let finished = false;
  let ttyWidth = 0;

  // Jupyter: one display, created on the first draw and updated in place. Broadcasts are async;
  // chaining them keeps their order.
  const broadcast = out === "jupyter" ? opts.broadcast ?? jupyterBroadcast() : undefined;
  const displayId = `normtune-progress-${Deno.pid}-${++displayCounter}`;
  let shown = false;
  let chain: Promise<void> = Promise.resolve();
  const show = (text: string) => {
    if (!broadcast) return write(text + "\n");
    const type = shown ? "update_display_data" : "display_data";
    shown = true;
    chain = chain.then(() =>
      broadcast(type, { data: { "text/plain": text }, metadata: {}, transient: { display_id: displayId } })
    ).catch(() => {});
  };

  const state = (done: number, info?: Record<string, string | number>): ProgressState => {
    const elapsed = (now() - start) / 1000;
    const rate = elapsed > 0 ? (done - initial) / elapsed : 0;
    return { label, done, total, unit, elapsed, rate, info: info ?? last.info };
  };

  const drawTty = (line: string) => {
    if (ttyWidth === 0) {
      try {
        ttyWidth = opts.write ? 200 : Deno.consoleSize().columns;
        if (ttyWidth < 40) ttyWidth = 120; // a pty without a size reports 0 columns
      } catch {
        ttyWidth = 120;
      }
    }
    // \x1b[K clears what a longer previous line left behind.
    write(`\r${line.slice(0, Math.max(20, ttyWidth - 1))}\x1b[K`);
  };

  return {
    update(done, info) {
      if (finished) return;
      last = state(done, info);
      const t = now();
      if (out === "tty") {
        if (t - lastDraw < TTY_EVERY_MS) return;
        lastDraw = t;
        drawTty(renderLine(last, true));
      } else if (out === "jupyter") {
        if (t - lastDraw < JUPYTER_EVERY_MS) return;
        lastDraw = t;
        show(renderLine(last, true));
      } else {
        const decile = total > 0 ? Math.floor((10 * done) / total) : 0;
        const due = decile > lastDecile || t - Math.max(lastDraw, start) >= LOG_EVERY_MS;
        if (!due) return;
        lastDecile = Math.max(lastDecile, decile);
        lastDraw = t;
        write(renderLine(last, false) + "\n");
      }
    },
    done(message) {
      if (finished) return;
      finished = true;
      last = state(last.done, last.info);
      const text = renderDone(last, message);
      if (out === "tty") {
        drawTty(text);
        write("\n");
      } else if (out === "jupyter") show(text);
      else write(text + "\n");
    },
  };
}
