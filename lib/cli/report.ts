/**
 * `normtune report [NOTEBOOK...] [--notebooks DIR] [--out DIR] [--execute] [--timeout S] [--no-input]`:
 * notebooks -> offline HTML reports plus `index.html` (see `lib/report/export.ts`). Without `--execute`
 * the notebooks are exported with the outputs they were saved with; with it they are run headless with the
 * Deno kernel first, and the executed copies are kept beside the HTML as `<out>/<name>.ipynb`.
 */
import { join, resolve } from "node:path";
import { buildReports } from "../report/export.ts";
import { ROOT } from "../util/paths.ts";
import { parseFlags } from "./flags.ts";

export async function run(args: string[]): Promise<void> {
  const f = parseFlags(args, {
    notebooks: "string",
    out: "string",
    execute: "boolean",
    timeout: "number",
    "no-input": "boolean",
  });
  await buildReports({
    notebooksDir: resolve(f.string("notebooks", join(ROOT, "notebooks"))),
    outDir: resolve(f.string("out", join(ROOT, "reports"))),
    execute: f.bool("execute"),
    names: f.positionals.length ? f.positionals : undefined,
    timeoutS: f.optionalNumber("timeout"),
    noInput: f.bool("no-input"),
  });
}
