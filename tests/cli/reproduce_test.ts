/**
 * The main job end to end on the `smoke` profile, as CI runs it: every grid, then every notebook executed
 * headless and exported to HTML, then the reports opened in headless Chromium to check the plots drew.
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { countOccurrences, plotlySignature, readPlotly } from "../../lib/report/export.ts";
import { ROOT } from "../../lib/util/paths.ts";
import { sharedGlue, sharedModel, tempDir } from "../env.ts";
import { chromiumDom, countClass } from "../report/chromium.ts";

Deno.test("reproduce --profile smoke: grids, seven notebooks, HTML reports with drawn plots", async () => {
  const [dir, cleanup] = await tempDir();
  try {
    const models = join(sharedModel(), "..");
    const out = await new Deno.Command(Deno.execPath(), {
      args: [
        "run",
        "-A",
        join(ROOT, "lib/cli/main.ts"),
        "reproduce",
        "--profile",
        "smoke",
        "--results",
        join(dir, "results"),
        "--runs",
        join(dir, "runs"),
        "--reports",
        join(dir, "reports"),
      ],
      env: { GLUE_DIR: sharedGlue(), NORMTUNE_MODELS_DIR: models, NORMTUNE_BACKEND: "wasm" },
      stdout: "piped",
      stderr: "piped",
    }).output();
    const log = new TextDecoder().decode(out.stderr);
    assert.ok(out.success, `reproduce failed:\n${log.slice(-4000)}`);

    const notebooks = [...Deno.readDirSync(join(ROOT, "notebooks"))]
      .map((e) => e.name).filter((n) => n.endsWith(".ipynb")).sort();
    assert.equal(notebooks.length, 7);
    const signature = plotlySignature(await readPlotly());
    const index = await Deno.readTextFile(join(dir, "reports", "index.html"));
    for (const nb of notebooks) {
      const html = join(dir, "reports", nb.replace(/\.ipynb$/, ".html"));
      const text = await Deno.readTextFile(html);
      assert.ok(index.includes(nb.replace(/\.ipynb$/, ".html")), `index.html lacks ${nb}`);
      // plotly.js once per report, never inside a cell output.
      assert.equal(countOccurrences(text, signature), 1, `${nb}: plotly.js must appear exactly once`);
    }
    // The findings and the top-k report must draw: the figures are Plotly SVGs once scripts ran.
    for (const name of ["03-main-table", "04-topk-layernorm"]) {
      const dom = await chromiumDom(`file://${join(dir, "reports", `${name}.html`)}`);
      assert.ok(countClass(dom, "main-svg") > 0, `${name}: no plot was drawn`);
    }
    const findings = await Deno.readTextFile(join(dir, "reports", "07-findings.html"));
    for (let i = 1; i <= 6; i++) assert.match(findings, new RegExp(`Finding ${i}`));
    // smoke runs every control: the control checks are judged (whatever the verdict), and notebook 3 shows
    // the controls beside the main methods and the results as a polars DataFrame.
    for (const id of ["C1", "C2", "C3"]) {
      assert.match(findings, new RegExp(`Control check ${id}: [^<]*\\(<strong>(?!not enough data)`));
    }
    const main = await Deno.readTextFile(join(dir, "reports", "03-main-table.html"));
    assert.match(main, /Head only \(control\)/);
    assert.match(main, /LayerNorm from random init \(control\)/);
    // 2 tasks x 8 methods x 2 rates in main, 8 topk runs, 2 union runs.
    assert.match(main, /<caption>Fine-tuning cells \(first 8 of 42 rows, 9 columns\)<\/caption>/);
    // One row per task and rate (1e-4, 1e-3, 1e-2): task, lr and the 8 methods.
    assert.match(main, /<caption>Main grid: mean dev score over seeds[^<]*\(6 rows, 10 columns\)<\/caption>/);
    // The learning-rate search: best rate in the main table, sensitivity per task.
    assert.match(main, /of \{1e-3, 1e-2\}/);
    assert.match(main, /Score at every learning rate tried/);
    assert.match(main, /SST-2: dev score vs learning rate/);

    // RESULTS.md from the same records: the main table and a verdict per finding.
    const md = join(dir, "RESULTS.md");
    const results = await new Deno.Command(Deno.execPath(), {
      args: ["run", "-A", join(ROOT, "lib/cli/main.ts"), "results", "--profile", "smoke"].concat(
        ["--results", join(dir, "results"), "--out", md],
      ),
      stderr: "piped",
    }).output();
    assert.ok(results.success, new TextDecoder().decode(results.stderr));
    const text = await Deno.readTextFile(md);
    assert.match(text, /### Main table/);
    assert.match(text, /### Learning-rate search/);
    // The command it names reads the same folder.
    assert.match(text.split("\n")[2], /normtune results --profile smoke --results \S*results --out /);
    for (let i = 1; i <= 6; i++) assert.match(text, new RegExp(`### Finding ${i}: .* \\(\\*\\*`));
  } finally {
    await cleanup();
  }
});
