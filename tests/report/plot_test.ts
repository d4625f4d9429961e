import assert from "node:assert/strict";
import {
  figureTitle,
  groupedBars,
  heatmap,
  lineBands,
  PALETTE,
  rankedBar,
  withAlpha,
} from "../../lib/report/plot.ts";

Deno.test("heatmap keeps rows top-down as category axes and checks shapes", () => {
  const fig = heatmap([[1, 2, 3], [4, null, 6]], [0, 1, 2], ["attn LN", "out LN"], {
    title: "Fisher",
    zTitle: "score",
    cellDigits: 2,
  });
  assert.equal(fig.data.length, 1);
  const t = fig.data[0];
  assert.equal(t.type, "heatmap");
  assert.deepEqual(t.z, [[1, 2, 3], [4, null, 6]]);
  assert.deepEqual(t.x, ["0", "1", "2"]);
  assert.deepEqual(t.y, ["attn LN", "out LN"]);
  assert.equal(t.texttemplate, "%{z:.2f}");
  assert.equal((fig.layout.yaxis as Record<string, unknown>).autorange, "reversed");
  assert.equal(figureTitle(fig), "Fisher");
  assert.throws(() => heatmap([[1, 2]], [0, 1, 2], ["a"]), /row 0 \(a\) has 2 values but x has 3/);
  assert.throws(() => heatmap([[1]], [0], ["a", "b"]), /z has 1 rows but y has 2/);
  // Plain JSON: survives a round trip unchanged.
  assert.deepEqual(JSON.parse(JSON.stringify(fig)), fig);
});

Deno.test("rankedBar sorts by value, keeps ties in input order, carries error bars", () => {
  const items = [
    { label: "b", value: 0.5, error: 0.1 },
    { label: "a", value: 0.9 },
    { label: "c", value: 0.5, error: 0.2 },
  ];
  const fig = rankedBar(items, { yTitle: "score" });
  const t = fig.data[0];
  assert.deepEqual(t.x, ["a", "b", "c"]);
  assert.deepEqual(t.y, [0.9, 0.5, 0.5]);
  assert.deepEqual((t.error_y as { array: number[] }).array, [0, 0.1, 0.2]);
  const asc = rankedBar(items, { order: "ascending", horizontal: true }).data[0];
  assert.equal(asc.orientation, "h");
  assert.deepEqual(asc.y, ["b", "c", "a"]);
  assert.deepEqual((asc.error_x as { array: number[] }).array, [0.1, 0.2, 0]);
  assert.equal(rankedBar([{ label: "x", value: 1 }]).data[0].error_y, undefined);
  assert.throws(() => rankedBar([{ label: "x", value: NaN }]), /value 0 is NaN/);
});

Deno.test("lineBands draws a closed band per series before its line, in the line's colour", () => {
  const fig = lineBands([
    { name: "own mask", x: [0.1, 0.5, 1], y: [70, 75, 80], error: [1, 2, 3] },
    { name: "random mask", x: [0.1, 0.5, 1], y: [60, 65, 80], dash: "dash" },
  ], { xPercent: true, xTitle: "share of LayerNorm trained" });
  assert.equal(fig.data.length, 3); // band + line, line
  const [band, own, random] = fig.data;
  assert.equal(band.fill, "toself");
  assert.deepEqual(band.x, [0.1, 0.5, 1, 1, 0.5, 0.1]);
  assert.deepEqual(band.y, [71, 77, 83, 77, 73, 69]);
  assert.equal(band.showlegend, false);
  assert.equal(band.fillcolor, withAlpha(PALETTE[0], 0.2));
  assert.equal(band.legendgroup, own.legendgroup);
  assert.deepEqual(own.line, { color: PALETTE[0], dash: "solid" });
  assert.deepEqual(random.line, { color: PALETTE[1], dash: "dash" });
  assert.equal((fig.layout.xaxis as Record<string, unknown>).tickformat, ".0%");
  assert.throws(
    () => lineBands([{ name: "s", x: [1, 2], y: [1, 2], error: [1] }]),
    /series "s" error: has 1 values, expected 2/,
  );
});

Deno.test("rankedBar with log puts the value axis on a log scale and refuses values <= 0", () => {
  const fig = rankedBar([{ label: "a", value: 1e-4 }, { label: "b", value: 1e-2 }], {
    horizontal: true,
    log: true,
  });
  const x = fig.layout.xaxis as Record<string, unknown>;
  assert.equal(x.type, "log");
  assert.equal(x.exponentformat, "e");
  assert.equal((fig.layout.yaxis as Record<string, unknown>).type, "category");
  const vertical = rankedBar([{ label: "a", value: 1 }], { log: true });
  assert.equal((vertical.layout.yaxis as Record<string, unknown>).type, "log");
  assert.throws(() => rankedBar([{ label: "a", value: 0 }], { log: true }), /every value > 0/);
});

Deno.test("lineBands with xLog ticks each x value once, labelled as percentages", () => {
  const fig = lineBands([
    { name: "top", x: [0.01, 0.1, 1], y: [1, 2, 3] },
    { name: "random", x: [0.05, 0.1, 1], y: [1, 2, 3] },
  ], { xPercent: true, xLog: true });
  const axis = fig.layout.xaxis as Record<string, unknown>;
  assert.equal(axis.type, "log");
  assert.deepEqual(axis.tickvals, [0.01, 0.05, 0.1, 1]);
  assert.deepEqual(axis.ticktext, ["1%", "5%", "10%", "100%"]);
  assert.throws(() => lineBands([{ name: "s", x: [0, 1], y: [1, 2] }], { xLog: true }), /every x > 0/);
});

Deno.test("groupedBars puts one bar per series in each group", () => {
  const fig = groupedBars(["CoLA", "RTE"], [
    { name: "LayerNorm", values: [50, 60], errors: [1, 2] },
    { name: "BitFit", values: [48, 62] },
  ], { title: "dev" });
  assert.equal(fig.layout.barmode, "group");
  assert.deepEqual(fig.data.map((t) => t.name), ["LayerNorm", "BitFit"]);
  assert.deepEqual(fig.data[0].x, ["CoLA", "RTE"]);
  assert.deepEqual((fig.data[0].error_y as { array: number[] }).array, [1, 2]);
  assert.equal(fig.data[1].error_y, undefined);
  assert.throws(() => groupedBars(["a"], [{ name: "s", values: [1, 2] }]), /has 2 values, expected 1/);
});

Deno.test("withAlpha converts hex colours and rejects others", () => {
  assert.equal(withAlpha("#1f77b4", 0.5), "rgba(31,119,180,0.5)");
  assert.throws(() => withAlpha("red", 0.5), /expected a colour/);
});
