/**
 * Wall-clock timing for the benchmark: warm-up runs first (kernel setup, heap growth, JIT), then the
 * median of several runs, which a busy machine disturbs less than the mean.
 *
 * ```ts
 * const t = measure(() => tf.tidy(() => tf.matMul(a, b).dataSync()), { warmup: 1, repeats: 5 });
 * t.median; // seconds
 * ```
 */
import process from "node:process";

export interface Timing {
  /** Median of the timed runs, in seconds. */
  median: number;
  min: number;
  max: number;
  /** Every timed run, in seconds, in order. */
  runs: number[];
  /**
   * Median CPU seconds of this process per run (user + system, all threads). On a machine shared
   * with other work this moves much less than wall time; for one thread it is the time the work would
   * take alone.
   */
  cpu: number;
}

export interface MeasureOptions {
  warmup?: number;
  repeats?: number;
}

export function median(xs: number[]): number {
  if (xs.length === 0) return NaN;
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2;
}

export function summarize(runs: number[], cpuRuns: number[] = []): Timing {
  return { median: median(runs), min: Math.min(...runs), max: Math.max(...runs), runs, cpu: median(cpuRuns) };
}

/** CPU seconds used by this process so far. */
export function cpuSeconds(): number {
  const u = process.cpuUsage();
  return (u.user + u.system) / 1e6;
}

/** Times a synchronous function (it must finish its work, e.g. read its result, before returning). */
export function measure(fn: () => void, opts: MeasureOptions = {}): Timing {
  const warmup = opts.warmup ?? 1, repeats = Math.max(1, opts.repeats ?? 5);
  for (let i = 0; i < warmup; i++) fn();
  const runs: number[] = [], cpu: number[] = [];
  for (let i = 0; i < repeats; i++) {
    const c0 = cpuSeconds(), t0 = performance.now();
    fn();
    runs.push((performance.now() - t0) / 1000);
    cpu.push(cpuSeconds() - c0);
  }
  return summarize(runs, cpu);
}

/** The same for an asynchronous function (the data-parallel engine). */
export async function measureAsync(fn: () => Promise<void>, opts: MeasureOptions = {}): Promise<Timing> {
  const warmup = opts.warmup ?? 1, repeats = Math.max(1, opts.repeats ?? 5);
  for (let i = 0; i < warmup; i++) await fn();
  const runs: number[] = [], cpu: number[] = [];
  for (let i = 0; i < repeats; i++) {
    const c0 = cpuSeconds(), t0 = performance.now();
    await fn();
    runs.push((performance.now() - t0) / 1000);
    cpu.push(cpuSeconds() - c0);
  }
  return summarize(runs, cpu);
}
