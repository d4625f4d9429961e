/**
 * The change operation: how much fine-tuning moved each component (lib/analysis/weight_change.ts), base
 * checkpoint vs a tuned model (a checkpoint folder, or base + delta), per component x layer x kind, with
 * the ranking over layers (paper Finding 1). `normtune change` and the study's `change` cells run it.
 *
 * What the base does not hold (a head, a missing pooler) was made up by the loader: it is left out of
 * the base, so it is measured from zero and flagged `baseMissing` (in the records, never in a ranking).
 *
 * ```ts
 * const r = await runChange({ base: "bert-tiny-mlm", delta: "runs/x/delta.safetensors" });
 * r.ranking[0].component;
 * ```
 */
import { loadCheckpoint } from "../bert/checkpoint.ts";
import { CLASSIFIER } from "../bert/names.ts";
import { readWeights } from "../bert/weights.ts";
import { loadWithDelta } from "../tuning/delta.ts";
import { modelDir } from "../util/paths.ts";
import {
  type ChangeRank,
  type ChangeRecord,
  computeChange,
  rankComponents,
} from "../analysis/weight_change.ts";

export interface ChangeConfig {
  /** The base model folder or name. */
  base: string;
  /** A fine-tuned checkpoint folder (or `delta`). */
  tuned?: string;
  /** A delta file applied to the base (or `tuned`). */
  delta?: string;
}

export interface ChangeRun {
  /** The resolved base folder. */
  base: string;
  /** Where the tuned model came from. */
  source: { delta: string } | { tuned: string };
  numLabels: number;
  records: ChangeRecord[];
  /** Components by mean |change| (classifier excluded). */
  ranking: ChangeRank[];
}

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

/** Runs a change configuration: loads both models and measures every parameter's change. */
export async function runChange(c: ChangeConfig): Promise<ChangeRun> {
  if ((c.tuned === undefined) === (c.delta === undefined)) {
    throw new Error("give exactly one of a tuned folder or a delta file");
  }
  const base = modelDir(c.base);
  let tuned, source: ChangeRun["source"];
  if (c.delta !== undefined) {
    tuned = await loadWithDelta(base, c.delta);
    source = { delta: c.delta };
  } else {
    const dir = modelDir(c.tuned!);
    tuned = await loadCheckpoint(dir, { numLabels: await numLabelsOf(dir), quiet: true });
    source = { tuned: dir };
  }
  const ck = await loadCheckpoint(base, { numLabels: tuned.numLabels, quiet: true });
  // What the base did not hold was made up by the loader: leave it out, so it counts from zero.
  for (const name of ck.initialized) ck.tensors.delete(name);
  const records = computeChange(ck.tensors, tuned.tensors);
  return { base, source, numLabels: tuned.numLabels, records, ranking: rankComponents(records) };
}
