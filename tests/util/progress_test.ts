import assert from "node:assert/strict";
import {
  bar,
  formatAmount,
  formatDuration,
  formatNumber,
  formatRate,
  progress,
  renderLine,
} from "../../lib/util/progress.ts";

/** A fake clock (ms) and a sink that records what was written. */
function harness() {
  let t = 1000;
  const written: string[] = [];
  return {
    now: () => t,
    advance: (ms: number) => (t += ms),
    write: (s: string) => void written.push(s),
    written,
  };
}

Deno.test("formatting of durations, amounts, rates and numbers", () => {
  assert.equal(formatDuration(0), "0:00");
  assert.equal(formatDuration(65.4), "1:05");
  assert.equal(formatDuration(3723), "1:02:03");
  assert.equal(formatDuration(NaN), "?");
  assert.equal(formatDuration(Infinity), "?");
  assert.equal(formatAmount(512, "B"), "512 B");
  assert.equal(formatAmount(1536, "B"), "1.5 KiB");
  assert.equal(formatAmount(3 * 1024 ** 3, "B"), "3.0 GiB");
  assert.equal(formatAmount(450, "steps"), "450");
  assert.equal(formatRate(12.345, "it"), "12.3 it/s");
  assert.equal(formatRate(250.4, "ex"), "250 ex/s");
  assert.equal(formatRate(0.25, "step"), "4.0 s/step");
  assert.equal(formatRate(0, "it"), "? it/s");
  assert.equal(formatRate(2 * 1024 ** 2, "B"), "2.0 MiB/s");
  assert.equal(formatNumber(0.123456), "0.1235");
  assert.equal(formatNumber(3), "3");
  assert.equal(formatNumber(1.5e-5), "1.50e-5");
  assert.equal(bar(0.5, 10), "[#####-----]");
  assert.equal(bar(2, 4), "[####]");
});

Deno.test("renderLine shows percent, bar, counts, rate, ETA and info", () => {
  const line = renderLine(
    { label: "train", done: 250, total: 1000, unit: "steps", elapsed: 50, rate: 5, info: { loss: 0.693147 } },
    true,
  );
  assert.equal(
    line,
    "train   25% [#####---------------]  250/1000 steps  5.0 steps/s  ETA 2:30  loss=0.6931",
  );
  const log = renderLine({ label: "dl", done: 1024, total: 4096, unit: "B", elapsed: 1, rate: 1024 }, false);
  assert.equal(log, "dl   25%  1.0 KiB/4.0 KiB  1.0 KiB/s  ETA 0:03");
  const unknown = renderLine({ label: "dl", done: 2048, total: 0, unit: "B", elapsed: 1, rate: 2048 }, true);
  assert.equal(unknown, "dl  2.0 KiB  2.0 KiB/s");
});

Deno.test("log output: one line per 10% or per 10 s, plus the final line", () => {
  const h = harness();
  const p = progress("job", 100, { out: "log", unit: "it", now: h.now, write: h.write });
  for (let i = 1; i <= 100; i++) {
    h.advance(10); // 100 it/s
    p.update(i, { loss: 1 / i });
  }
  p.done("ok");
  assert.equal(h.written.length, 11, h.written.join(""));
  assert.ok(h.written.every((l) => l.endsWith("\n") && !l.includes("\r")));
  assert.equal(h.written[0], "job   10%  10/100 it  100 it/s  ETA 0:01  loss=0.1\n");
  assert.equal(h.written.at(-1), "job: 100 it in 0:01 (100 it/s)  loss=0.01  ok\n");

  // Slow work: a line every 10 s even without a new decile.
  const s = harness();
  const q = progress("slow", 1000, { out: "log", now: s.now, write: s.write });
  for (let i = 1; i <= 30; i++) {
    s.advance(1000);
    q.update(i);
  }
  assert.equal(s.written.length, 3);
  assert.match(s.written[0], /^slow {4}1% {2}10\/1000 it {2}1\.0 it\/s {2}ETA 16:30\n$/);
});

Deno.test("tty output: redrawn with \\r, throttled, ends with a newline", () => {
  const h = harness();
  const p = progress("dl", 4096, { out: "tty", unit: "B", now: h.now, write: h.write, initial: 1024 });
  h.advance(1000);
  p.update(2048);
  h.advance(10);
  p.update(2100); // within 100 ms: not drawn
  h.advance(990);
  p.update(3072);
  p.done();
  assert.equal(h.written.length, 4);
  // The resumed 1 KiB does not count in the rate: 1 KiB in 1 s.
  assert.equal(h.written[0], "\rdl   50% [##########----------]  2.0 KiB/4.0 KiB  1.0 KiB/s  ETA 0:02\x1b[K");
  assert.ok(h.written[1].startsWith("\rdl   75% "));
  assert.equal(h.written[2], "\rdl: 3.0 KiB/4.0 KiB in 0:02 (1.0 KiB/s)\x1b[K");
  assert.equal(h.written[3], "\n");
  p.update(4096);
  p.done();
  assert.equal(h.written.length, 4, "nothing after done");
});

Deno.test("jupyter output: one display, then updates of the same display_id", async () => {
  const h = harness();
  const sent: [string, Record<string, unknown>][] = [];
  const p = progress("grid", 3, {
    out: "jupyter",
    now: h.now,
    write: h.write,
    broadcast: (type, content) => Promise.resolve(void sent.push([type, content])),
  });
  for (let i = 1; i <= 3; i++) {
    h.advance(600);
    p.update(i);
  }
  p.done("finished");
  await new Promise((r) => setTimeout(r, 10));
  assert.equal(h.written.length, 0, "nothing on stderr");
  assert.deepEqual(sent.map(([t]) => t), [
    "display_data",
    "update_display_data",
    "update_display_data",
    "update_display_data",
  ]);
  const ids = new Set(sent.map(([, c]) => (c.transient as { display_id: string }).display_id));
  assert.equal(ids.size, 1);
  const lastText = (sent.at(-1)![1].data as Record<string, string>)["text/plain"];
  assert.equal(lastText, "grid: 3 it in 0:02 (1.7 it/s)  finished");
});
