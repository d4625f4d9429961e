/**
 * The resumable runner: brings cells to "finished" in dependency order, skipping those whose result record
 * exists. What makes it resumable:
 * - a record is written (atomically) only after its cell finished, so a killed run leaves no record for
 *   the cell it was in, and the next run starts that cell again (the trainer resumes its own checkpoint
 *   inside the cell's runs folder);
 * - a cell whose record exists but whose artefacts are gone (fresh clone with committed results) is
 *   recomputed only when a dependant needs those artefacts; one whose artefact no longer matches the
 *   checksum in its record (truncated, changed) is recomputed, with the reason in the progress line;
 * - temporary files that killed writes left in a cell's runs folder are removed before it runs;
 * - `fresh` ids are recomputed once per runner (their runs folder cleared first), whatever the store holds.
 *
 * Each kind has an executor (lib/experiments/cells.ts holds the real ones; tests pass fakes).
 *
 * ```ts
 * const runner = new Runner({ store, executors: { fisher: { run: async (ctx) => ({ result: {} }) } } });
 * await runner.runAll(grid.cells); // { computed: 3, skipped: 5, seconds: 12.5 }
 * ```
 */
import { hostname } from "node:os";
import { join } from "node:path";
import { removeStaleTemps } from "../util/atomic.ts";
import { type Checksum, fileChecksum } from "../util/checksum.ts";
import { type Cell, closure, type Grid } from "./grid.ts";
import { type CellRecord, type LockOptions, RECORD_SIZE_LIMIT, type ResultStore } from "./store.ts";

export interface DepInput {
  cell: Cell;
  record: CellRecord;
  /** The dependency's runs folder, its artefacts present. */
  dir: string;
}

export interface CellContext {
  cell: Cell;
  /** The cell's runs folder (created): artefacts go here; a resumable executor keeps its state here. */
  dir: string;
  deps: Record<string, DepInput>;
  log(line: string): void;
}

export interface CellOutput {
  /** Summary numbers and aggregated records (keep small: the JSON is committed for the cpu profile). */
  result: Record<string, unknown>;
  /** Files in `ctx.dir` that dependants read; checked to exist before the record is written. */
  artefacts?: string[];
}

export interface Executor {
  run(ctx: CellContext): Promise<CellOutput>;
}

export type Executors = Record<string, Executor>;

export type RunEvent =
  | { type: "plan"; total: number; todo: number; cost: number }
  | { type: "skip"; cell: Cell; index: number; total: number }
  | { type: "start"; cell: Cell; index: number; total: number; reason: string; etaSeconds?: number }
  | { type: "done"; cell: Cell; index: number; total: number; seconds: number; bytes: number }
  | { type: "wait"; cell: Cell; holder: string }
  | { type: "fail"; cell: Cell; index: number; total: number; error: string };

export interface RunnerOptions {
  store: ResultStore;
  executors: Executors;
  /** Ids to recompute even when finished (each at most once per runner). */
  fresh?: Iterable<string>;
  onEvent?: (event: RunEvent) => void;
  log?: (line: string) => void;
  lock?: LockOptions;
  /** Seconds per cost unit per cost class before any cell of the class has been timed (for the ETA). */
  secondsPerUnit?: Record<string, number>;
  /** The cost class of a stored record, for `learnRates` (default: the class it was written with). */
  costClassOf?: (rec: CellRecord) => string;
}

export interface RunSummary {
  computed: number;
  skipped: number;
  seconds: number;
}

export class Runner {
  readonly store: ResultStore;
  private executors: Executors;
  private fresh: Set<string>;
  private computed = new Set<string>();
  private onEvent: (event: RunEvent) => void;
  private log: (line: string) => void;
  private lockOptions: LockOptions;
  /** kind -> [seconds, cost units] measured, for the ETA. */
  private rates = new Map<string, [number, number]>();
  private nominal: Record<string, number>;
  private costClassOf: (rec: CellRecord) => string;
  /** Cells that failed: not retried by this runner (their other dependants fail at once). */
  private failed = new Map<string, Error>();
  // Position of the current runAll, for events.
  private position = { index: 0, total: 0, remaining: new Map<string, Cell>() };

  constructor(opts: RunnerOptions) {
    this.store = opts.store;
    this.executors = opts.executors;
    this.fresh = new Set(opts.fresh ?? []);
    this.onEvent = opts.onEvent ?? (() => {});
    this.log = opts.log ?? (() => {});
    this.lockOptions = opts.lock ?? {};
    this.nominal = opts.secondsPerUnit ?? {};
    this.costClassOf = opts.costClassOf ?? ((rec) => rec.costClass ?? rec.kind);
  }

  /** Replaces the event handler (one runner across several grids, each with its own progress title). */
  setOnEvent(onEvent: (event: RunEvent) => void): void {
    this.onEvent = onEvent;
  }

  /**
   * Whether a cell counts as finished now: record present, artefacts not truncated, not due for a fresh
   * recomputation.
   */
  async isDone(cell: Cell): Promise<boolean> {
    if (this.wantsFresh(cell)) return false;
    const rec = await this.store.read(cell.id);
    return rec !== undefined && (await this.store.artefactProblem(rec, false)) === undefined;
  }

  private wantsFresh(cell: Cell): boolean {
    return this.fresh.has(cell.id) && !this.computed.has(cell.id);
  }

  /** Seeds the ETA with the timings of records already in the store (earlier runs of the same profile). */
  async learnRates(): Promise<void> {
    for (const rec of await this.store.list()) {
      this.addRate(this.costClassOf(rec), rec.timings.seconds, rec.cost);
    }
  }

  private addRate(costClass: string, seconds: number, cost: number): void {
    if (!(cost > 0) || !(seconds >= 0)) return;
    const [s, c] = this.rates.get(costClass) ?? [0, 0];
    this.rates.set(costClass, [s + seconds, c + cost]);
  }

  /** Seconds per cost unit of a cost class: measured if a cell of the class was timed, else nominal. */
  rate(costClass: string): { seconds: number; measured: boolean } | undefined {
    const r = this.rates.get(costClass);
    if (r && r[1] > 0) return { seconds: r[0] / r[1], measured: true };
    const nominal = this.nominal[costClass];
    return nominal === undefined ? undefined : { seconds: nominal, measured: false };
  }

  /** Estimated seconds for cells (undefined when some class has no rate yet). */
  estimate(cells: readonly Cell[]): number | undefined {
    let total = 0;
    for (const cell of cells) {
      const r = this.rate(cell.costClass);
      if (r === undefined) return undefined;
      total += r.seconds * cell.cost;
    }
    return total;
  }

  /** Runs `cells` and their dependencies; finished cells are skipped. */
  async runAll(cells: readonly Cell[]): Promise<RunSummary> {
    const all = closure(cells);
    const todo: Cell[] = [];
    for (const cell of all) if (!(await this.isDone(cell))) todo.push(cell);
    const t0 = performance.now();
    this.position = { index: 0, total: all.length, remaining: new Map(todo.map((c) => [c.id, c])) };
    this.onEvent({ type: "plan", total: all.length, todo: todo.length, cost: sum(todo.map((c) => c.cost)) });
    let computed = 0, skipped = 0;
    for (const cell of all) {
      this.position.index++;
      const before = this.computed.size;
      try {
        await this.ensure(cell, false);
      } catch (err) {
        // One failed cell (a crash, a lost file; a study fine-tuning that diverges is not one: it writes a
        // record, lib/experiments/cells.ts) must not stop hours of independent cells: note it, go on, and
        // report every failure at the end. Its dependants fail with it.
        if (!this.failed.has(cell.id)) this.failed.set(cell.id, err as Error);
        this.onEvent({
          type: "fail",
          cell,
          index: this.position.index,
          total: all.length,
          error: String(err),
        });
        continue;
      }
      if (this.computed.size > before) computed += this.computed.size - before;
      else {
        skipped++;
        this.onEvent({ type: "skip", cell, index: this.position.index, total: all.length });
      }
    }
    const seconds = (performance.now() - t0) / 1000;
    const failures = [...this.failed].filter(([id]) => all.some((c) => c.id === id));
    if (failures.length > 0) {
      const label = (id: string) => all.find((c) => c.id === id)?.label ?? id;
      throw new Error(
        `${failures.length} of ${all.length} cells failed (${computed} computed, ${skipped} already finished); ` +
          `run again to retry them:\n` +
          failures.map(([id, err]) => `  ${label(id)} (${id}): ${err.message.split("\n")[0]}`).join("\n"),
      );
    }
    return { computed, skipped, seconds };
  }

  /**
   * Makes sure a cell is finished (and, with `needArtefacts`, that its artefacts exist), computing it and
   * whatever it depends on as needed. Returns its record.
   */
  async ensure(cell: Cell, needArtefacts = false): Promise<CellRecord> {
    const failed = this.failed.get(cell.id);
    if (failed) throw failed;
    // Why the cell must be computed, or undefined when its record (and artefacts, if needed) will do.
    const why = async (rec: CellRecord | undefined) =>
      this.wantsFresh(cell)
        ? "fresh"
        : rec === undefined
        ? "not run"
        : await this.store.artefactProblem(rec, needArtefacts);
    let rec = await this.store.read(cell.id);
    let reason = await why(rec);
    if (reason === undefined) return rec!;

    const deps: Record<string, DepInput> = {};
    for (const [role, dep] of Object.entries(cell.deps)) {
      let depRecord: CellRecord;
      try {
        depRecord = await this.ensure(dep, true);
      } catch (err) {
        if (!this.failed.has(dep.id)) this.failed.set(dep.id, err as Error);
        const mine = new Error(`its dependency ${dep.label} (${dep.id}) failed: ${(err as Error).message}`);
        this.failed.set(cell.id, mine);
        throw mine;
      }
      deps[role] = { cell: dep, record: depRecord, dir: this.store.runDir(dep.id) };
    }

    const lock = await this.store.lock(cell.id, {
      ...this.lockOptions,
      onWait: (holder) => this.onEvent({ type: "wait", cell, holder }),
    });
    try {
      // Another process may have finished (or repaired) it while we waited for the lock.
      rec = await this.store.read(cell.id);
      reason = await why(rec);
      if (reason === undefined) return rec!;
      // A damaged artefact needs no clearing: fisher and mask cells rewrite theirs, and the trainer redoes
      // a finished run whose delta does not match its metrics (lib/tuning/trainer.ts).
      if (this.wantsFresh(cell)) await this.store.clearRun(cell.id);
      return await this.compute(cell, deps, reason);
    } catch (err) {
      this.failed.set(cell.id, err as Error);
      throw err;
    } finally {
      await lock.release();
    }
  }

  private async compute(cell: Cell, deps: Record<string, DepInput>, reason: string): Promise<CellRecord> {
    const executor = this.executors[cell.kind];
    if (!executor) {
      throw new Error(
        `no executor for cells of kind "${cell.kind}" (cell ${cell.id}, ${cell.label}); ` +
          `known kinds: ${Object.keys(this.executors).join(", ")}`,
      );
    }
    const dir = this.store.runDir(cell.id);
    await Deno.mkdir(dir, { recursive: true });
    // This process holds the cell's lock: no one else writes here.
    const stale = await removeStaleTemps(dir);
    if (stale.length) this.log(`${cell.id} removed ${stale.join(", ")} (left by a write cut short)`);
    const remaining = [...this.position.remaining.values()];
    this.onEvent({
      type: "start",
      cell,
      index: this.position.index,
      total: this.position.total,
      reason,
      etaSeconds: this.estimate(remaining),
    });
    const startedAt = new Date();
    const t0 = performance.now();
    const out = await executor.run({
      cell,
      dir,
      deps,
      log: (line) => this.log(`${cell.id} ${line}`),
    });
    const seconds = (performance.now() - t0) / 1000;
    const artefacts = out.artefacts ?? [];
    const checksums: Record<string, Checksum> = {};
    for (const name of artefacts) {
      try {
        checksums[name] = await fileChecksum(join(dir, name));
      } catch {
        throw new Error(
          `the ${cell.kind} executor said it wrote ${join(dir, name)} for cell ${cell.id} (${cell.label}), ` +
            `but the file is not there`,
        );
      }
    }
    const finishedAt = new Date().toISOString();
    const record: CellRecord = {
      id: cell.id,
      kind: cell.kind,
      label: cell.label,
      config: cell.config,
      deps: cell.depIds,
      result: out.result,
      artefacts,
      ...(artefacts.length ? { checksums } : {}),
      cost: cell.cost,
      costClass: cell.costClass,
      ...(Object.keys(cell.meta).length ? { meta: cell.meta } : {}),
      timings: { startedAt: startedAt.toISOString(), finishedAt, seconds: round(seconds, 3) },
      finishedAt,
      host: hostname(),
    };
    const bytes = await this.store.write(record);
    if (bytes > RECORD_SIZE_LIMIT) {
      this.log(
        `${cell.id} warning: its record is ${bytes} bytes (over ${RECORD_SIZE_LIMIT}); ` +
          `move bulky data into artefacts`,
      );
    }
    this.computed.add(cell.id);
    this.position.remaining.delete(cell.id);
    this.addRate(cell.costClass, seconds, cell.cost);
    this.onEvent({
      type: "done",
      cell,
      index: this.position.index,
      total: this.position.total,
      seconds,
      bytes,
    });
    return record;
  }
}

function sum(xs: number[]): number {
  return xs.reduce((a, b) => a + b, 0);
}

function round(x: number, digits: number): number {
  const f = 10 ** digits;
  return Math.round(x * f) / f;
}

/**
 * Runs one cell of a grid by its index (`run-cell --index I`, one job of a job array), dependencies
 * included: shared dependencies are computed by whichever process locks them first; the others wait and
 * read its record.
 */
export async function runGridCell(grid: Grid, index: number, runner: Runner): Promise<RunSummary> {
  const n = grid.cells.length;
  if (!Number.isInteger(index) || index < 0 || index >= n) {
    throw new Error(
      `index ${index} is out of range: grid "${grid.name}" has ${n} cells (indices 0..${n - 1})`,
    );
  }
  return await runner.runAll([grid.cells[index]]);
}
