import assert from "node:assert/strict";
import { join } from "node:path";
import {
  cellError,
  cellsWithoutOutput,
  countOccurrences,
  droppedDisplays,
  injectPlotly,
  listReports,
  notebookTitle,
  PLOTLY_END,
  plotlySignature,
  readPlotly,
  setTitle,
  writeIndex,
} from "../../lib/report/export.ts";
import { tempDir } from "../env.ts";

const PAGE = `<!DOCTYPE html>\n<html>\n<head><meta charset="utf-8" />\n<title>old</title>\n` +
  `<script src="file:///require.js"></script>\n</head><body><p>x</p></body></html>`;

Deno.test("injectPlotly puts the bundle once, after <meta charset> and before every other script", () => {
  const js = "window.Plotly = {}; var s = '</script>';";
  const html = injectPlotly(PAGE, js);
  assert.equal(countOccurrences(html, "window.Plotly = {}"), 1);
  assert.ok(html.indexOf("window.Plotly") > html.indexOf("<meta charset"));
  assert.ok(html.indexOf("window.Plotly") < html.indexOf("require.js"));
  // The bundle's own "</script>" is escaped: the page has exactly its two real closing tags.
  assert.equal(html.match(/<\/script>/g)?.length, 2);
  assert.ok(html.includes("'<\\/script>'"));
  assert.ok(html.includes(PLOTLY_END));
  assert.throws(() => injectPlotly("<html><body></body></html>", js), /no <head>/);
});

Deno.test("setTitle replaces or adds the title, escaped", () => {
  assert.match(setTitle(PAGE, "A & B"), /<title>A &amp; B<\/title>/);
  assert.ok(!setTitle(PAGE, "A").includes("<title>old</title>"));
  assert.match(setTitle("<html><head></head></html>", "T"), /<head><title>T<\/title><\/head>/);
});

Deno.test("notebookTitle takes the first Markdown heading; cellsWithoutOutput counts unrun code cells", () => {
  const nb = {
    cells: [
      { cell_type: "code", source: "// # not a title", outputs: [] },
      { cell_type: "markdown", source: ["Intro\n", "## Fisher *scores* ##\n"] },
      { cell_type: "markdown", source: "# Later" },
      { cell_type: "code", source: "1", outputs: [{}] },
      { cell_type: "code", source: "   ", outputs: [] },
    ],
  };
  assert.equal(notebookTitle(nb, "file"), "Fisher scores");
  assert.equal(notebookTitle({ cells: [] }, "file"), "file");
  assert.equal(cellsWithoutOutput(nb), 1);
});

Deno.test("droppedDisplays: code cells that call a display function but came back without output", () => {
  const nb = {
    cells: [
      { cell_type: "markdown", source: "await showMarkdown('not code')" },
      { cell_type: "code", source: "const x = 1;", outputs: [] }, // displays nothing: fine
      { cell_type: "code", source: ["const f = findings();\n", "await showMarkdown(f);"], outputs: [] },
      {
        cell_type: "code",
        source: "await Deno.jupyter.display(bundle);",
        outputs: [{ output_type: "display_data" }],
      },
      { cell_type: "code", source: "await display(b)" }, // outputs missing entirely
      { cell_type: "code", source: "await showTable(rows)", outputs: [{}] },
    ],
  };
  assert.deepEqual(droppedDisplays(nb), [2, 4]);
  assert.deepEqual(droppedDisplays({ cells: [] }), []);
});

Deno.test("cellError keeps the failing cell's source and error from nbconvert's stderr", () => {
  const stderr = "Traceback...\n  noise\nnbclient.exceptions.CellExecutionError: An error occurred while " +
    "executing the following cell:\n------------------\nthrow new Error('x')\n------------------\n\nError: x\n";
  assert.equal(
    cellError(stderr),
    "An error occurred while executing the following cell:\n------------------\nthrow new Error('x')\n" +
      "------------------\n\nError: x",
  );
  assert.equal(cellError("a\nb\n"), "a\nb");
});

Deno.test("plotlySignature is a plain piece of the real bundle, found once in it", async () => {
  const js = await readPlotly();
  assert.ok(js.length > 1_000_000, `plotly.min.js is only ${js.length} chars`);
  const sig = plotlySignature(js);
  assert.equal(sig.length, 64);
  assert.equal(countOccurrences(js, sig), 1);
  // Survives JSON escaping unchanged (so it also finds a copy inside a notebook's outputs).
  assert.equal(JSON.stringify(sig), `"${sig}"`);
});

Deno.test("writeIndex links every report with its title; listReports reads titles past plotly.js", async () => {
  const [dir, cleanup] = await tempDir();
  try {
    const page = (title: string) =>
      injectPlotly(setTitle(PAGE, title), "var svg = '<title>plotly-logomark</title>';");
    await Deno.writeTextFile(join(dir, "b fisher.html"), page("Fisher & masks"));
    await Deno.writeTextFile(join(dir, "a.html"), page("Scores"));
    await Deno.writeTextFile(join(dir, "notes.txt"), "not a report");
    const reports = await listReports(dir);
    assert.deepEqual(reports.map((r) => r.title), ["Scores", "Fisher & masks"]);
    const index = await Deno.readTextFile(await writeIndex(reports, dir));
    assert.match(index, /<a href="a.html">Scores<\/a>/);
    assert.match(index, /<a href="b%20fisher.html">Fisher &amp; masks<\/a>/);
    assert.ok(!index.includes("notes.txt"));
    // The index itself is not listed as a report.
    assert.equal((await listReports(dir)).length, 2);
  } finally {
    await cleanup();
  }
});
