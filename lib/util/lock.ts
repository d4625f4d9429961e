/**
 * Lock files that keep two processes from working in the same place at once: the experiment runner
 * locks each cell (`<runs>/.locks/<id>.lock`), `finetune` its `--out` folder (`OUT/.lock`). Works across
 * hosts on a shared file system (NFS): the lock is created with `createNew`, holds its holder's host and
 * pid, and the holder refreshes its mtime from a worker thread (so a long synchronous training step
 * cannot starve it). A lock whose process is gone (same host) or whose mtime is older than `staleMs`
 * (other hosts) is taken over.
 *
 * ```ts
 * const lock = await acquireLock("runs/x/.lock", { onWait: (holder) => console.error(`waiting for ${holder}`) });
 * try { ... } finally { await lock.release(); }
 * ```
 */
import { hostname } from "node:os";
import { dirname } from "node:path";

export interface LockOptions {
  /** How often the holder refreshes the lock, and a waiter looks again (ms). */
  pollMs?: number;
  /** A lock not refreshed for this long is taken over (ms); must exceed `pollMs` by a wide margin. */
  staleMs?: number;
  /** Called once when the lock is held by someone else, with the holder's `{host, pid, since}` JSON. */
  onWait?: (holder: string) => void;
}

export interface Lock {
  release(): Promise<void>;
}

/** Waits for and takes the lock file at `path` (its folder is created). */
export async function acquireLock(path: string, opts: LockOptions = {}): Promise<Lock> {
  const pollMs = opts.pollMs ?? 5_000;
  const staleMs = opts.staleMs ?? Math.max(60_000, pollMs * 6);
  await Deno.mkdir(dirname(path), { recursive: true });
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
