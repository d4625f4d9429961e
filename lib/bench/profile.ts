/**
 * Where a step's time goes, per TensorFlow.js kernel: `tf.profile` times every kernel the step runs
 * (its gradient kernels included); this sums them by kernel name and adds a line for the time spent
 * outside kernels (JavaScript: the tape, gradient bookkeeping, work done in plain arrays).
 *
 * ```ts
 * const p = await profileKernels(() => step());
 * console.log(formatProfile(p));
 * ```
 */
import { tf } from "../tf.ts";
import { cpuSeconds } from "./timing.ts";

export interface KernelRow {
  kernel: string;
  calls: number;
  ms: number;
  /** Share of the wall time, in percent. */
  percent: number;
}

export interface KernelProfile {
  /** What the kernel times measure: "cpu" (this process's CPU time) or "wall". */
  clock: Clock;
  /** The whole step, on the same clock. */
  wallMs: number;
  kernelMs: number;
  /** Sorted by time, largest first; the last row is `(outside kernels)`. */
  rows: KernelRow[];
  /** Most bytes allocated at once during the step. */
  peakBytes: number;
}

export const OUTSIDE = "(outside kernels)";

/**
 * Kernels that run other kernels inside them (tf.customGrad's "unnamed scope"): their time is already
 * counted in the kernels they ran, so they are left out of the sums.
 */
const CONTAINERS = new Set(["unnamed scope"]);

export type Clock = "cpu" | "wall";

/**
 * Profiles one call of `fn` (awaited when it is asynchronous), after `warmup` untimed calls under the same
 * profiler. With `clock` "cpu" (default) every kernel is timed in CPU seconds of this process, which other
 * work on a shared machine disturbs far less than wall time.
 */
export async function profileKernels(
  fn: () => void | Promise<void>,
  clock: Clock = "cpu",
  warmup = 1,
): Promise<KernelProfile> {
  // deno-lint-ignore no-explicit-any
  const backend = tf.backend() as any;
  const ownTime = backend.time;
  const now = clock === "cpu" ? () => cpuSeconds() * 1e3 : () => performance.now();
  if (clock === "cpu") {
    backend.time = (f: () => void) => {
      const c0 = now();
      f();
      return Promise.resolve({ kernelMs: now() - c0 });
    };
  }
  const profiled = () =>
    tf.profile(async () => {
      await fn();
    });
  let t0 = 0;
  let info: Awaited<ReturnType<typeof tf.profile>>;
  try {
    // Untimed calls first: replacing `backend.time` changes the backend object's shape, which deoptimizes
    // the JavaScript kernels and tfjs code that touch it, so the first profiled call measures recompilation
    // (bert-tiny shape, under load: LayerNormGradX 34 ms in that step, 10-15 ms in the steps around it).
    for (let i = 0; i < warmup; i++) await profiled();
    t0 = now();
    info = await profiled();
  } finally {
    backend.time = ownTime;
  }
  const wallMs = now() - t0;
  const by = new Map<string, { calls: number; ms: number }>();
  for (const k of info.kernels) {
    if (CONTAINERS.has(k.name)) continue;
    const e = by.get(k.name) ?? { calls: 0, ms: 0 };
    e.calls++;
    e.ms += typeof k.kernelTimeMs === "number" ? k.kernelTimeMs : 0;
    by.set(k.name, e);
  }
  const kernelMs = [...by.values()].reduce((s, e) => s + e.ms, 0);
  const rows: KernelRow[] = [...by].map(([kernel, e]) => ({
    kernel,
    calls: e.calls,
    ms: e.ms,
    percent: (100 * e.ms) / wallMs,
  }));
  rows.sort((a, b) => b.ms - a.ms);
  const outside = Math.max(0, wallMs - kernelMs);
  rows.push({ kernel: OUTSIDE, calls: 0, ms: outside, percent: (100 * outside) / wallMs });
  return { clock, wallMs, kernelMs, rows, peakBytes: info.peakBytes };
}

/** A text table of the `top` largest rows (the rest summed), plus the outside-kernels row. */
export function formatProfile(p: KernelProfile, top = 12): string {
  return `${formatKernelTable(p.rows, top)}\nstep ${p.wallMs.toFixed(1)} ms (${p.clock} time), in kernels ${
    p.kernelMs.toFixed(1)
  } ms`;
}

/** The rows of a profile as a table (the `top` largest, the rest summed, then the outside-kernels row). */
export function formatKernelTable(rows: KernelRow[], top = 12): string {
  const kernels = rows.filter((r) => r.kernel !== OUTSIDE);
  const outside = rows.find((r) => r.kernel === OUTSIDE);
  const total = rows.reduce((s, r) => s + r.ms, 0);
  const shown = kernels.slice(0, top);
  const rest = kernels.slice(top);
  const lines = ["kernel                     calls        ms      %"];
  const line = (r: KernelRow) =>
    `${r.kernel.padEnd(24)} ${String(r.calls).padStart(7)} ${r.ms.toFixed(1).padStart(9)} ${
      r.percent.toFixed(1).padStart(6)
    }`;
  for (const r of shown) lines.push(line(r));
  if (rest.length > 0) {
    const ms = rest.reduce((s, r) => s + r.ms, 0);
    const calls = rest.reduce((s, r) => s + r.calls, 0);
    lines.push(line({ kernel: `(${rest.length} others)`, calls, ms, percent: (100 * ms) / total }));
  }
  if (outside) lines.push(line(outside));
  return lines.join("\n");
}
