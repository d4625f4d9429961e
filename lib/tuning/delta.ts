/**
 * Delta files: the parameters a fine-tuning run changed, and nothing else, so a run's output is small
 * (a few KB for LayerNorm-only) and the base checkpoint is stored once.
 *
 * Format: safetensors with the full tensors (Hugging Face names) of every trained parameter (for masks,
 * the whole tensor of each masked parameter), the task head, and any parameter the run initialised fresh
 * (a pooler missing from the base), so that base + delta gives exactly the fine-tuned weights. A run from
 * random initialisation (`init: "random"` in the info) initialised every tensor, so its delta holds them all. Metadata
 * key `normtune` holds a JSON object (`DeltaInfo`). Written deterministically: the same weights give the
 * same bytes.
 *
 * ```ts
 * const ck = await loadWithDelta("../shared/models/bert-tiny-mlm", "runs/x/delta.safetensors");
 * await saveCheckpoint("tuned", ck, { vocabFrom: "../shared/models/bert-tiny-mlm" });
 * ```
 */
import { type Checkpoint, loadCheckpoint } from "../bert/checkpoint.ts";
import { CLASSIFIER } from "../bert/names.ts";
import {
  nonFiniteTensor,
  readSafetensorsWithMetadata,
  type TensorMap,
  writeSafetensors,
} from "../bert/safetensors.ts";

export const DELTA_METADATA_KEY = "normtune";

export interface DeltaInfo {
  kind: "delta";
  task: string;
  mode: string;
  numLabels: number;
  /** The base model folder the run started from. */
  baseModel: string;
  /** Names that were trained (the rest of the file is the head and fresh initialisations). */
  trained: string[];
  [key: string]: unknown;
}

/** Writes a delta file (atomic, deterministic). */
export async function writeDelta(path: string, tensors: TensorMap, info: DeltaInfo): Promise<void> {
  await writeSafetensors(path, tensors, { [DELTA_METADATA_KEY]: JSON.stringify(info) });
}

/** Reads a delta file; `numLabels` comes from its classifier, which every delta holds. */
export async function readDelta(
  path: string,
): Promise<{ tensors: TensorMap; info: Partial<DeltaInfo>; numLabels: number }> {
  const { tensors, metadata } = await readSafetensorsWithMetadata(path);
  const head = tensors.get(`${CLASSIFIER}.weight`);
  if (!head || head.shape.length !== 2) {
    throw new Error(
      `${path}: no "${CLASSIFIER}.weight" [numLabels, hidden] tensor; is this a normtune delta file?`,
    );
  }
  const bad = nonFiniteTensor(tensors);
  if (bad) throw new Error(`${path}: ${bad}; refusing to use a delta with non-finite weights`);
  let info: Partial<DeltaInfo> = {};
  const raw = metadata[DELTA_METADATA_KEY];
  if (raw !== undefined) {
    try {
      info = JSON.parse(raw);
    } catch (err) {
      throw new Error(`${path}: metadata "${DELTA_METADATA_KEY}" is not JSON (${(err as Error).message})`);
    }
  }
  return { tensors, info, numLabels: head.shape[0] };
}

/** The base checkpoint with the delta's tensors in place of its own. */
export async function loadWithDelta(
  baseDir: string,
  deltaFile: string,
  opts: { quiet?: boolean } = {},
): Promise<Checkpoint> {
  const { tensors, numLabels } = await readDelta(deltaFile);
  try {
    return await loadCheckpoint(baseDir, { numLabels, head: tensors, quiet: opts.quiet ?? true });
  } catch (err) {
    throw new Error(`applying ${deltaFile} to ${baseDir}: ${(err as Error).message}`);
  }
}

/** Base + delta: every parameter of the fine-tuned model. */
export async function applyDelta(baseDir: string, deltaFile: string): Promise<TensorMap> {
  return (await loadWithDelta(baseDir, deltaFile)).tensors;
}
