/**
 * `normtune grid --grid NAME [--profile P] [--jobs N] [--fresh] [--list] [--count] [--estimate]`: runs one
 * of the study's grids (lib/experiments/study.ts) and its dependencies, skipping finished cells; a killed
 * run started again resumes. Without `--grid`, `--list` lists the grids.
 *
 * - `--jobs N` (or NORMTUNE_JOBS): N processes, one core each (`--shard k/N` each); default 1.
 * - `--shard K/N`: only the grid's cells K, K+N, K+2N, ... (and what they depend on).
 * - `--fresh`: recompute the grid's own cells even if finished (not their dependencies).
 * - `--list`: the cells with their `run-cell --index`, id and status; `--count`: their number (for a job
 *   array); `--estimate`: the expected cost of what is left, from measured (else nominal) step times.
 *   These three run nothing.
 *
 * change, topk and crosstask train at the rates main chooses (lib/experiments/study.ts): a task's cells
 * are declared once main has finished the runs that choose its rate. Until then they wait: `--count`
 * counts them, `--estimate` includes them (their cost does not depend on the rate) and says so, and a run
 * computes the declared cells, then fails naming what waits, so a script sees that the grid is not done.
 *
 * Common: `--model NAME|DIR` (or NORMTUNE_MODEL), `--backend`, `--gemm wasm|openblas|auto` (or
 * NORMTUNE_GEMM: the wasm backend's product; default wasm, the product the committed cells were computed
 * on; OpenBLAS runs one thread per process and its cells have their own ids),
 * `--glue-dir` (or GLUE_DIR), `--results DIR` (or NORMTUNE_RESULTS; default results/<profile>), `--runs DIR`
 * (or NORMTUNE_RUNS; default runs/<profile>), `--verbose` (the trainer's own progress lines).
 */
import { closure, gridSize, uniqueCells, waitingText } from "../experiments/grid.ts";
import {
  estimateText,
  jobsFrom,
  openStudy,
  parseShard,
  progressPrinter,
  runShards,
  shardCells,
  studyRunner,
  writeManifest,
} from "../experiments/session.ts";
import { findGrid } from "../experiments/study.ts";
import { formatDuration } from "../util/progress.ts";
import type { BackendName } from "../tf.ts";
import { type Flags, gemmFlag, parseFlags, UsageError } from "./flags.ts";

/** The flags every study command takes. */
export const STUDY_FLAGS = {
  profile: "string",
  model: "string",
  backend: "string",
  gemm: "string",
  "glue-dir": "string",
  results: "string",
  runs: "string",
  verbose: "boolean",
} as const;

export function studyOptions(f: Flags) {
  return {
    profile: f.optionalString("profile"),
    model: f.optionalString("model"),
    backend: f.optionalString("backend") as BackendName | undefined,
    gemm: gemmFlag(f.optionalString("gemm")),
    glueDir: f.optionalString("glue-dir"),
    results: f.optionalString("results"),
    runs: f.optionalString("runs"),
  };
}

/** The common flags as given, to pass on to child processes. */
export function passthrough(f: Flags): string[] {
  const out: string[] = [];
  for (const name of ["profile", "model", "backend", "gemm", "glue-dir", "results", "runs"]) {
    if (f.has(name)) out.push(`--${name}`, f.string(name));
  }
  if (f.bool("verbose")) out.push("--verbose");
  return out;
}

export async function run(args: string[]): Promise<void> {
  const f = parseFlags(args, {
    ...STUDY_FLAGS,
    grid: "string",
    list: "boolean",
    count: "boolean",
    estimate: "boolean",
    fresh: "boolean",
    jobs: "number",
    shard: "string",
  });
  if (f.positionals.length) throw new UsageError(`unexpected argument "${f.positionals[0]}"`);
  const study = await openStudy(studyOptions(f));
  if (!f.has("grid")) {
    if (!f.bool("list")) {
      throw new UsageError("missing required flag --grid NAME (or --list to see the grids)");
    }
    for (const g of study.grids) {
      const waiting = gridSize(g) - g.cells.length;
      console.log(
        `${g.name.padEnd(10)} ${String(gridSize(g)).padStart(4)} cells  ${g.about}` +
          (waiting ? ` [${waiting} wait on main's chosen rates]` : ""),
      );
    }
    return;
  }
  const grid = findGrid(study.grids, f.string("grid"));
  const waiting = waitingText(grid);
  if (f.bool("count")) {
    // Declared or not: a job array submitted before main has run gets every index (run-cell declares
    // them once main has finished).
    console.log(gridSize(grid));
    return;
  }
  const shard = f.has("shard") ? parseShard(f.string("shard")) : undefined;
  const own = shard ? shardCells(grid.cells, shard) : grid.cells;
  const title = `grid ${grid.name}${shard ? ` ${shard.k}/${shard.n}` : ""}`;
  const runner = await studyRunner(study, {
    fresh: f.bool("fresh") ? own.map((c) => c.id) : [],
    onEvent: progressPrinter(title),
    verbose: f.bool("verbose"),
  });
  if (f.bool("list")) {
    for (const [i, cell] of grid.cells.entries()) {
      const done = await study.store.read(cell.id);
      console.log(`${String(i).padStart(4)}  ${cell.id}  ${done ? "done" : "todo"}  ${cell.label}`);
    }
    if (waiting) console.log(waiting);
    return;
  }
  const jobs = jobsFrom(f.optionalNumber("jobs"));
  if (!shard) {
    const standIns = (grid.waiting ?? []).flatMap((w) => w.standIns);
    const text = await estimateText(
      runner,
      uniqueCells(closure([...grid.cells, ...standIns])),
      `grid ${grid.name} (profile ${study.profile.name})`,
    );
    console.error(text + (jobs > 1 ? `\n  with --jobs ${jobs}: about 1/${jobs} of that` : ""));
    if (waiting) console.error(`${waiting}; estimated at a stand-in rate (the cost does not depend on it)`);
    if (f.bool("estimate")) return;
  }
  await writeManifest(study, grid);
  if (jobs > 1 && !shard) {
    const t0 = performance.now();
    await runShards(grid.name, jobs, [...passthrough(f), ...(f.bool("fresh") ? ["--fresh"] : [])]);
    console.error(
      `grid ${grid.name}: ${jobs} jobs finished in ${formatDuration((performance.now() - t0) / 1000)}`,
    );
  } else {
    const r = await runner.runAll(own);
    console.error(
      `${title}: ${r.computed} computed, ${r.skipped} already finished, ${formatDuration(r.seconds)}; ` +
        `results in ${study.store.results}`,
    );
  }
  // A shard leaves the verdict on waiting cells to the command that started it.
  if (waiting && !shard) {
    throw new Error(`${waiting}. Finish the main grid (\`grid --grid main\`), then run this grid again.`);
  }
}
