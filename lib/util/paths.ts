/**
 * Where data and models live. Flags win over environment variables, which win over the defaults under
 * `data/` (what `normtune download` and `normtune glue download` fill for users with internet).
 *
 * Without them, a `shared/` folder beside the project (`../shared/glue`, `../shared/models`) is used when
 * `data/` lacks the folder.
 *
 * - `GLUE_DIR`: the folder holding one folder per GLUE task (`CoLA/`, `SST-2/`, ...).
 * - `NORMTUNE_MODELS_DIR`: a folder holding model folders; `--model NAME` looks there first.
 * - `NORMTUNE_CACHE`: where hub downloads go (default `data/models`).
 */
import { isAbsolute, join, resolve } from "node:path";

/** The project root (the folder holding deno.json). */
export const ROOT = resolve(new URL("../..", import.meta.url).pathname);

export function glueDir(flag?: string): string {
  return resolve(flag ?? Deno.env.get("GLUE_DIR") ?? defaultDir("glue"));
}

export function modelsDir(): string {
  return resolve(Deno.env.get("NORMTUNE_MODELS_DIR") ?? defaultDir("models"));
}

/**
 * `data/<name>`, unless it is absent and a read-only `shared/<name>` sits beside the project (how the
 * project's development and CI machines, which have no internet, hold GLUE and the small models).
 */
function defaultDir(name: string): string {
  const own = join(ROOT, "data", name);
  const shared = join(ROOT, "..", "shared", name);
  return !isDir(own) && isDir(shared) ? shared : own;
}

export function cacheDir(): string {
  return resolve(Deno.env.get("NORMTUNE_CACHE") ?? join(ROOT, "data", "models"));
}

/** Whether something (a file, folder or link) is at `path`; errors other than "not found" are thrown. */
export async function exists(path: string): Promise<boolean> {
  try {
    await Deno.lstat(path);
    return true;
  } catch (err) {
    if (err instanceof Deno.errors.NotFound) return false;
    throw err;
  }
}

function isDir(path: string): boolean {
  try {
    return Deno.statSync(path).isDirectory;
  } catch {
    return false;
  }
}

/**
 * Resolves `--model`: an existing folder path, else a folder of that name under `NORMTUNE_MODELS_DIR`,
 * else under the download cache (a hub id `org/name` is cached as `org--name`).
 */
export function modelDir(nameOrPath: string): string {
  const candidates = [
    nameOrPath,
    join(modelsDir(), nameOrPath),
    join(cacheDir(), nameOrPath.replaceAll("/", "--")),
  ];
  for (const c of candidates) {
    const p = isAbsolute(c) ? c : resolve(c);
    if (isDir(p)) return p;
  }
  throw new Error(
    `model "${nameOrPath}" not found: looked in ${candidates.map((c) => resolve(c)).join(", ")}. ` +
      `Set NORMTUNE_MODELS_DIR to a folder of model folders, pass a folder path, or run ` +
      `\`deno task normtune download ${nameOrPath.includes("/") ? nameOrPath : "ORG/NAME"}\`.`,
  );
}
