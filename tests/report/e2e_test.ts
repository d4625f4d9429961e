/**
 * End to end: notebooks in a temp folder are run headless with the Deno kernel, exported to HTML with
 * plotly.js once, indexed, and the page is opened in headless Chromium to check the figure was drawn.
 * One notebook fails on purpose: the build must fail with that cell's error, and still export the other.
 */
import assert from "node:assert/strict";
import { join, relative } from "node:path";
import { buildReports, countOccurrences, plotlySignature, readPlotly } from "../../lib/report/export.ts";
import { PLOTLY_MIME } from "../../lib/report/display.ts";
import { ROOT } from "../../lib/util/paths.ts";
import { tempDir } from "../env.ts";
import { chromiumDom, countClass } from "./chromium.ts";

function notebook(cells: { type: "markdown" | "code"; source: string }[]): string {
  return JSON.stringify({
    nbformat: 4,
    nbformat_minor: 5,
    metadata: { kernelspec: { name: "deno", display_name: "Deno", language: "typescript" } },
    cells: cells.map((c, i) =>
      c.type === "markdown" ? { cell_type: "markdown", id: `c${i}`, metadata: {}, source: c.source } : {
        cell_type: "code",
        id: `c${i}`,
        metadata: {},
        execution_count: null,
        outputs: [],
        source: c.source,
      }
    ),
  });
}

Deno.test("notebook -> executed copy -> HTML with plotly.js once -> drawn in headless Chromium", async () => {
  const [dir, cleanup] = await tempDir();
  try {
    const nbDir = join(dir, "notebooks"), outDir = join(dir, "reports");
    await Deno.mkdir(nbDir);
    // A relative import, as the real notebooks use: it resolves because the kernel's cwd is nbDir.
    const mod = relative(nbDir, join(ROOT, "lib/report/mod.ts"));
    await Deno.writeTextFile(
      join(nbDir, "tiny.ipynb"),
      notebook([
        { type: "markdown", source: "# Tiny *report*\nTwo cells." },
        {
          type: "code",
          source: `import { rankedBar, showFigure, showTable } from "${mod}";\n` +
            `await showFigure(rankedBar([{ label: "LayerNorm", value: 0.8, error: 0.02 }, ` +
            `{ label: "BitFit", value: 0.7, error: 0.05 }], { title: "Scores", yTitle: "accuracy" }));`,
        },
        {
          type: "code",
          source: `await showTable([{ method: "LayerNorm", score: 0.8123 }], { caption: "Dev" });`,
        },
      ]),
    );
    await Deno.writeTextFile(
      join(nbDir, "broken.ipynb"),
      notebook([{ type: "code", source: `const x = 1;\nthrow new Error("boom-" + (41 + x));` }]),
    );

    const log: string[] = [];
    await assert.rejects(
      buildReports({ notebooksDir: nbDir, outDir, execute: true, timeoutS: 120, log: (l) => log.push(l) }),
      (err: Error) => {
        assert.match(err.message, /1 of 2 notebook\(s\) failed/);
        assert.match(err.message, /broken: .*broken\.ipynb: execution failed/);
        assert.match(err.message, /throw new Error\("boom-" \+ \(41 \+ x\)\);/); // the cell's source
        assert.match(err.message, /Error: boom-42/); // and its error
        return true;
      },
    );
    assert.ok(log.some((l) => l.startsWith("tiny: ") && l.includes("tiny.html")), log.join("\n"));

    // The executed copy holds the figure (Plotly MIME + html fallback) and the table, but not plotly.js.
    const executed = await Deno.readTextFile(join(outDir, "tiny.ipynb"));
    const outputs = (JSON.parse(executed).cells as { outputs?: { data?: Record<string, unknown> }[] }[])
      .flatMap((c) => c.outputs ?? []);
    assert.equal(outputs.length, 2, JSON.stringify(outputs).slice(0, 2000));
    assert.ok(outputs[0].data?.[PLOTLY_MIME], "figure output has the Plotly MIME type");
    assert.ok(outputs[0].data?.["text/html"], "figure output has the html fallback");
    assert.match(String(outputs[1].data?.["text/html"]), /<caption>Dev<\/caption>/);
    const signature = plotlySignature(await readPlotly());
    assert.equal(countOccurrences(executed, signature), 0, "no cell output carries plotly.js");
    assert.ok(executed.length < 50_000, `executed notebook is ${executed.length} chars`);

    // The page: plotly.js exactly once, inline (no CDN), titled by the first heading.
    const htmlPath = join(outDir, "tiny.html");
    const html = await Deno.readTextFile(htmlPath);
    assert.equal(countOccurrences(html, signature), 1, "plotly.js appears exactly once in the page");
    assert.ok(!/<script[^>]+src="[^"]*plotly/i.test(html), "plotly.js is not loaded from a URL");
    assert.match(html, /<title>Tiny report<\/title>/);
    await assert.rejects(Deno.stat(join(outDir, "broken.html")), Deno.errors.NotFound);
    const index = await Deno.readTextFile(join(outDir, "index.html"));
    assert.match(index, /<a href="tiny.html">Tiny report<\/a>/);
    assert.ok(!index.includes("broken"));

    // Drawn: Plotly's elements exist in the DOM after scripts ran, and the screenshot is not blank.
    const png = join(dir, "tiny.png");
    const dom = await chromiumDom(`file://${htmlPath}`, { screenshot: png });
    assert.equal(countClass(dom, "js-plotly-plot"), 1, "one figure drawn");
    assert.ok(countClass(dom, "main-svg") >= 1);
    assert.match(dom, /class="[^"]*\bbars\b/); // the bar trace layer
    const image = await Deno.readFile(png);
    assert.deepEqual([...image.slice(1, 4)], [0x50, 0x4e, 0x47]); // "PNG"
    assert.ok(image.length > 20_000, `screenshot is only ${image.length} bytes`);
  } finally {
    await cleanup();
  }
});
