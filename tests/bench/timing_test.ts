import assert from "node:assert/strict";
import { measure, measureAsync, median, summarize } from "../../lib/bench/timing.ts";

Deno.test("median and summary of runs", () => {
  assert.equal(median([3, 1, 2]), 2);
  assert.equal(median([4, 1, 3, 2]), 2.5);
  assert.ok(Number.isNaN(median([])));
  const t = summarize([0.3, 0.1, 0.2], [0.1, 0.1, 0.1]);
  assert.deepEqual([t.median, t.min, t.max, t.cpu], [0.2, 0.1, 0.3, 0.1]);
});

Deno.test("measure runs warm-up then timed repeats, and counts CPU time", async () => {
  let calls = 0;
  const busy = () => {
    calls++;
    const end = performance.now() + 5;
    while (performance.now() < end) { /* spin: CPU time */ }
  };
  const t = measure(busy, { warmup: 2, repeats: 3 });
  assert.equal(calls, 5);
  assert.equal(t.runs.length, 3);
  assert.ok(t.median >= 0.004 && t.cpu > 0.002, `median ${t.median}, cpu ${t.cpu}`);
  let n = 0;
  const ta = await measureAsync(async () => {
    n++;
    await new Promise((r) => setTimeout(r, 2));
  }, { warmup: 1, repeats: 2 });
  assert.equal(n, 3);
  assert.ok(ta.min >= 0.001);
});
