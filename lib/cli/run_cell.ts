/**
 * `normtune run-cell --grid NAME --index I [--profile P] [--fresh]`: runs one cell of a grid (and whatever
 * it depends on) as its own process, so a cluster can fan a grid out as a job array. Results merge by
 * cell id in the shared results folder; a dependency that several jobs need is computed by the first to
 * lock it while the others wait (docs/slurm.md). `normtune grid --grid NAME --count` gives the number of
 * indices. Takes the same common flags as `normtune grid`.
 *
 * A grid whose cells wait on main's chosen rates (change, topk, crosstask before main has finished; see
 * lib/experiments/study.ts) has no fixed indices yet: run-cell refuses it with the reason (tools/slurm/
 * study.sh starts those arrays only after main's, with `afterok`).
 */
import { openStudy, progressPrinter, studyRunner, writeManifest } from "../experiments/session.ts";
import { runGridCell } from "../experiments/runner.ts";
import { findGrid } from "../experiments/study.ts";
import { waitingText } from "../experiments/grid.ts";
import { formatDuration } from "../util/progress.ts";
import { parseFlags, UsageError } from "./flags.ts";
import { STUDY_FLAGS, studyOptions } from "./grid.ts";

export async function run(args: string[]): Promise<void> {
  const f = parseFlags(args, { ...STUDY_FLAGS, grid: "string", index: "number", fresh: "boolean" }, [
    "grid",
    "index",
  ]);
  if (f.positionals.length) throw new UsageError(`unexpected argument "${f.positionals[0]}"`);
  const study = await openStudy(studyOptions(f));
  const grid = findGrid(study.grids, f.string("grid"));
  const index = f.number("index");
  const waiting = waitingText(grid);
  if (waiting) throw new Error(`${waiting}: its indices are fixed once main has finished those runs`);
  if (!Number.isInteger(index) || index < 0 || index >= grid.cells.length) {
    throw new UsageError(
      `--index ${index} is out of range: grid "${grid.name}" has ${grid.cells.length} cells (0..${
        grid.cells.length - 1
      })`,
    );
  }
  const cell = grid.cells[index];
  const runner = await studyRunner(study, {
    fresh: f.bool("fresh") ? [cell.id] : [],
    onEvent: progressPrinter(`${grid.name}#${index}`),
    verbose: f.bool("verbose"),
  });
  await writeManifest(study, grid);
  const r = await runGridCell(grid, index, runner);
  console.error(
    `${grid.name}#${index} ${cell.label} (${cell.id}): ${r.computed} computed, ${r.skipped} already finished, ` +
      `${formatDuration(r.seconds)}`,
  );
}
