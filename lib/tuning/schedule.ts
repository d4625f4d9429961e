/**
 * The learning-rate schedule: linear warm-up from 0, then linear decay to 0 at the last step, exactly as
 * Hugging Face's `get_linear_schedule_with_warmup` with `warmup_steps = ceil(ratio * total)` (the
 * Trainer's `warmup_ratio`). Update `t` (0-based) uses `lr * factor(t)`; as in Hugging Face, where the
 * scheduler steps after the optimizer, the first update of a warm-up has rate 0.
 *
 * Default warm-up ratio 0.06, the RoBERTa/BitFit GLUE recipe; 0 gives a plain linear decay.
 *
 * ```ts
 * const s = linearSchedule({ lr: 1e-3, totalSteps: 100, warmupRatio: 0.1 });
 * s(0); // 0
 * s(10); // 1e-3
 * s(55); // 5e-4
 * ```
 */

export const DEFAULT_WARMUP_RATIO = 0.06;

export interface ScheduleOptions {
  lr: number;
  totalSteps: number;
  warmupRatio?: number;
}

/** Warm-up steps for a ratio, as Hugging Face computes them. */
export function warmupSteps(totalSteps: number, warmupRatio = DEFAULT_WARMUP_RATIO): number {
  if (!(warmupRatio >= 0 && warmupRatio <= 1)) {
    throw new Error(`warm-up ratio must be in [0, 1], got ${warmupRatio}`);
  }
  return Math.ceil(totalSteps * warmupRatio);
}

/** The multiplier of the base rate at update `step` (0-based). */
export function linearFactor(step: number, totalSteps: number, warmup: number): number {
  if (step < warmup) return step / Math.max(1, warmup);
  return Math.max(0, (totalSteps - step) / Math.max(1, totalSteps - warmup));
}

/** A function from update index (0-based) to learning rate. */
export function linearSchedule(opts: ScheduleOptions): (step: number) => number {
  if (!(opts.lr >= 0) || !Number.isFinite(opts.lr)) {
    throw new Error(`learning rate must be >= 0, got ${opts.lr}`);
  }
  const warmup = warmupSteps(opts.totalSteps, opts.warmupRatio);
  return (step) => opts.lr * linearFactor(step, opts.totalSteps, warmup);
}
