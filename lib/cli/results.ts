/**
 * `normtune results [--profile P] [--results DIR] [--out RESULTS.md]`: writes the study's outcome as
 * Markdown: what produced it (model, data, seeds), the main table and the six findings' verdicts, every
 * number traced to the cell records it came from (lib/report/findings.ts). Reads only the small result
 * JSON files, so it works on a fresh clone with committed results. Prints to stdout without `--out`.
 *
 * ```sh
 * deno task normtune results --profile cpu --out RESULTS.md
 * ```
 */
import { relative } from "node:path";
import { gridProgress, loadResults } from "../experiments/load.ts";
import { profileName } from "../experiments/profiles.ts";
import { renderResultsMarkdown } from "../report/findings_markdown.ts";
import { writeFileAtomic } from "../util/atomic.ts";
import { ROOT } from "../util/paths.ts";
import { parseFlags, UsageError } from "./flags.ts";

export async function run(args: string[]): Promise<void> {
  const f = parseFlags(args, { profile: "string", results: "string", out: "string" });
  if (f.positionals.length) throw new UsageError(`unexpected argument "${f.positionals[0]}"`);
  const profile = f.optionalString("profile");
  const out = f.optionalString("out");
  const results = f.optionalString("results");
  const data = await loadResults({ profile: profileName(profile), dir: results });
  // Paths inside the text are relative to the project, so the committed file reads the same anywhere.
  const dir = relative(ROOT, data.dir) || ".";
  const body = renderResultsMarkdown({ ...data, dir }, gridProgress(data));
  const command = `deno task normtune results --profile ${data.profile}` +
    `${results ? ` --results ${dir}` : ""}${out ? ` --out ${out}` : ""}`;
  const text =
    `# Results\n\nWritten by \`${command}\` from the cell records alone; \`deno task reproduce\` ` +
    "recomputes them (finished cells are skipped) and renders the notebooks behind each finding " +
    `(\`reports/index.html\`).\n\n${body}`;
  if (out) {
    await writeFileAtomic(out, text);
    console.error(`wrote ${out}`);
  } else {
    console.log(text);
  }
}
