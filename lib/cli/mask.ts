/**
 * `normtune mask --fisher F1 [F2 ...] --top PCT [--union|--intersect [--trim]] [--random --seed S]
 * [--per global|module|layer] --out FILE`: a mask file (lib/tuning/masks.ts format) of the top PCT% of
 * LayerNorm elements by Fisher (files from `normtune fisher`).
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
import { readSafetensors, type TensorMap } from "../bert/safetensors.ts";
import { writeMask } from "../tuning/masks.ts";
import { readJsonIfExists } from "../util/atomic.ts";
import { isLayerNorm } from "../bert/names.ts";
import {
  combineMasks,
  countForPct,
  describeMask,
  type MaskGrouping,
  randomMask,
  summedNormalisedFisher,
  topMask,
} from "../analysis/masks.ts";
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
  if (!["global", "module", "layer"].includes(per)) {
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

  const fishers: TensorMap[] = [];
  for (const f of files) fishers.push(await readSafetensors(f));
  // The JSON summary `normtune fisher` writes beside each file names its task.
  const tasks: (string | null)[] = [];
  for (const f of files) {
    const summary = await readJsonIfExists<{ task?: string }>(f.replace(/\.safetensors$/, "") + ".json");
    tasks.push(summary?.task ?? null);
  }

  let mask: TensorMap;
  let method: string;
  if (flags.bool("random")) {
    mask = randomMask(fishers[0], pct, flags.number("seed"), { per });
    method = "random";
  } else if (!combine || fishers.length === 1) {
    mask = topMask(fishers[0], pct, { per });
    method = "fisher";
  } else if (flags.bool("trim")) {
    // Union, then keep exactly k% by summed normalised Fisher (outside the union scores -1).
    const union = combineMasks(fishers.map((f) => topMask(f, pct, { per })), "union");
    const summed = summedNormalisedFisher(fishers);
    for (const [name, t] of summed) {
      const m = union.get(name);
      for (let i = 0; i < t.data.length; i++) if (!m || m.data[i] === 0) t.data[i] = -1;
    }
    mask = topMask(summed, pct, { per });
    method = "fisher-union-trimmed";
  } else {
    mask = combineMasks(fishers.map((f) => topMask(f, pct, { per })), combine);
    method = `fisher-${combine}`;
  }

  let candidates = 0;
  for (const [name, t] of fishers[0]) if (isLayerNorm(name)) candidates += t.data.length;
  const d = describeMask(mask);
  const info = {
    method,
    top: pct,
    per,
    ...(flags.bool("random") ? { seed: flags.number("seed") } : {}),
    fisher: files,
    tasks,
    ...(tasks.length === 1 && tasks[0] ? { task: tasks[0] } : {}),
    candidates,
    target: countForPct(candidates, pct),
    selected: d.selected,
    share: candidates ? d.selected / candidates : 0,
    byLayer: d.byLayer,
    byKind: d.byKind,
    byLnType: d.byLnType,
  };
  const out = flags.string("out");
  await writeMask(out, mask, info);
  console.log(
    `${out}: ${d.selected} of ${candidates} LayerNorm elements (${method}, top ${pct}%, per ${per})`,
  );
  console.log(
    JSON.stringify({ byLayer: d.byLayer, byKind: d.byKind, byLnType: d.byLnType, byTensor: d.byTensor }),
  );
}
