/**
 * `normtune mask --fisher F1 [F2 ...] --top PCT [--union|--intersect [--trim]] [--random --seed S]
 * [--per global|module|layer] --out FILE`: a mask file (lib/tuning/mask_file.ts format) of the top PCT% of
 * LayerNorm elements by Fisher (files from `normtune fisher`). Thin: the work is `runMask` in
 * lib/jobs/mask_job.ts.
 *
 * - Several Fisher files need `--union` or `--intersect`: one top-k% mask per file, then combined.
 *   `--union --trim` re-trims the union to exactly k% by summed normalised Fisher.
 * - `--random --seed S`: a random mask of the same size per ranking group (the shapes come from the first
 *   Fisher file; the scores are not used).
 *
 * The file's metadata records how it was made and where the selected elements sit (`describeMask`),
 * which is also printed.
 *
 * ```sh
 * deno task normtune mask --fisher rte.safetensors --top 10 --out rte-top10.safetensors
 * deno task normtune mask --fisher a.safetensors --fisher b.safetensors --top 10 --union --out ab.safetensors
 * ```
 */
import { readJsonIfExists } from "../util/atomic.ts";
import type { MaskGrouping } from "../analysis/mask_selection.ts";
import { MASK_GROUPINGS, type MaskMethod, runMask } from "../jobs/mask_job.ts";
import { parseFlags, UsageError } from "./flags.ts";

export async function run(args: string[]): Promise<void> {
  const flags = parseFlags(args, {
    fisher: "strings",
    top: "number",
    union: "boolean",
    intersect: "boolean",
    trim: "boolean",
    random: "boolean",
    seed: "number",
    per: "string",
    out: "string",
  }, ["top", "out"]);
  // `--fisher a b` leaves b as a positional: accept both spellings.
  const files = [...flags.strings("fisher"), ...flags.positionals];
  if (files.length === 0) throw new UsageError("missing required flag --fisher FILE");
  const pct = flags.number("top");
  if (!(pct > 0 && pct <= 100)) throw new UsageError(`--top must be a percentage in (0, 100], got ${pct}`);
  const per = flags.string("per", "global") as MaskGrouping;
  if (!MASK_GROUPINGS.includes(per)) {
    throw new UsageError(`--per must be global, module or layer, got "${per}"`);
  }
  if (flags.bool("union") && flags.bool("intersect")) {
    throw new UsageError("--union and --intersect exclude each other");
  }
  const combine = flags.bool("union") ? "union" : flags.bool("intersect") ? "intersect" : undefined;
  if (files.length > 1 && !combine && !flags.bool("random")) {
    throw new UsageError(
      `${files.length} Fisher files given: say how to combine them with --union or --intersect`,
    );
  }
  if (flags.bool("trim") && combine !== "union") throw new UsageError("--trim applies to --union only");
  if (flags.bool("random") && !flags.has("seed")) throw new UsageError("--random needs --seed S");

  // The JSON summary `normtune fisher` writes beside each file names its task.
  const tasks: (string | null)[] = [];
  for (const f of files) {
    const summary = await readJsonIfExists<{ task?: string }>(f.replace(/\.safetensors$/, "") + ".json");
    tasks.push(summary?.task ?? null);
  }
  const random = flags.bool("random");
  // One file with --union or --intersect is that file's top mask.
  const method: MaskMethod = random ? "random" : combine && files.length > 1 ? combine : "fisher";
  const trim = method === "union" && flags.bool("trim");
  const label = method === "random" || method === "fisher"
    ? method
    : trim
    ? "fisher-union-trimmed"
    : `fisher-${method}`;
  const out = flags.string("out");
  const { summary, description: d } = await runMask({
    method,
    pct,
    per,
    ...(random ? { seed: flags.number("seed") } : {}),
    trim,
    fisher: method === "random" ? files.slice(0, 1) : files,
    out,
    record: {
      method: label,
      top: pct,
      per,
      ...(random ? { seed: flags.number("seed") } : {}),
      fisher: files,
      tasks,
      ...(tasks.length === 1 && tasks[0] ? { task: tasks[0] } : {}),
    },
  });
  console.log(
    `${out}: ${summary.selected} of ${summary.candidates} LayerNorm elements (${label}, top ${pct}%, per ${per})`,
  );
  console.log(
    JSON.stringify({ byLayer: d.byLayer, byKind: d.byKind, byLnType: d.byLnType, byTensor: d.byTensor }),
  );
}
