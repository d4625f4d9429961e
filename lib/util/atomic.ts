/**
 * Atomic writes: write to a temporary file beside the target, then rename over it, so that a reader (or a
 * run resumed after a kill) never sees a half-written file.
 *
 * ```ts
 * await writeJsonAtomic("runs/abc/metrics.json", { epoch: 1 });
 * ```
 */
import { dirname, join } from "node:path";

/** `NAME.tmp-PID-XXXXXXXX`: the temporary file of a write in progress (or cut short by a kill). */
const TEMP_RE = /\.tmp-(\d+)-[0-9a-f]+$/;

export async function writeFileAtomic(path: string, data: Uint8Array | string): Promise<void> {
  await Deno.mkdir(dirname(path), { recursive: true });
  const tmp = `${path}.tmp-${Deno.pid}-${crypto.randomUUID().slice(0, 8)}`;
  try {
    if (typeof data === "string") await Deno.writeTextFile(tmp, data);
    else await Deno.writeFile(tmp, data);
    await Deno.rename(tmp, path);
  } catch (err) {
    await Deno.remove(tmp).catch(() => {});
    throw err;
  }
}

/**
 * Removes the temporary files that writes cut short by a kill left in `dir` (not its subfolders); returns
 * their names. Call it only where no other process writes into `dir` (its owner holds the folder's lock):
 * this process's own temporary files are kept, every other one is stale.
 */
export async function removeStaleTemps(dir: string): Promise<string[]> {
  const removed: string[] = [];
  let entries: Deno.DirEntry[];
  try {
    entries = await Array.fromAsync(Deno.readDir(dir));
  } catch (err) {
    if (err instanceof Deno.errors.NotFound) return removed;
    throw err;
  }
  for (const e of entries) {
    const m = TEMP_RE.exec(e.name);
    if (!e.isFile || !m || Number(m[1]) === Deno.pid) continue;
    await Deno.remove(join(dir, e.name)).catch((err) => {
      if (!(err instanceof Deno.errors.NotFound)) throw err;
    });
    removed.push(e.name);
  }
  return removed.sort();
}

export function writeJsonAtomic(path: string, value: unknown): Promise<void> {
  return writeFileAtomic(path, JSON.stringify(value, null, 2) + "\n");
}

/** Reads a JSON file, or returns `undefined` if it does not exist. A file that is not JSON is an error. */
export async function readJsonIfExists<T>(path: string): Promise<T | undefined> {
  let text: string;
  try {
    text = await Deno.readTextFile(path);
  } catch (err) {
    if (err instanceof Deno.errors.NotFound) return undefined;
    throw err;
  }
  try {
    return JSON.parse(text) as T;
  } catch (err) {
    throw new Error(`${path}: not valid JSON (${(err as Error).message})`);
  }
}
