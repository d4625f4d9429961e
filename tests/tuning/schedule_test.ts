import assert from "node:assert/strict";
import { linearFactor, linearSchedule, warmupSteps } from "../../lib/tuning/schedule.ts";

Deno.test("warm-up steps round up as Hugging Face does", () => {
  assert.equal(warmupSteps(100, 0.06), 6);
  assert.equal(warmupSteps(10, 0.06), 1);
  assert.equal(warmupSteps(10, 0), 0);
  assert.throws(() => warmupSteps(10, 1.5), /warm-up ratio/);
});

Deno.test("linear warm-up then linear decay to 0", () => {
  const s = linearSchedule({ lr: 1e-3, totalSteps: 100, warmupRatio: 0.1 });
  assert.equal(s(0), 0);
  assert.equal(s(5), 1e-3 * 0.5);
  assert.equal(s(10), 1e-3);
  assert.equal(s(55), 1e-3 * 0.5);
  assert.equal(s(100), 0);
  assert.equal(s(120), 0);
});

Deno.test("no warm-up starts at the full rate", () => {
  const s = linearSchedule({ lr: 2, totalSteps: 4, warmupRatio: 0 });
  assert.deepEqual([0, 1, 2, 3].map(s), [2, 1.5, 1, 0.5]);
  assert.equal(linearFactor(0, 0, 0), 0);
});
