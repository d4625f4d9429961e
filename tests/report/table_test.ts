import assert from "node:assert/strict";
import { formatCell, formatMeanStd, meanStd, meanStdBy, renderTable } from "../../lib/report/table.ts";

Deno.test("formatCell: integers as is, decimals fixed, tiny numbers in exponent form", () => {
  assert.equal(formatCell(3), "3");
  assert.equal(formatCell(0.81234), "0.812");
  assert.equal(formatCell(0.81234, 1), "0.8");
  assert.equal(formatCell(2.5e-7), "2.50e-7");
  assert.equal(formatCell(0.0), "0");
  assert.equal(formatCell(null), "");
  assert.equal(formatCell(true), "true");
  assert.equal(formatCell({ a: 1 }), '{"a":1}');
  assert.equal(formatMeanStd(81.234, 0.456), "81.23 ± 0.46");
});

Deno.test("renderTable writes escaped HTML and an aligned pipe table", () => {
  const rows = [{ method: "<LN>", score: 0.5 }, { method: "BitFit", score: 12.25, extra: "x" }];
  const { html, text } = renderTable(rows, { caption: "Dev & test", digits: 2 });
  assert.match(html, /<caption>Dev &amp; test<\/caption>/);
  assert.match(html, /<th style="text-align:left">method<\/th><th style="text-align:right">score<\/th>/);
  assert.match(html, /<td style="text-align:left">&lt;LN&gt;<\/td><td style="text-align:right">0.50<\/td>/);
  assert.ok(!html.includes("<LN>"));
  assert.equal(
    text,
    [
      "Dev & test",
      "",
      "| method | score | extra |",
      "| ------ | ----: | ----- |",
      "| <LN>   |  0.50 |       |",
      "| BitFit | 12.25 | x     |",
    ].join("\n"),
  );
  const picked = renderTable(rows, { columns: ["score"], format: { score: (v) => `${v}!` } });
  assert.equal(picked.text.split("\n")[2], "|   0.5! |"); // numeric: right-aligned
});

Deno.test("meanStdBy groups in first-seen order with sample std", () => {
  const runs = [
    { task: "rte", method: "ln", seed: 1, score: 60 },
    { task: "rte", method: "ln", seed: 2, score: 64 },
    { task: "cola", method: "ln", seed: 1, score: 50 },
  ];
  assert.deepEqual(meanStdBy(runs, ["task", "method"], "score"), [
    { task: "rte", method: "ln", mean: 62, std: Math.sqrt(8), n: 2 },
    { task: "cola", method: "ln", mean: 50, std: 0, n: 1 },
  ]);
  assert.throws(() => meanStdBy([{ score: "x" }], [], "score"), /row 0 has score="x"/);
  assert.throws(() => meanStd([]), /no values/);
});
