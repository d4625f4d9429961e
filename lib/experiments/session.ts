/**
 * What the `grid`, `run-cell` and `reproduce` commands share: open a profile's study (identities hashed,
 * grids built, store opened), make a runner with the real executors, write grid manifests, print the
 * cost estimate and the progress lines.
 *
 * The grids are built with the rates main chose as far as the store's records go (`chosenRates`), so
 * change, topk and crosstask declare a task's cells once main has finished the runs that choose its rate;
 * `refreshGrids` rebuilds them after main has run (reproduce does, between grids).
 *
 * A grid manifest (`<results>/grids/<name>.json`) lists the grid's cells and their dependencies as of the
 * last run; the notebooks' loader uses the manifests to tell current records from ones an older
 * configuration left behind.
 *
 * ```ts
 * const study = await openStudy({ profile: "smoke" });
 * const runner = studyRunner(study, { onEvent: progressPrinter("main") });
 * await runner.runAll(findGrid(study.grids, "main").cells);
 * ```
 */
import { join } from "node:path";
import { ROOT } from "../util/paths.ts";
import type { GemmAsk } from "../backend/gemm_choice.ts";
import type { BackendName } from "../tf.ts";
import { writeJsonAtomic } from "../util/atomic.ts";
import { formatDuration } from "../util/progress.ts";
import { studyExecutors } from "./cells.ts";
import { type Cell, closure, type Grid } from "./grid.ts";
import { type ChosenClass, getProfile, type Profile, type ProfileName, profileName } from "./profiles.ts";
import { chooseRates, rateRun } from "./rates.ts";
import type { FinetuneRecord } from "./load.ts";
import { type RunEvent, Runner } from "./runner.ts";
import { type GridManifest, resultsDir, ResultStore, runsDir } from "./store.ts";

export type { GridManifest };
import {
  type ChosenRates,
  recordCostClass,
  selectionCells,
  type StudyContext,
  studyContext,
  studyGrids,
} from "./study.ts";

export interface StudyOptions {
  profile?: string;
  model?: string;
  backend?: BackendName;
  /** The wasm backend's product; default NORMTUNE_GEMM, else wasm. */
  gemm?: GemmAsk;
  glueDir?: string;
  results?: string;
  runs?: string;
}

export interface Study {
  profile: Profile;
  ctx: StudyContext;
  /** As of the last `openStudy` or `refreshGrids`: cells waiting on main's rates are in `waiting`. */
  grids: Grid[];
  store: ResultStore;
}

export async function openStudy(opts: StudyOptions = {}): Promise<Study> {
  const name: ProfileName = profileName(opts.profile);
  const profile = getProfile(name, opts.model);
  const ctx = await studyContext(profile, { backend: opts.backend, gemm: opts.gemm, glueDir: opts.glueDir });
  const store = new ResultStore(resultsDir(name, opts.results), runsDir(name, opts.runs));
  return { profile, ctx, grids: studyGrids(ctx, await chosenRates(ctx, store)), store };
}

/** Rebuilds the grids from the store's records now (after main has run, its chosen rates declare more). */
export async function refreshGrids(study: Study): Promise<void> {
  study.grids = studyGrids(study.ctx, await chosenRates(study.ctx, study.store));
}

/**
 * Per task, the full and LayerNorm rates main chose (lib/experiments/rates.ts), from the store: chosen
 * only once every run that chooses it (`selectionCells`: every rate x seed) has its record, so the choice
 * never changes under cells already built on it; else the reason, with how many runs are finished. A run
 * that diverged has its record too (lib/experiments/cells.ts): it counts as finished, and its rate ranks
 * below every finite one.
 */
export async function chosenRates(ctx: StudyContext, store: ResultStore): Promise<ChosenRates> {
  const out: ChosenRates = {};
  for (const task of ctx.profile.tasks) {
    const perClass: Partial<Record<ChosenClass, number | string>> = {};
    for (const cls of ["full", "layernorm"] as const) {
      const cells = selectionCells(ctx, task, cls);
      const records = (await Promise.all(cells.map((c) => store.read(c.id))))
        .filter((r) => r !== undefined) as FinetuneRecord[];
      perClass[cls] = records.length < cells.length
        ? `main has ${records.length} of ${cells.length} ${cls} runs`
        : chooseRates(records.map(rateRun))[0].lr;
    }
    out[task] = perClass;
  }
  return out;
}

export interface StudyRunnerOptions {
  fresh?: Iterable<string>;
  onEvent?: (event: RunEvent) => void;
  verbose?: boolean;
}

/** A runner with the study's executors, its ETA seeded by the profile's nominal rates and earlier records. */
export async function studyRunner(study: Study, opts: StudyRunnerOptions = {}): Promise<Runner> {
  const runner = new Runner({
    store: study.store,
    executors: studyExecutors({
      modelDir: study.ctx.modelDir,
      glueDir: study.ctx.glueDir,
      backend: (study.ctx.compute?.backend ?? study.ctx.backend) as BackendName,
      gemm: study.ctx.compute?.gemm,
      verbose: opts.verbose,
    }),
    fresh: opts.fresh,
    onEvent: opts.onEvent,
    log: (line) => console.error(line),
    secondsPerUnit: study.profile.nominalSecondsPerUnit,
    costClassOf: recordCostClass,
  });
  await runner.learnRates();
  return runner;
}

export function manifestPath(store: ResultStore, grid: string): string {
  return join(store.results, "grids", `${grid}.json`);
}

/** Written on every run, so it holds no timestamp: a rerun of finished grids leaves the tree unchanged. */
export async function writeManifest(study: Study, grid: Grid): Promise<void> {
  const manifest: GridManifest = {
    grid: grid.name,
    about: grid.about,
    profile: study.profile.name,
    cells: grid.cells.map((c, index) => ({ index, id: c.id, kind: c.kind, label: c.label })),
    closure: closure(grid.cells).map((c) => c.id),
  };
  await writeJsonAtomic(manifestPath(study.store, grid.name), manifest);
}

/** Cells by cost class: count, cost units, estimated seconds; and the total. */
export async function estimateText(runner: Runner, cells: readonly Cell[], title: string): Promise<string> {
  const todo: Cell[] = [];
  for (const c of cells) if (!(await runner.isDone(c))) todo.push(c);
  const classes = new Map<string, Cell[]>();
  for (const c of todo) classes.set(c.costClass, [...(classes.get(c.costClass) ?? []), c]);
  const lines = [
    `${title}: ${cells.length} cells, ${cells.length - todo.length} finished, ${todo.length} to run`,
  ];
  let total = 0, unknown = false;
  for (const [cls, list] of [...classes].sort()) {
    const units = list.reduce((a, c) => a + c.cost, 0);
    const rate = runner.rate(cls);
    const unit = cls.startsWith("finetune") ? "units" : cls === "fisher" ? "examples" : "cells";
    if (rate) total += rate.seconds * units;
    else unknown = true;
    lines.push(
      `  ${cls.padEnd(16)} ${String(list.length).padStart(5)} cells  ${String(units).padStart(8)} ${
        unit.padEnd(8)
      } ` +
        (rate
          ? `x ${formatRate(rate.seconds)} (${rate.measured ? "measured here" : "nominal"}) = ${
            formatDuration(rate.seconds * units)
          }`
          : "(no rate yet)"),
    );
  }
  lines.push(`  expected: ${unknown ? "at least " : ""}${formatDuration(total)} (h:mm:ss) on this machine`);
  return lines.join("\n");
}

function formatRate(seconds: number): string {
  return seconds >= 1 ? `${seconds.toFixed(2)} s` : `${(seconds * 1000).toFixed(1)} ms`;
}

/** Progress lines on stderr: cells done / total, current cell, ETA. */
export function progressPrinter(
  title: string,
  write = (line: string) => console.error(line),
): (e: RunEvent) => void {
  return (e) => {
    switch (e.type) {
      case "plan":
        write(`${title}: ${e.total} cells, ${e.total - e.todo} finished, ${e.todo} to run`);
        break;
      case "start": {
        const eta = e.etaSeconds === undefined ? "?" : formatDuration(e.etaSeconds);
        const why = e.reason === "not run" ? "" : ` [${e.reason}]`;
        write(`${title} [${e.index}/${e.total}] ${e.cell.label} (${e.cell.id})${why}  ETA ${eta}`);
        break;
      }
      case "done":
        write(`${title} [${e.index}/${e.total}] done in ${formatDuration(e.seconds)}: ${e.cell.label}`);
        break;
      case "wait":
        write(
          `${title}: ${e.cell.label} (${e.cell.id}) is being computed by another process (${e.holder}); waiting`,
        );
        break;
      case "fail":
        write(
          `${title} [${e.index}/${e.total}] FAILED: ${e.cell.label} (${e.cell.id}): ${
            e.error.split("\n")[0]
          }`,
        );
        break;
      case "skip":
        break;
    }
  };
}

/** `--jobs`, else `NORMTUNE_JOBS`, else 1. */
export function jobsFrom(flag?: number): number {
  const n = flag ?? Number(Deno.env.get("NORMTUNE_JOBS") ?? 1);
  if (!Number.isInteger(n) || n < 1) {
    throw new Error(`--jobs (or NORMTUNE_JOBS) must be a positive integer, got ${n}`);
  }
  return n;
}

/** Parses `--shard K/N` (0 <= K < N). */
export function parseShard(text: string): { k: number; n: number } {
  const m = /^(\d+)\/(\d+)$/.exec(text);
  const k = Number(m?.[1]), n = Number(m?.[2]);
  if (!m || n < 1 || k >= n) throw new Error(`--shard must be K/N with 0 <= K < N, got "${text}"`);
  return { k, n };
}

/** The cells of shard K of N: every N-th cell from index K (so the work of each task spreads out). */
export function shardCells<T>(cells: readonly T[], shard: { k: number; n: number }): T[] {
  return cells.filter((_, i) => i % shard.n === shard.k);
}

/**
 * Runs a grid as `jobs` processes (`normtune grid --grid NAME --shard k/jobs`), one core each (the wasm
 * and cpu backends use one thread). Shared dependencies are computed once, under their locks. Waits for
 * all; a failed shard is an error once the others have finished (run again to resume).
 */
export async function runShards(grid: string, jobs: number, passthrough: string[]): Promise<void> {
  const children = Array.from({ length: jobs }, (_, k) =>
    new Deno.Command(Deno.execPath(), {
      args: [
        "run",
        "-A",
        join(ROOT, "lib/cli/main.ts"),
        "grid",
        "--grid",
        grid,
        "--shard",
        `${k}/${jobs}`,
        ...passthrough,
      ],
      stdin: "null",
      stdout: "inherit",
      stderr: "inherit",
    }).spawn());
  const statuses = await Promise.all(children.map((c) => c.status));
  const failed = statuses.flatMap((s, k) => (s.success ? [] : [`${k}/${jobs} (exit ${s.code})`]));
  if (failed.length) {
    throw new Error(
      `grid ${grid}: shard ${failed.join(", ")} failed; see its messages above. Run again to resume.`,
    );
  }
}
