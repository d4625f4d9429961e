/**
 * A run's data and starting point, from its identity: the checkpoint (or BERT's random initialisation,
 * seeded by the run's seed), the trained selection (mode and mask), and the train and dev splits encoded
 * unpadded (batches pad to their own longest row). Subsets use seed 0, so runs compared across modes and
 * seeds see the same examples.
 *
 * ```ts
 * const run = await prepare(identity, { glueDir, note: console.error });
 * run.train.rows.length; run.totalSteps;
 * ```
 */
import type { EncodedSet } from "../bert/batch.ts";
import { type Checkpoint, loadCheckpoint } from "../bert/checkpoint.ts";
import { randomCheckpoint } from "../bert/init.ts";
import { parameterShapes } from "../bert/names.ts";
import type { TensorMap } from "../bert/safetensors.ts";
import { WordPieceTokenizer } from "../bert/tokenizer.ts";
import { getTask, type GlueTask, loadSplit } from "../glue/mod.ts";
import { batchesPerEpoch } from "./batches.ts";
import { encodeExamples } from "./evaluate.ts";
import { readMask } from "./mask_file.ts";
import { countTrainable, type Selection, selectTrainable, type TrainableCounts } from "./modes.ts";
import type { RunIdentity } from "./run_folder.ts";

/** Everything a run needs besides the model: data, selection, schedule. */
export interface Prepared {
  task: GlueTask;
  numLabels: number;
  ck: Checkpoint;
  selection: Selection;
  trainable: TrainableCounts;
  maskInfo?: Record<string, unknown>;
  train: EncodedSet;
  dev: EncodedSet;
  perEpoch: number;
  totalSteps: number;
}

/** Where the data comes from and how loading talks. */
export interface DataOptions {
  glueDir?: string;
  quiet?: boolean;
  /** Called with a line worth telling (rows skipped). */
  note: (text: string) => void;
}

/** Loads the checkpoint (or its random twin), the mask and selection, and the encoded train and dev sets. */
export async function prepare(identity: RunIdentity, o: DataOptions): Promise<Prepared> {
  const task = getTask(identity.task);
  const numLabels = task.numLabels;
  const loaded = await loadCheckpoint(identity.model, { numLabels, seed: identity.seed, quiet: o.quiet });
  const ck = identity.init === "random" ? randomCheckpoint(loaded, identity.seed) : loaded;
  const shapes = parameterShapes(ck.config, numLabels);
  let maskInfo: Record<string, unknown> | undefined;
  let masks: TensorMap | undefined;
  if (identity.mask) ({ masks, info: maskInfo } = await readMask(identity.mask, shapes));
  const selection = selectTrainable(identity.mode, shapes.keys(), masks);
  const tokenizer = await WordPieceTokenizer.fromModelDir(identity.model);
  const train = await loadEncoded(task, "train", identity.maxTrain, identity, tokenizer, o);
  const dev = await loadEncoded(task, task.mainSplit, identity.maxDev, identity, tokenizer, o);
  if (train.rows.length === 0) throw new Error(`${task.name} train split has no examples`);
  if (dev.rows.length === 0) throw new Error(`${task.name} ${task.mainSplit} split has no examples`);
  const perEpoch = batchesPerEpoch(train.rows.length, identity.batchSize);
  return {
    task,
    numLabels,
    ck,
    selection,
    trainable: countTrainable(selection, shapes),
    maskInfo,
    train,
    dev,
    perEpoch,
    totalSteps: perEpoch * identity.epochs,
  };
}

async function loadEncoded(
  task: GlueTask,
  split: string,
  max: number | null,
  identity: RunIdentity,
  tokenizer: WordPieceTokenizer,
  o: DataOptions,
): Promise<EncodedSet> {
  const { examples, skipped } = await loadSplit(task, split, {
    glueDir: o.glueDir,
    maxExamples: max ?? undefined,
    seed: 0,
  });
  if (skipped > 0) o.note(`${task.name} ${split}: skipped ${skipped} malformed rows`);
  return encodeExamples(tokenizer, examples, identity.maxLen);
}
