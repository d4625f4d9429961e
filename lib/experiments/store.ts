/**
 * The result store: one small JSON file per finished cell (`<results>/<id>.json`, written atomically, small
 * enough to commit) and one folder of large artefacts per cell (`<runs>/<id>/`: deltas, Fisher tensors,
 * masks; git-ignored). A record's presence means the cell finished; an artefact may still be missing (a
 * fresh clone with committed results), which the runner repairs only when a dependant needs it.
 *
 * Locks (`<runs>/.locks/<id>.lock`) keep two processes (a job array, or a grid and a `run-cell`) from
 * computing the same cell at once: the holder refreshes the lock's mtime from a worker thread (so a long
 * synchronous training step cannot starve it); a lock whose process is gone (same host) or whose mtime is
 * older than `staleMs` (other hosts) is taken over.
 *
 * ```ts
 * const store = new ResultStore(resultsDir("cpu"), runsDir("cpu"));
 * await store.read("0123456789abcdef"); // CellRecord | undefined
 * ```
 */
import { hostname } from "node:os";
import { join, resolve } from "node:path";
import { readJsonIfExists, writeFileAtomic } from "../util/atomic.ts";
import { ROOT } from "../util/paths.ts";
import type { CellConfig } from "./grid.ts";

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

export interface LockOptions {
  /** How often the holder refreshes the lock, and a waiter looks again (ms). */
  pollMs?: number;
  /** A lock not refreshed for this long is taken over (ms); must exceed `pollMs` by a wide margin. */
  staleMs?: number;
  /** Called once when the lock is held by someone else. */
  onWait?: (holder: string) => void;
}

export interface Lock {
  release(): Promise<void>;
}

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

  /** True when every artefact the record lists exists in the cell's runs folder. */
  async artefactsPresent(record: CellRecord): Promise<boolean> {
    for (const name of record.artefacts) {
      try {
        await Deno.stat(join(this.runDir(record.id), name));
      } catch {
        return false;
      }
    }
    return true;
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

  /** Waits for and takes the cell's lock. */
  async lock(id: string, opts: LockOptions = {}): Promise<Lock> {
    const pollMs = opts.pollMs ?? 5_000;
    const staleMs = opts.staleMs ?? Math.max(60_000, pollMs * 6);
    const path = this.lockPath(id);
    await Deno.mkdir(join(this.runs, ".locks"), { recursive: true });
    const me = JSON.stringify({ host: hostname(), pid: Deno.pid, since: new Date().toISOString() });
    let waited = false;
    while (true) {
      try {
        await Deno.writeTextFile(path, me, { createNew: true });
        break;
      } catch (err) {
        if (!(err instanceof Deno.errors.AlreadyExists)) throw err;
      }
      const holder = await Deno.readTextFile(path).catch(() => undefined);
      if (holder === undefined) continue; // released between our two calls
      if (await isStale(path, holder, staleMs)) {
        // Remove only the lock we judged stale, not one a third process took meanwhile.
        const again = await Deno.readTextFile(path).catch(() => undefined);
        if (again === holder) await Deno.remove(path).catch(() => {});
        continue;
      }
      if (!waited) opts.onWait?.(holder);
      waited = true;
      await sleep(Math.min(pollMs, 1_000));
    }
    const stop = heartbeat(path, pollMs);
    return {
      async release() {
        stop();
        const content = await Deno.readTextFile(path).catch(() => undefined);
        if (content === me) await Deno.remove(path).catch(() => {});
      },
    };
  }
}

// Refreshes the lock's mtime from a worker thread: training steps and Fisher passes are synchronous and
// can hold this thread for longer than `staleMs`, which must not make the lock look abandoned.
const HEARTBEAT = `self.onmessage = (e) => {
  const { path, ms } = e.data;
  setInterval(() => { try { const now = new Date(); Deno.utimeSync(path, now, now); } catch { /* released */ } }, ms);
};`;

function heartbeat(path: string, ms: number): () => void {
  const worker = new Worker(`data:application/javascript,${encodeURIComponent(HEARTBEAT)}`, {
    type: "module",
  });
  worker.postMessage({ path, ms });
  return () => worker.terminate();
}

function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}

async function isStale(path: string, content: string, staleMs: number): Promise<boolean> {
  let holder: { host?: string; pid?: number } = {};
  try {
    holder = JSON.parse(content);
  } catch {
    // a lock being written: judge by age below
  }
  if (holder.host === hostname() && typeof holder.pid === "number" && holder.pid !== Deno.pid) {
    if (!processAlive(holder.pid)) return true;
  }
  const stat = await Deno.stat(path).catch(() => undefined);
  if (!stat?.mtime) return false;
  return Date.now() - stat.mtime.getTime() > staleMs;
}

/** Whether a process of this host is alive (Linux `/proc`; elsewhere unknown, so assumed alive). */
function processAlive(pid: number): boolean {
  try {
    Deno.statSync(`/proc/${pid}`);
    return true;
  } catch (err) {
    if (err instanceof Deno.errors.NotFound) {
      try {
        Deno.statSync("/proc/self");
        return false;
      } catch {
        return true;
      }
    }
    return true;
  }
}
