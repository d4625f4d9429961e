/**
 * The weights of a model folder, in whichever of the three formats the Hugging Face hub serves them,
 * preferred in the order transformers prefers them: `model.safetensors`, sharded safetensors
 * (`model.safetensors.index.json` + shards), `pytorch_model.bin` (torch.save's zip + pickle, or its
 * legacy format). The hub
 * download (lib/bert/hub.ts) fetches in the same order, so what it fetched is what loads.
 *
 * ```ts
 * const { format, path, tensors } = await readWeights("models/bert", { skip: (n) => n.startsWith("cls.") });
 * ```
 */
import { join } from "node:path";
import { readPytorchBin } from "./pytorch.ts";
import { type ReadOptions, readSafetensors, type TensorMap } from "./safetensors.ts";
import { readShardedSafetensors, SHARD_INDEX } from "./sharded.ts";
import { exists } from "../util/paths.ts";

export type WeightsFormat = "safetensors" | "sharded safetensors" | "pytorch_model.bin";

/** Each format's file (for sharded safetensors: the index), in order of preference. */
export const WEIGHTS_FILES: readonly { format: WeightsFormat; file: string }[] = [
  { format: "safetensors", file: "model.safetensors" },
  { format: "sharded safetensors", file: SHARD_INDEX },
  { format: "pytorch_model.bin", file: "pytorch_model.bin" },
];

/** The preferred weights file in `dir`, or an error listing what was looked for. */
export async function findWeights(dir: string): Promise<{ format: WeightsFormat; path: string }> {
  for (const { format, file } of WEIGHTS_FILES) {
    const path = join(dir, file);
    if (await exists(path)) return { format, path };
  }
  let hint = "";
  for (const other of ["tf_model.h5", "flax_model.msgpack"]) {
    if (await exists(join(dir, other))) {
      hint = ` (found ${other}: convert it in Python with ` +
        `\`AutoModel.from_pretrained(dir).save_pretrained(dir, safe_serialization=True)\`)`;
      break;
    }
  }
  throw new Error(`${dir}: no weights: expected ${WEIGHTS_FILES.map((w) => w.file).join(", ")}${hint}`);
}

/** Reads the preferred weights of `dir`; `opts.skip` drops tensors before decoding them. */
export async function readWeights(
  dir: string,
  opts: ReadOptions = {},
): Promise<{ format: WeightsFormat; path: string; tensors: TensorMap }> {
  const { format, path } = await findWeights(dir);
  const read = format === "safetensors"
    ? readSafetensors
    : format === "sharded safetensors"
    ? readShardedSafetensors
    : readPytorchBin;
  return { format, path, tensors: await read(path, opts) };
}
