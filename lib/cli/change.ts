/**
 * `normtune change --base DIR (--tuned DIR | --delta FILE) --out FILE.json`: how much fine-tuning moved
 * each component (mean |Δ| per element, and relative to mean |θ0|), per component x layer x kind, with
 * the rankings over layers (paper Finding 1). The tuned model is a checkpoint folder, or base + delta.
 *
 * A head (or pooler) the base lacks is measured from zero and flagged `baseMissing`; it stays in the
 * records but never in a ranking.
 *
 * ```sh
 * deno task normtune change --base bert-tiny-mlm --delta runs/x/delta.safetensors --out change.json
 * ```
 */
import { loadCheckpoint } from "../bert/checkpoint.ts";
import { CLASSIFIER } from "../bert/names.ts";
import { readWeights } from "../bert/weights.ts";
import { loadWithDelta } from "../tuning/delta.ts";
import { writeJsonAtomic } from "../util/atomic.ts";
import { modelDir } from "../util/paths.ts";
import { computeChange, rankComponents } from "../analysis/change.ts";
import { parseFlags, UsageError } from "./flags.ts";

/** The number of labels of a fine-tuned folder: its classifier's rows. */
async function numLabelsOf(dir: string): Promise<number> {
  const { path: file, tensors } = await readWeights(dir, { skip: (name) => name !== `${CLASSIFIER}.weight` });
  const head = tensors.get(`${CLASSIFIER}.weight`);
  if (!head || head.shape.length !== 2) {
    throw new Error(
      `${file}: no "${CLASSIFIER}.weight" [numLabels, hidden] tensor; is it a fine-tuned classifier?`,
    );
  }
  return head.shape[0];
}

export async function run(args: string[]): Promise<void> {
  const flags = parseFlags(args, { base: "string", tuned: "string", delta: "string", out: "string" }, [
    "base",
    "out",
  ]);
  if (flags.has("tuned") === flags.has("delta")) {
    throw new UsageError("give exactly one of --tuned DIR or --delta FILE");
  }
  const baseDir = modelDir(flags.string("base"));
  let tuned, source: Record<string, string>;
  if (flags.has("delta")) {
    const delta = flags.string("delta");
    tuned = await loadWithDelta(baseDir, delta);
    source = { delta };
  } else {
    const dir = modelDir(flags.string("tuned"));
    tuned = await loadCheckpoint(dir, { numLabels: await numLabelsOf(dir), quiet: true });
    source = { tuned: dir };
  }
  const base = await loadCheckpoint(baseDir, { numLabels: tuned.numLabels, quiet: true });
  // What the base did not hold was made up by the loader: leave it out, so it counts from zero.
  for (const name of base.initialized) base.tensors.delete(name);

  const records = computeChange(base.tensors, tuned.tensors);
  const ranking = rankComponents(records);
  const out = flags.string("out");
  await writeJsonAtomic(out, {
    base: baseDir,
    ...source,
    numLabels: tuned.numLabels,
    records,
    ranking,
    rankingByKind: rankComponents(records, { by: "component+kind" }),
    rankingByGroup: rankComponents(records, { by: "group" }),
    rankingRelative: rankComponents(records, { sortBy: "relativeChange" }),
  });
  console.log(`component ranking by mean |change| (classifier excluded), written to ${out}:`);
  for (const r of ranking) {
    console.log(
      `  ${r.component.padEnd(28)} mean|Δ| ${r.meanAbsChange.toExponential(3)}  ` +
        `relative ${r.relativeChange === null ? "-" : r.relativeChange.toExponential(3)}  n ${r.n}`,
    );
  }
}
