import assert from "node:assert/strict";
import { basename, dirname, join } from "node:path";
import {
  figureBundle,
  frameBundle,
  inJupyter,
  markdownBundle,
  PLOTLY_MIME,
  showFigure,
  showMarkdown,
  showTable,
  tableBundle,
} from "../../lib/report/display.ts";
import { pl } from "../../lib/experiments/frame.ts";
import { groupedBars, rankedBar } from "../../lib/report/plot.ts";
import { ROOT } from "../../lib/util/paths.ts";
import { chromiumDom, countClass } from "./chromium.ts";

const fig = rankedBar([{ label: "a</script><!--", value: 1, error: 0.1 }, { label: "b", value: 2 }], {
  title: "Scores",
});

Deno.test("figureBundle carries the Plotly MIME, an html fallback without plotly.js, and text", () => {
  const b = figureBundle(fig, { id: "fig1", notebookDir: join(ROOT, "notebooks") });
  assert.deepEqual(b[PLOTLY_MIME], { data: fig.data, layout: fig.layout });
  const html = b["text/html"] as string;
  assert.match(html, /^<div id="fig1" class="normtune-figure" style="width:100%;height:450px"><\/div>/);
  const tall = figureBundle({ data: [], layout: { height: 300 } }, { id: "f" })["text/html"] as string;
  assert.match(tall, /^<div id="f" class="normtune-figure" style="width:100%;height:300px">/);
  assert.match(html, /Plotly\.newPlot/);
  // Label text must not end the script or open an HTML comment.
  assert.equal(html.match(/<\/script>/g)?.length, 1);
  assert.ok(!html.includes("<!--"));
  assert.ok(html.includes('"../node_modules/plotly.js-dist-min/plotly.min.js"'));
  assert.ok(html.length < 10_000, `html fallback is ${html.length} chars: plotly.js must not be inlined`);
  assert.equal(b["text/plain"], "[figure: Scores (1 trace)]");
  // Fresh ids by default, so two figures in one page do not collide.
  assert.notEqual(figureBundle(fig)["text/html"], figureBundle(fig)["text/html"]);
});

Deno.test("table and markdown bundles; outside Jupyter the show* calls print text", async () => {
  assert.equal(inJupyter(), false);
  const t = tableBundle([{ a: 1 }], { caption: "cap" });
  assert.match(t["text/html"] as string, /<caption>cap<\/caption>/);
  assert.equal(t["text/plain"], "cap\n\n|   a |\n| --: |\n|   1 |");
  assert.deepEqual(markdownBundle("# hi"), { "text/markdown": "# hi", "text/plain": "# hi" });
  const printed: string[] = [];
  const log = console.log;
  console.log = (s: string) => printed.push(s);
  try {
    await showFigure(fig);
    await showTable([{ a: 1 }]);
    await showMarkdown("**x**");
  } finally {
    console.log = log;
  }
  assert.deepEqual(printed, ["[figure: Scores (1 trace)]", "|   a |\n| --: |\n|   1 |", "**x**"]);
});

Deno.test("frameBundle: a polars DataFrame as a table of its first rows, the size in the caption", () => {
  const df = pl.DataFrame({ task: ["RTE", "RTE", "MRPC"], k: [10, null, 5], score: [0.5, 0.625, 0.75] });
  const all = frameBundle(df, { caption: "Cells", digits: 2 });
  assert.equal(
    all["text/plain"],
    "Cells (3 rows, 3 columns)\n\n| task |   k | score |\n| ---- | --: | ----: |\n| RTE  |  10 |  0.50 |\n" +
      "| RTE  |     |  0.63 |\n| MRPC |   5 |  0.75 |",
  );
  assert.match(all["text/html"] as string, /<caption>Cells \(3 rows, 3 columns\)<\/caption>/);
  // Long frames are cut to maxRows: the output stays small.
  const long = pl.DataFrame({ i: Array.from({ length: 500 }, (_, i) => i) });
  const cut = frameBundle(long, { maxRows: 4 });
  assert.equal(
    cut["text/plain"],
    "first 4 of 500 rows, 1 columns\n\n|   i |\n| --: |\n|   0 |\n|   1 |\n|   2 |\n|   3 |",
  );
  assert.ok((frameBundle(long)["text/html"] as string).split("<tr>").length - 1 === 21, "header + 20 rows");
  // A column named like a DataFrame method (a pivot on method has "head") hides that method in polars.
  const pivot = pl.DataFrame({ task: ["RTE"], head: [0.5], layernorm: [0.625] });
  assert.equal(typeof pivot.head, "object", "polars hands back the column");
  assert.ok((frameBundle(pivot)["text/plain"] as string).endsWith("| RTE  | 0.500 |     0.625 |"));
  assert.throws(() => frameBundle(pl.DataFrame({ slice: [1] })), /a column named "slice" hides it/);
});

/**
 * A stand-in for a Jupyter server rooted at the project's parent folder, with a base URL, serving a notebook
 * page that holds two figures' html outputs, as JupyterLab (base URL in #jupyter-config-data, page at
 * <base>lab/tree/<path>) or the classic Notebook (base URL on <body data-base-url>, page at
 * <base>notebooks/<path>) do. Returns the files/ paths the page fetched and the number of figures drawn.
 */
async function standInServer(flavour: "lab" | "classic"): Promise<{ requested: string[]; drawn: number }> {
  const base = "/user/me/";
  const serverRoot = dirname(ROOT);
  const notebookDir = join(ROOT, "notebooks");
  const outputs = [fig, groupedBars(["x", "y"], [{ name: "s", values: [1, 2] }])]
    .map((f) => figureBundle(f, { notebookDir })["text/html"]).join("\n");
  const head = flavour === "lab"
    ? `<script id="jupyter-config-data" type="application/json">{"baseUrl": "${base}"}</script>`
    : "";
  const body = flavour === "lab" ? "<body>" : `<body data-base-url="${base}">`;
  const page =
    `<!DOCTYPE html><html><head><meta charset="utf-8">${head}</head>${body}${outputs}</body></html>`;
  const route = flavour === "lab" ? "lab/tree/" : "notebooks/";
  const requested: string[] = [];
  const server = Deno.serve({ hostname: "127.0.0.1", port: 0, onListen() {} }, async (req) => {
    const path = decodeURIComponent(new URL(req.url).pathname);
    if (path.startsWith(`${base}${route}`)) {
      return new Response(page, { headers: { "content-type": "text/html" } });
    }
    if (path.startsWith(`${base}files/`)) {
      requested.push(path.slice(base.length));
      try {
        const body = await Deno.readFile(join(serverRoot, path.slice(`${base}files/`.length)));
        return new Response(body, { headers: { "content-type": "text/javascript" } });
      } catch {
        return new Response("not found", { status: 404 });
      }
    }
    return new Response("not found", { status: 404 });
  });
  try {
    const url = `http://127.0.0.1:${server.addr.port}${base}${route}${basename(ROOT)}/notebooks/x.ipynb`;
    const dom = await chromiumDom(url, { budgetMs: 8000 });
    assert.ok(countClass(dom, "main-svg") >= countClass(dom, "js-plotly-plot"));
    return { requested, drawn: countClass(dom, "js-plotly-plot") };
  } finally {
    await server.shutdown();
  }
}

for (const flavour of ["lab", "classic"] as const) {
  Deno.test(`without window.Plotly the fallback loads plotly.js once from files/ (${flavour} page)`, async () => {
    const { requested, drawn } = await standInServer(flavour);
    assert.equal(drawn, 2, "both figures drawn");
    // The path relative to the notebook's folder, under the base URL, worked first, and plotly.js was
    // fetched once for both figures.
    assert.deepEqual(requested, [`files/${basename(ROOT)}/node_modules/plotly.js-dist-min/plotly.min.js`]);
  });
}
