/**
 * The GLUE metrics, computed in float64 on plain arrays: accuracy, F1 of class 1, Matthews correlation,
 * Pearson and Spearman correlation, and `computeMetrics`, which returns a task's official metrics plus
 * `main` (the score runs are ranked by; see `tasks.ts`).
 *
 * Degenerate inputs, chosen so that scores stay finite numbers (JSON has no NaN):
 * - Matthews correlation is 0 when undefined (constant predictions or one class only), as scikit-learn.
 * - F1 is 0 when there is no true positive (no predicted and no true positives included), as scikit-learn.
 * - Pearson and Spearman are 0 when either side is constant (scipy gives NaN): a constant predictor
 *   carries no correlation, and ranks below any model that has some.
 * - Empty inputs or inputs of different lengths are errors.
 *
 * ```ts
 * computeMetrics(getTask("MRPC"), [1, 0, 1], [1, 1, 1]); // { f1: 0.8, accuracy: 0.667, main: 0.8 }
 * ```
 */
import type { GlueTask } from "./tasks.ts";

function check(predictions: number[], labels: number[], what: string): void {
  if (predictions.length !== labels.length) {
    throw new Error(`${what}: ${predictions.length} predictions but ${labels.length} labels`);
  }
  if (predictions.length === 0) throw new Error(`${what}: no examples to score`);
  for (let i = 0; i < predictions.length; i++) {
    if (!Number.isFinite(predictions[i]) || !Number.isFinite(labels[i])) {
      throw new Error(
        `${what}: example ${i} is not a finite number (prediction ${predictions[i]}, label ${labels[i]})`,
      );
    }
  }
}

function checkClasses(predictions: number[], labels: number[], what: string): void {
  check(predictions, labels, what);
  for (let i = 0; i < predictions.length; i++) {
    if (!Number.isInteger(predictions[i]) || !Number.isInteger(labels[i])) {
      throw new Error(
        `${what}: example ${i} is not a class index (prediction ${predictions[i]}, label ${labels[i]}); ` +
          `take the argmax of the logits first`,
      );
    }
  }
}

/** The fraction of predictions equal to their label. */
export function accuracy(predictions: number[], labels: number[]): number {
  checkClasses(predictions, labels, "accuracy");
  let correct = 0;
  for (let i = 0; i < labels.length; i++) if (predictions[i] === labels[i]) correct++;
  return correct / labels.length;
}

/** F1 of the positive class 1: 2 tp / (2 tp + fp + fn); 0 when there is no true positive. */
export function f1(predictions: number[], labels: number[]): number {
  checkClasses(predictions, labels, "f1");
  let tp = 0, fp = 0, fn = 0;
  for (let i = 0; i < labels.length; i++) {
    const p = predictions[i] === 1, t = labels[i] === 1;
    if (p && t) tp++;
    else if (p) fp++;
    else if (t) fn++;
  }
  return tp === 0 ? 0 : (2 * tp) / (2 * tp + fp + fn);
}

/**
 * Matthews correlation for any number of classes (scikit-learn's formula, which is the usual
 * (tp tn - fp fn) / sqrt(...) for two classes); 0 when undefined.
 */
export function matthews(predictions: number[], labels: number[]): number {
  checkClasses(predictions, labels, "matthews");
  const n = labels.length;
  const trueCount = new Map<number, number>(), predCount = new Map<number, number>();
  let correct = 0;
  for (let i = 0; i < n; i++) {
    trueCount.set(labels[i], (trueCount.get(labels[i]) ?? 0) + 1);
    predCount.set(predictions[i], (predCount.get(predictions[i]) ?? 0) + 1);
    if (predictions[i] === labels[i]) correct++;
  }
  let tp = 0, tt = 0, pp = 0; // sum over classes of t_k p_k, t_k^2, p_k^2
  for (const [k, t] of trueCount) {
    tp += t * (predCount.get(k) ?? 0);
    tt += t * t;
  }
  for (const p of predCount.values()) pp += p * p;
  const cov = correct * n - tp;
  const denom = Math.sqrt((n * n - tt) * (n * n - pp));
  return denom === 0 ? 0 : cov / denom;
}

/** Pearson correlation; 0 when either side is constant. */
export function pearson(x: number[], y: number[]): number {
  check(x, y, "pearson");
  const n = x.length;
  let mx = 0, my = 0;
  for (let i = 0; i < n; i++) {
    mx += x[i];
    my += y[i];
  }
  mx /= n;
  my /= n;
  let sxy = 0, sxx = 0, syy = 0;
  for (let i = 0; i < n; i++) {
    const dx = x[i] - mx, dy = y[i] - my;
    sxy += dx * dy;
    sxx += dx * dx;
    syy += dy * dy;
  }
  if (sxx === 0 || syy === 0) return 0;
  // Clamp: rounding can push |r| a hair above 1.
  return Math.max(-1, Math.min(1, sxy / Math.sqrt(sxx * syy)));
}

/** 1-based ranks, ties given the average of the ranks they span. */
export function averageRanks(values: number[]): number[] {
  const order = Array.from(values.keys()).sort((a, b) => values[a] - values[b]);
  const ranks = new Array<number>(values.length);
  for (let start = 0; start < order.length;) {
    let end = start + 1;
    while (end < order.length && values[order[end]] === values[order[start]]) end++;
    const rank = (start + 1 + end) / 2; // mean of ranks start+1 .. end
    for (let i = start; i < end; i++) ranks[order[i]] = rank;
    start = end;
  }
  return ranks;
}

/** Spearman correlation: Pearson of the average ranks; 0 when either side is constant. */
export function spearman(x: number[], y: number[]): number {
  check(x, y, "spearman");
  return pearson(averageRanks(x), averageRanks(y));
}

const METRICS: Record<string, (p: number[], l: number[]) => number> = {
  accuracy,
  f1,
  mcc: matthews,
  pearson,
  spearman,
};

/**
 * The task's official metrics on one split plus `main` (its `mainMetric`). Predictions are class indices,
 * or scores for STS-B; labels are what `loadSplit` gives.
 */
export function computeMetrics(
  task: GlueTask,
  predictions: number[],
  labels: number[],
): Record<string, number> {
  if (task.labels !== null) {
    const bad = [...predictions, ...labels].find((v) =>
      !(Number.isInteger(v) && v >= 0 && v < task.numLabels)
    );
    if (bad !== undefined) {
      throw new Error(`${task.name}: ${bad} is not a class index in 0..${task.numLabels - 1}`);
    }
  }
  const out: Record<string, number> = {};
  for (const name of task.metrics) {
    const fn = METRICS[name];
    if (!fn) throw new Error(`${task.name}: unknown metric "${name}"`);
    try {
      out[name] = fn(predictions, labels);
    } catch (err) {
      throw new Error(`${task.name} ${(err as Error).message}`);
    }
  }
  out.main = out[task.mainMetric];
  return out;
}
