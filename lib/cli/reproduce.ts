/**
 * `normtune reproduce [--profile P] [--jobs N] [--fresh] [--skip-notebooks] [--reports DIR]
 * [--notebooks DIR]`: the whole study of a profile (default `cpu`): every grid in dependency order (fisher,
 * main, change, topk, crosstask), finished cells skipped, then the notebooks executed headless on the
 * results (NORMTUNE_PROFILE and NORMTUNE_RESULTS set for them) and exported as HTML with an index into
 * reports/.
 *
 * `--reports DIR` (or NORMTUNE_REPORTS; default reports/) is where the HTML goes. `--jobs N` (or
 * NORMTUNE_JOBS) runs each grid as N processes, one core each. `--fresh` recomputes every
 * cell. Takes the common flags of `normtune grid` (--model, --backend, --glue-dir, --results, --runs,
 * --verbose).
 *
 * The grids are rebuilt from the store before each one runs, so change, topk and crosstask train at the
 * rates main has just chosen; cells that still wait (main's runs for their task failed) are reported as
 * the command's error with the reason, like failed cells.
 */
import { join, resolve } from "node:path";
import { type Cell, closure, type Grid, uniqueCells, waitingText } from "../experiments/grid.ts";
import {
  estimateText,
  jobsFrom,
  openStudy,
  progressPrinter,
  refreshGrids,
  runShards,
  studyRunner,
  writeManifest,
} from "../experiments/session.ts";
import { findGrid, GRID_NAMES } from "../experiments/study.ts";
import { buildReports } from "../report/export.ts";
import { formatDuration } from "../util/progress.ts";
import { ROOT } from "../util/paths.ts";
import { parseFlags, UsageError } from "./flags.ts";
import { passthrough, STUDY_FLAGS, studyOptions } from "./grid.ts";

export async function run(args: string[]): Promise<void> {
  const f = parseFlags(args, {
    ...STUDY_FLAGS,
    fresh: "boolean",
    jobs: "number",
    "skip-notebooks": "boolean",
    reports: "string",
    notebooks: "string",
  });
  if (f.positionals.length) throw new UsageError(`unexpected argument "${f.positionals[0]}"`);
  const jobs = jobsFrom(f.optionalNumber("jobs"));
  const study = await openStudy(studyOptions(f));
  // Waiting cells' stand-ins (at a placeholder rate) count in the estimate only.
  const standIns = (g: Grid) => (g.waiting ?? []).flatMap((w) => w.standIns);
  const all = uniqueCells(study.grids.flatMap((g) => closure(g.cells)));
  // --fresh: every cell is recomputed, so its record and artefacts go before it runs: all declared cells
  // now, and those declared later (at main's new choice) before their grid runs, each once.
  const forgotten = new Set<string>();
  const forget = async (cells: readonly Cell[]) => {
    for (const cell of cells) {
      if (forgotten.has(cell.id)) continue;
      await study.store.forget(cell.id);
      forgotten.add(cell.id);
    }
  };
  if (f.bool("fresh")) {
    await forget(all);
    console.error(`--fresh: removed the records and artefacts of ${all.length} cells`);
  }
  const runner = await studyRunner(study, { verbose: f.bool("verbose") });
  console.error(`normtune reproduce: profile ${study.profile.name} (${study.profile.about})`);
  console.error(`  model ${study.ctx.modelDir}, backend ${study.ctx.backend}, GLUE ${study.ctx.glueDir}`);
  console.error(`  results ${study.store.results}, artefacts ${study.store.runs}`);
  const estimated = uniqueCells([...all, ...closure(study.grids.flatMap(standIns))]);
  console.error(
    (await estimateText(runner, estimated, "whole study")) +
      (jobs > 1 ? `\n  with --jobs ${jobs}: about 1/${jobs} of that` : ""),
  );
  for (const g of study.grids) {
    const text = waitingText(g);
    if (text) console.error(`${text}; declared once main has run (estimated at a stand-in rate)`);
  }
  const t0 = performance.now();
  // A grid with failed cells does not stop the others (they skip what depends on the failures); the
  // failures are reported, after the notebooks, as the command's error.
  const failures: string[] = [];
  for (const name of GRID_NAMES) {
    // Main's records so far choose the rates of the grids after it.
    await refreshGrids(study);
    const grid = findGrid(study.grids, name);
    if (f.bool("fresh")) await forget(closure(grid.cells));
    await writeManifest(study, grid);
    const waiting = waitingText(grid);
    if (waiting) failures.push(waiting);
    try {
      if (jobs > 1) {
        await runShards(grid.name, jobs, passthrough(f));
        continue;
      }
      runner.setOnEvent(progressPrinter(`grid ${grid.name}`));
      const r = await runner.runAll(grid.cells);
      console.error(
        `grid ${grid.name}: ${r.computed} computed, ${r.skipped} already finished, ${
          formatDuration(r.seconds)
        }`,
      );
    } catch (err) {
      failures.push(`grid ${grid.name}: ${(err as Error).message}`);
      console.error(`grid ${grid.name}: FAILED (going on with the next grids)`);
    }
  }
  console.error(`grids finished in ${formatDuration((performance.now() - t0) / 1000)}`);
  const failed = () => {
    if (failures.length) {
      throw new Error(`some cells failed; run the same command again to retry them.\n${failures.join("\n")}`);
    }
  };
  if (f.bool("skip-notebooks")) return failed();

  const notebooksDir = resolve(f.string("notebooks", join(ROOT, "notebooks")));
  const outDir = resolve(f.string("reports", Deno.env.get("NORMTUNE_REPORTS") ?? join(ROOT, "reports")));
  await buildReports({
    notebooksDir,
    outDir,
    execute: true,
    env: { NORMTUNE_PROFILE: study.profile.name, NORMTUNE_RESULTS: study.store.results },
  });
  console.error(`reports: ${join(outDir, "index.html")}`);
  failed();
}
