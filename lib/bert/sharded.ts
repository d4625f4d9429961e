/**
 * Sharded safetensors, as `save_pretrained` writes checkpoints above its shard size:
 * `model.safetensors.index.json` (`{"metadata": {...}, "weight_map": {tensor: shard file}}`) beside the
 * shards (`model-00001-of-00002.safetensors`, ...), read here as one checkpoint.
 *
 * The index comes from the hub, so shard names are checked to be plain file names in the same folder
 * before anything opens or downloads them; a tensor the index places in one shard but that sits in
 * another (or in none) is an error naming both files.
 */
import { dirname, join } from "node:path";
import { exists } from "../util/paths.ts";
import { decodeSafetensors, readBytes, type ReadOptions, type TensorMap } from "./safetensors.ts";

export const SHARD_INDEX = "model.safetensors.index.json";

export interface ShardIndex {
  /** Shard file names in first-use order. */
  shards: string[];
  /** tensor name -> shard file name */
  weightMap: Map<string, string>;
}

/** A shard name must stay inside the model folder: no separators, no `.`/`..`. */
const SAFE_NAME = /^(?!\.{1,2}$)[A-Za-z0-9_.-]+$/;

/** Parses and checks an index file's text; `source` (its path) names it in errors. */
export function parseShardIndex(text: string, source: string): ShardIndex {
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch (err) {
    throw new Error(`${source}: not valid JSON (${(err as Error).message})`);
  }
  const map = (json as { weight_map?: unknown } | null)?.weight_map;
  if (typeof map !== "object" || map === null || Array.isArray(map)) {
    throw new Error(`${source}: no "weight_map" object (tensor name -> shard file)`);
  }
  const weightMap = new Map<string, string>();
  const shards = new Set<string>();
  for (const [name, shard] of Object.entries(map as Record<string, unknown>)) {
    if (typeof shard !== "string" || !SAFE_NAME.test(shard) || !shard.endsWith(".safetensors")) {
      throw new Error(
        `${source}: tensor "${name}" maps to ${JSON.stringify(shard)}, not a .safetensors file name ` +
          `in the same folder`,
      );
    }
    weightMap.set(name, shard);
    shards.add(shard);
  }
  if (weightMap.size === 0) throw new Error(`${source}: "weight_map" is empty`);
  return { shards: [...shards], weightMap };
}

/** Reads every shard an index names, one at a time, into one map (skipped tensors are not decoded). */
export async function readShardedSafetensors(indexPath: string, opts: ReadOptions = {}): Promise<TensorMap> {
  const index = parseShardIndex(new TextDecoder().decode(await readBytes(indexPath)), indexPath);
  const dir = dirname(indexPath);
  const tensors: TensorMap = new Map();
  const seen = new Set<string>();
  for (const shard of index.shards) {
    const path = join(dir, shard);
    if (!(await exists(path))) {
      throw new Error(`${path}: not found, but ${indexPath} lists it (an unfinished download? run it again)`);
    }
    const inShard: string[] = [];
    const { tensors: part } = decodeSafetensors(await readBytes(path), path, {
      skip: (name) => inShard.push(name) > 0 && (opts.skip?.(name) ?? false),
    });
    for (const name of inShard) {
      const listed = index.weightMap.get(name);
      if (listed !== shard) {
        throw new Error(
          `${path}: holds tensor "${name}", which ${indexPath} ` +
            (listed ? `places in ${listed}` : "does not list") + ` (index and shards disagree)`,
        );
      }
      seen.add(name);
    }
    for (const [name, t] of part) tensors.set(name, t);
  }
  const absent = [...index.weightMap].filter(([name]) => !seen.has(name));
  if (absent.length > 0) {
    const [name, shard] = absent[0];
    throw new Error(
      `${join(dir, shard)}: has no tensor "${name}" although ${indexPath} lists it there` +
        (absent.length > 1 ? ` (and ${absent.length - 1} more missing)` : ""),
    );
  }
  return tensors;
}
