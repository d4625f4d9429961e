/**
 * `deno task normtune glue <subcommand>`: GLUE data on disk.
 *
 * - `glue download [TASK ...] [--glue-dir DIR] [--force]`: fetch the official files (all nine tasks when
 *   none is named) into GLUE_DIR (default data/glue). NORMTUNE_GLUE_URL points at a mirror.
 * - `glue list [--glue-dir DIR]`: each task, its folder, and whether its train/dev files are there.
 */
import { join } from "node:path";
import { parseFlags, UsageError } from "./flags.ts";
import { glueDir } from "../util/paths.ts";
import { downloadTask } from "../glue/download.ts";
import { getTask, type GlueTask, TASK_NAMES, TASKS } from "../glue/tasks.ts";

const USAGE = "usage: deno task normtune glue download [TASK ...] [--glue-dir DIR] [--force]\n" +
  "       deno task normtune glue list [--glue-dir DIR]\n" +
  `tasks: ${TASK_NAMES.join(", ")}`;

function tasksFrom(names: string[]): GlueTask[] {
  if (names.length === 0) return TASK_NAMES.map((n) => TASKS[n]);
  return names.map((n) => {
    try {
      return getTask(n);
    } catch (err) {
      throw new UsageError((err as Error).message);
    }
  });
}

async function download(args: string[]): Promise<void> {
  const flags = parseFlags(args, { "glue-dir": "string", force: "boolean" });
  const tasks = tasksFrom(flags.positionals);
  const failed: string[] = [];
  for (const task of tasks) {
    try {
      await downloadTask(task, {
        glueDir: flags.optionalString("glue-dir"),
        force: flags.bool("force"),
        log: (m) => console.error(m),
      });
    } catch (err) {
      // Keep going: one unreachable archive should not stop the others.
      console.error(`${task.name}: ${(err as Error).message}`);
      failed.push(task.name);
    }
  }
  if (failed.length > 0) throw new Error(`could not download ${failed.join(", ")} (see above)`);
}

function list(args: string[]): void {
  const flags = parseFlags(args, { "glue-dir": "string" });
  const root = glueDir(flags.optionalString("glue-dir"));
  console.log(`GLUE root: ${root}`);
  for (const task of TASK_NAMES.map((n) => TASKS[n])) {
    const files = [task.train, ...Object.values(task.dev)];
    const missing = files.filter((f) => {
      try {
        return !Deno.statSync(join(root, task.folder, f)).isFile;
      } catch {
        return true;
      }
    });
    const state = missing.length === 0 ? "ok" : `missing ${missing.join(", ")}`;
    console.log(`  ${task.name.padEnd(6)} ${task.folder}/  ${state}`);
  }
}

export async function run(args: string[]): Promise<void> {
  const [sub, ...rest] = args;
  if (sub === "download") return await download(rest);
  if (sub === "list") return list(rest);
  if (sub === "help" || sub === "--help" || sub === "-h") {
    console.log(USAGE);
    return;
  }
  throw new UsageError(sub ? `unknown glue subcommand "${sub}"\n${USAGE}` : USAGE);
}
