/**
 * The result store: one small JSON file per finished cell (`<results>/<id>.json`, written atomically, small
 * enough to commit) and one folder of large artefacts per cell (`<runs>/<id>/`: deltas, Fisher tensors,
 * masks; git-ignored). A record's presence means the cell finished; it holds each artefact's checksum. An
 * artefact may still be missing (a fresh clone with committed results), which the runner repairs only
 * when a dependant needs it; one that no longer matches its checksum is recomputed.
 *
 * Locks (`<runs>/.locks/<id>.lock`, lib/util/lock.ts) keep two processes (a job array, or a grid and a
 * `run-cell`) from computing the same cell at once.
 *
 * ```ts
 * const store = new ResultStore(resultsDir("cpu"), runsDir("cpu"));
 * await store.read("0123456789abcdef"); // CellRecord | undefined
 * ```
 */
import { join, resolve } from "node:path";
import { readJsonIfExists, writeFileAtomic } from "../util/atomic.ts";
import { type Checksum, checksumMismatch } from "../util/checksum.ts";
import { acquireLock, type Lock, type LockOptions } from "../util/lock.ts";
import { ROOT } from "../util/paths.ts";
import type { CellConfig } from "./grid.ts";

export type { Lock, LockOptions };

/** Bytes above which a record is reported as too large to commit comfortably. */
export const RECORD_SIZE_LIMIT = 50_000;

export interface CellRecord {
  id: string;
  kind: string;
  label: string;
  config: CellConfig;
  /** Role -> dependency id. */
  deps: Record<string, string>;
  /** Summary numbers and aggregated records: everything the notebooks read. */
  result: Record<string, unknown>;
  /** File names inside the cell's runs folder that dependants read. */
  artefacts: string[];
  /**
   * sha256 and size of each artefact as written. Records from before checksums were kept lack it: their
   * artefacts are only checked to exist.
   */
  checksums?: Record<string, Checksum>;
  /** The cost estimate the cell was planned with (its kind's units), and its class. */
  cost: number;
  costClass?: string;
  /** Descriptive, not part of the id (model name, ...). */
  meta?: Record<string, unknown>;
  timings: { startedAt: string; finishedAt: string; seconds: number };
  finishedAt: string;
  host: string;
}

/** `<results>/grids/<name>.json`: a grid's cells as of its last run (lib/experiments/session.ts writes it). */
export interface GridManifest {
  grid: string;
  about: string;
  profile: string;
  /** The grid's own cells, in `run-cell --index` order. */
  cells: { index: number; id: string; kind: string; label: string }[];
  /** Ids of the cells and everything they depend on. */
  closure: string[];
}

/** `--results`, else `NORMTUNE_RESULTS`, else `results/<profile>` in the project. */
export function resultsDir(profile: string, flag?: string): string {
  return resolve(flag ?? Deno.env.get("NORMTUNE_RESULTS") ?? join(ROOT, "results", profile));
}

/** `--runs`, else `NORMTUNE_RUNS`, else `runs/<profile>` in the project (git-ignored). */
export function runsDir(profile: string, flag?: string): string {
  return resolve(flag ?? Deno.env.get("NORMTUNE_RUNS") ?? join(ROOT, "runs", profile));
}

const ID_RE = /^[0-9a-f]{16}$/;

export class ResultStore {
  readonly results: string;
  readonly runs: string;

  constructor(results: string, runs: string) {
    this.results = resolve(results);
    this.runs = resolve(runs);
  }

  resultPath(id: string): string {
    return join(this.results, `${id}.json`);
  }

  /** The artefact folder of a cell (not created). */
  runDir(id: string): string {
    return join(this.runs, id);
  }

  async read(id: string): Promise<CellRecord | undefined> {
    const rec = await readJsonIfExists<CellRecord>(this.resultPath(id));
    if (rec && rec.id !== id) {
      throw new Error(
        `${this.resultPath(id)}: holds the record of cell ${rec.id}; delete the file to recompute`,
      );
    }
    return rec;
  }

  /** Writes a record atomically; returns its size in bytes. */
  async write(record: CellRecord): Promise<number> {
    const text = JSON.stringify(record, null, 2) + "\n";
    await writeFileAtomic(this.resultPath(record.id), text);
    return new TextEncoder().encode(text).length;
  }

  /** Every record in the results folder (other JSON files are ignored), sorted by id. */
  async list(): Promise<CellRecord[]> {
    const out: CellRecord[] = [];
    let entries: Deno.DirEntry[];
    try {
      entries = await Array.fromAsync(Deno.readDir(this.results));
    } catch (err) {
      if (err instanceof Deno.errors.NotFound) return [];
      throw err;
    }
    for (const e of entries) {
      if (!e.isFile || !e.name.endsWith(".json") || !ID_RE.test(e.name.slice(0, -5))) continue;
      const rec = await this.read(e.name.slice(0, -5));
      if (rec) out.push(rec);
    }
    return out.sort((a, b) => a.id.localeCompare(b.id));
  }

  /**
   * Why a finished cell's artefacts are not the ones its record describes, or `undefined` when they are.
   * Always checked (cheap): an artefact present with another size than was written (truncated). With
   * `needed` (a dependant is about to read them) also: an artefact missing, or its sha256 changed. A
   * missing artefact that nothing needs is no problem: a fresh clone has the records, not the runs.
   */
  async artefactProblem(record: CellRecord, needed: boolean): Promise<string | undefined> {
    for (const name of record.artefacts) {
      const path = join(this.runDir(record.id), name);
      const sum = record.checksums?.[name];
      const stat = await Deno.stat(path).catch(() => undefined);
      if (!stat) {
        if (needed) return `${path} is missing`;
        continue;
      }
      if (!sum) continue;
      const problem = needed
        ? await checksumMismatch(path, sum)
        : stat.size !== sum.bytes
        ? `${path} has ${stat.size} bytes, ${sum.bytes} were written`
        : undefined;
      if (problem) return problem;
    }
    return undefined;
  }

  /** Removes a cell's runs folder (before a fresh recomputation, so a resumable trainer starts over). */
  async clearRun(id: string): Promise<void> {
    await Deno.remove(this.runDir(id), { recursive: true }).catch((err) => {
      if (!(err instanceof Deno.errors.NotFound)) throw err;
    });
  }

  /** Removes a cell's record and runs folder (a forced recomputation from scratch). */
  async forget(id: string): Promise<void> {
    await Deno.remove(this.resultPath(id)).catch((err) => {
      if (!(err instanceof Deno.errors.NotFound)) throw err;
    });
    await this.clearRun(id);
  }

  lockPath(id: string): string {
    return join(this.runs, ".locks", `${id}.lock`);
  }

  /** Waits for and takes the cell's lock (lib/util/lock.ts). */
  lock(id: string, opts: LockOptions = {}): Promise<Lock> {
    return acquireLock(this.lockPath(id), opts);
  }
}
