import assert from "node:assert/strict";
import {
  accuracy,
  averageRanks,
  computeMetrics,
  f1,
  matthews,
  pearson,
  spearman,
} from "../../lib/glue/metrics.ts";
import { TASKS } from "../../lib/glue/tasks.ts";

const close = (a: number, b: number, tol = 1e-12) => assert.ok(Math.abs(a - b) <= tol, `${a} vs ${b}`);

Deno.test("accuracy and F1 of class 1 by hand", () => {
  assert.equal(accuracy([0, 1, 1, 0], [0, 1, 0, 0]), 0.75);
  // tp 2, fp 1, fn 1 -> 2*2 / (2*2 + 1 + 1)
  close(f1([1, 1, 0, 1, 0], [1, 0, 1, 1, 0]), 4 / 6);
  assert.equal(f1([1, 1], [1, 1]), 1);
  // No positives predicted or present: no true positive -> 0.
  assert.equal(f1([0, 0, 0], [0, 0, 0]), 0);
  assert.equal(f1([0, 0], [1, 1]), 0);
});

Deno.test("Matthews correlation: binary, multiclass and the undefined cases", () => {
  // tp 2, tn 1, fp 1, fn 1: (2*1 - 1*1) / sqrt(3*3*2*2) = 1/6
  close(matthews([1, 1, 0, 1, 0], [1, 0, 1, 1, 0]), 1 / 6);
  assert.equal(matthews([0, 1, 0, 1], [0, 1, 0, 1]), 1);
  assert.equal(matthews([1, 0, 1, 0], [0, 1, 0, 1]), -1);
  // Constant predictions, and a single class everywhere: undefined -> 0.
  assert.equal(matthews([1, 1, 1, 1], [0, 1, 0, 1]), 0);
  assert.equal(matthews([1, 1, 1], [1, 1, 1]), 0);
  // 3 classes: correct 3 of 6, true counts 2/2/2, predicted 3/1/2:
  // (3*6 - 12) / sqrt((36 - 12) * (36 - 14)) = 6 / sqrt(528)
  close(matthews([0, 2, 1, 0, 0, 2], [0, 1, 2, 0, 1, 2]), 6 / Math.sqrt(528));
});

Deno.test("Pearson by hand; constant input gives 0", () => {
  // dx = [-2,-1,0,1,2], dy = [-2,0,1,0,1]: 6 / sqrt(10 * 6)
  close(pearson([1, 2, 3, 4, 5], [2, 4, 5, 4, 5]), 6 / Math.sqrt(60));
  close(pearson([1, 2, 3], [6, 4, 2]), -1);
  assert.equal(pearson([3, 3, 3], [1, 2, 3]), 0);
  assert.equal(pearson([1, 2, 3], [0.5, 0.5, 0.5]), 0);
});

Deno.test("Spearman ranks ties by their average rank", () => {
  assert.deepEqual(averageRanks([10, 20, 20, 20, 5]), [2, 4, 4, 4, 1]);
  // ranks x = [1, 2.5, 2.5, 4], y = [1, 3, 2, 4]: 4.5 / sqrt(4.5 * 5)
  close(spearman([1, 2, 2, 3], [1, 3, 2, 4]), 4.5 / Math.sqrt(22.5));
  // Monotone but not linear: Spearman 1, Pearson below 1.
  assert.equal(spearman([1, 2, 3, 4], [1, 10, 100, 1000]), 1);
  assert.ok(pearson([1, 2, 3, 4], [1, 10, 100, 1000]) < 0.9);
  assert.equal(spearman([2, 2, 2], [1, 2, 3]), 0);
});

Deno.test("empty, mismatched and non-class inputs are errors", () => {
  assert.throws(() => accuracy([], []), /no examples/);
  assert.throws(() => pearson([], []), /no examples/);
  assert.throws(() => f1([1], [1, 0]), /1 predictions but 2 labels/);
  assert.throws(() => accuracy([0.7], [1]), /not a class index/);
  assert.throws(() => spearman([NaN, 1], [1, 2]), /not a finite number/);
});

Deno.test("computeMetrics returns the task's metrics plus main", () => {
  // tp 2, fn 1 -> f1 0.8; 2 of 3 right.
  const mrpc = computeMetrics(TASKS.MRPC, [1, 0, 1], [1, 1, 1]);
  close(mrpc.f1, 0.8);
  close(mrpc.accuracy, 2 / 3);
  assert.equal(mrpc.main, mrpc.f1);
  assert.deepEqual(Object.keys(mrpc).sort(), ["accuracy", "f1", "main"]);
  assert.deepEqual(computeMetrics(TASKS.CoLA, [1, 1, 1], [0, 1, 1]), { mcc: 0, main: 0 });
  const sts = computeMetrics(TASKS["STS-B"], [1, 2, 3, 4, 5], [2, 4, 5, 4, 5]);
  close(sts.pearson, 6 / Math.sqrt(60));
  assert.equal(sts.main, sts.pearson);
  assert.ok("spearman" in sts);
  assert.deepEqual(computeMetrics(TASKS.MNLI, [0, 1, 2, 2], [0, 1, 2, 1]), { accuracy: 0.75, main: 0.75 });
  assert.throws(() => computeMetrics(TASKS.RTE, [2], [1]), /RTE: 2 is not a class index in 0\.\.1/);
  assert.throws(() => computeMetrics(TASKS.RTE, [], []), /RTE accuracy: no examples/);
});
