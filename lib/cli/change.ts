/**
 * `normtune change --base DIR (--tuned DIR | --delta FILE) --out FILE.json`: how much fine-tuning moved
 * each component (mean |Δ| per element, and relative to mean |θ0|), per component x layer x kind, with
 * the rankings over layers (paper Finding 1). The tuned model is a checkpoint folder, or base + delta.
 *
 * A head (or pooler) the base lacks is measured from zero and flagged `baseMissing`; it stays in the
 * records but never in a ranking.
 *
 * Thin: the work is `runChange` in lib/jobs/change_job.ts.
 *
 * ```sh
 * deno task normtune change --base bert-tiny-mlm --delta runs/x/delta.safetensors --out change.json
 * ```
 */
import { writeJsonAtomic } from "../util/atomic.ts";
import { rankComponents } from "../analysis/weight_change.ts";
import { runChange } from "../jobs/change_job.ts";
import { parseFlags, UsageError } from "./flags.ts";

export async function run(args: string[]): Promise<void> {
  const flags = parseFlags(args, { base: "string", tuned: "string", delta: "string", out: "string" }, [
    "base",
    "out",
  ]);
  if (flags.has("tuned") === flags.has("delta")) {
    throw new UsageError("give exactly one of --tuned DIR or --delta FILE");
  }
  const r = await runChange({
    base: flags.string("base"),
    tuned: flags.optionalString("tuned"),
    delta: flags.optionalString("delta"),
  });
  const out = flags.string("out");
  await writeJsonAtomic(out, {
    base: r.base,
    ...r.source,
    numLabels: r.numLabels,
    records: r.records,
    ranking: r.ranking,
    rankingByKind: rankComponents(r.records, { by: "component+kind" }),
    rankingByGroup: rankComponents(r.records, { by: "group" }),
    rankingRelative: rankComponents(r.records, { sortBy: "relativeChange" }),
  });
  console.log(`component ranking by mean |change| (classifier excluded), written to ${out}:`);
  for (const x of r.ranking) {
    console.log(
      `  ${x.component.padEnd(28)} mean|Δ| ${x.meanAbsChange.toExponential(3)}  ` +
        `relative ${x.relativeChange === null ? "-" : x.relativeChange.toExponential(3)}  n ${x.n}`,
    );
  }
}
