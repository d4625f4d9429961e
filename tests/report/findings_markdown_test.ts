import assert from "node:assert/strict";
import { evaluateFindings } from "../../lib/report/findings.ts";
import { progressText, renderResultsMarkdown } from "../../lib/report/findings_markdown.ts";
import { gridProgress } from "../../lib/experiments/load.ts";
import { changeRecord, run, seeds, study } from "./study_fixtures.ts";

Deno.test("renderResultsMarkdown: main table and six verdicts, numbers with their cell ids", () => {
  const full = seeds("full", [0.8, 0.82]), ln = seeds("layernorm", [0.79, 0.8]);
  const data = study({
    finetune: [...full, ...seeds("bitfit", [0.78, 0.8]), ...ln],
    change: [changeRecord("RTE", { output_layernorm: 3, query: 1 })],
  });
  const md = renderResultsMarkdown(data);
  assert.match(md, /^## Results: profile `cpu`/);
  assert.match(md, /### Main table/);
  assert.match(md, /Full fine-tuning \| accuracy \| 81\.00 ± 1\.41/);
  assert.ok(md.includes(`${full[0].id} ${full[1].id}`), "the main table names the runs of each number");
  assert.ok(md.includes(`${data.change[0].id}`));
  assert.match(md, /\/tmp\/normtune-synthetic-results\/ID\.json/);
  for (let i = 1; i <= 6; i++) assert.match(md, new RegExp(`### Finding ${i}: `));
  assert.match(md, /Finding 1: .*\(\*\*supported\*\*\)/);
  assert.match(md, /Finding 4: .*\(\*\*not enough data\*\*\)/);
  // The study's, one beside each of the six verdicts and each of the three control checks.
  assert.equal((md.match(/Model caveat/g) ?? []).length, 10);
  assert.equal(evaluateFindings(data).length, 6);
  // No control runs: the control checks are there, and say they could not be judged.
  assert.match(md, /### Control checks/);
  assert.match(md, /### Control check C1: LayerNorm-only beats head-only \(\*\*not enough data\*\*\)/);
  // cpu declares the controls: the message names the grid that runs them.
  assert.match(
    md,
    /C1\. .*\| not enough data \| could not be judged, .*run `deno task normtune grid --grid main --profile cpu`/,
  );
  // The learning-rate search: one rate per method here (a one-rate search).
  assert.match(md, /### Learning-rate search/);
  assert.match(md, /\| RTE +\| LayerNorm +\| accuracy \| 1e-3: 79\.50 ± 0\.71 \(chosen\) +\| 0\.00 /);
  assert.ok(!md.includes("Head only (control)"), "no control rows in the main table");
  assert.ok(!md.includes("diverged"), "no diverged run, no word of it");
  // With controls: they join the main table, below the main methods.
  const withControls = renderResultsMarkdown(study({
    finetune: [...data.finetune, ...seeds("head", [0.6, 0.62])],
  }));
  assert.match(withControls, /\| RTE +\| Head only \(control\) +\| accuracy \| 61\.00 ± 1\.41/);
  assert.match(withControls, /Control check C1: .*\(\*\*supported\*\*\)/);
});

Deno.test("renderResultsMarkdown: a diverged run is said in the tables and listed with where it stopped", () => {
  const diverged = run("layernorm", 0, { seed: 1, diverged: true });
  const data = study({
    finetune: [
      ...seeds("full", [0.8, 0.82]),
      ...seeds("bitfit", [0.78, 0.8]),
      run("layernorm", 0.79, { seed: 0 }),
      diverged,
      ...seeds("layernorm", [0.7, 0.7], { lr: 1e-2 }),
    ],
  });
  const md = renderResultsMarkdown(data);
  // The search ranks 1e-3 (a diverged seed) below 1e-2.
  assert.match(
    md,
    /\| RTE +\| LayerNorm +\| accuracy \| 70\.00 ± 0\.00 +\| 1e-2 of \{1e-3, 1e-2\}, at the edge/,
  );
  assert.match(
    md,
    /\| RTE +\| LayerNorm +\| accuracy \| 1e-3: diverged \(1 of 2 seeds\); 1e-2: 70\.00 ± 0\.00 \(chosen\) +\| 0\.00 \(without diverged rates\)/,
  );
  assert.match(md, /### Runs that diverged\n\n1 fine-tuning run\(s\) diverged/);
  assert.match(
    md,
    new RegExp(
      `\\| RTE +\\| LayerNorm +\\| +\\| 1e-3 \\| +1 \\| step 3 \\(epoch 1, batch 3\\) \\| loss is NaN \\| ${diverged.id}`,
    ),
  );
  // All of LayerNorm's rates diverged on some seed: the main table says so, the finding notes it.
  const all = renderResultsMarkdown(study({
    finetune: [
      ...data.finetune.slice(0, 6),
      run("layernorm", 0.7, { seed: 0, lr: 1e-2 }),
      run("layernorm", 0, { seed: 1, lr: 1e-2, diverged: true }),
    ],
  }));
  assert.match(
    all,
    /\| LayerNorm +\| accuracy \| diverged \(1 of 2 seeds\) +\| 1e-3 of \{1e-3, 1e-2\}, at the edge, every rate tried diverged on some seed/,
  );
  assert.match(
    all,
    /Note: Diverged runs .*LayerNorm on RTE at lr 1e-3 \(1 of 2 seeds; every rate tried diverged/,
  );
  assert.match(all, /fails: RTE: LayerNorm close to full fine-tuning: LN diverged \(1 of 2 seeds\)/);
});

Deno.test("gridProgress and progressText: a partly computed study says so, a finished one too", () => {
  const cell = (id: string) => ({ index: 0, id, kind: "finetune", label: id });
  const manifest = (grid: string, ids: string[]) => ({
    grid,
    about: "",
    profile: "cpu",
    cells: ids.map(cell),
    closure: ids,
  });
  const have = new Set(["a", "b", "f"]);
  const partial = gridProgress({
    grids: { fisher: manifest("fisher", ["f"]), main: manifest("main", ["a", "b", "c"]) },
    byId: (id) => (have.has(id) ? ({ id } as never) : undefined),
  });
  assert.deepEqual(partial.slice(0, 3), [
    { grid: "fisher", declared: 1, finished: 1 },
    { grid: "main", declared: 3, finished: 2 },
    { grid: "change", finished: 0 },
  ]);
  const text = progressText(partial, "cpu");
  assert.match(text, /the study is not finished/);
  assert.match(text, /main 2 of 3; change not started/);
  assert.match(text, /deno task reproduce --profile cpu/);
  const done = progressText(partial.slice(0, 1), "cpu");
  assert.match(done, /every cell of the study's grids has a record \(fisher 1 of 1\)/);
  // Rendered before the main table, only when given.
  const data = study({ finetune: seeds("full", [0.8]) });
  assert.ok(
    renderResultsMarkdown(data, partial).indexOf("not finished") <
      renderResultsMarkdown(data, partial).indexOf("### Main table"),
  );
  assert.doesNotMatch(renderResultsMarkdown(data), /Progress/);
});
