/**
 * Where tests find the shared material (GLUE files, small checkpoints). `.ci/run` sets GLUE_DIR and
 * NORMTUNE_MODELS_DIR to `../shared/...`; without them the same defaults are tried. A missing folder
 * fails the test with a message that says what to set: tests are never skipped.
 */
import { join, resolve } from "node:path";
import { ROOT } from "../lib/util/paths.ts";

function mustExist(path: string, what: string, envName: string): string {
  try {
    if (Deno.statSync(path).isDirectory) return path;
  } catch {
    // reported below
  }
  throw new Error(`${what} not found at ${path}: set ${envName} (CI sets it to ../shared/...)`);
}

/** A model folder from the shared models (default `bert-tiny-mlm`). */
export function sharedModel(name = "bert-tiny-mlm"): string {
  const dir = Deno.env.get("NORMTUNE_MODELS_DIR") ?? join(ROOT, "..", "shared", "models");
  return mustExist(resolve(dir, name), `model ${name}`, "NORMTUNE_MODELS_DIR");
}

/** The GLUE root holding one folder per task. */
export function sharedGlue(): string {
  const dir = Deno.env.get("GLUE_DIR") ?? join(ROOT, "..", "shared", "glue");
  return mustExist(resolve(dir), "GLUE data", "GLUE_DIR");
}

/** A fresh temporary folder, removed by the returned function. */
export async function tempDir(): Promise<[string, () => Promise<void>]> {
  const dir = await Deno.makeTempDir({ prefix: "normtune-test-" });
  return [dir, () => Deno.remove(dir, { recursive: true })];
}
