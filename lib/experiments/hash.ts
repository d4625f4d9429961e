/**
 * Identities: a cell's id is a short hash of the canonical JSON of its whole configuration, so the same
 * configuration always lands in the same result file, and any change (hyperparameter, data file, model
 * weights, backend, code version) lands in a new one. Also the content identities of model folders and data
 * files that go into those configurations.
 *
 * ```ts
 * canonicalJson({ b: 1, a: [2, { d: 3, c: 4 }] }); // '{"a":[2,{"c":4,"d":3}],"b":1}'
 * hashId({ kind: "finetune", lr: 1e-3 });           // 16 hex characters
 * await modelIdentity("../shared/models/bert-tiny-mlm"); // { sha256: "...", bytes: 17737792 }
 * ```
 */
import { createHash, type Hash } from "node:crypto";
import { parseShardIndex } from "../bert/sharded.ts";
import { findWeights } from "../bert/weights.ts";
import { join } from "node:path";
import { fileChecksum } from "../util/checksum.ts";

/** Hex characters of a cell id (64 bits: collisions are not a concern for grids of thousands). */
export const ID_LENGTH = 16;

/**
 * JSON with object keys sorted at every depth and no whitespace. `undefined` members are dropped (as
 * JSON.stringify does), so an optional field left out and one set to `undefined` hash alike. Non-finite
 * numbers, functions, symbols and bigints are errors: they have no JSON form and would silently collide.
 */
export function canonicalJson(value: unknown): string {
  return walk(value, "$");
}

function walk(value: unknown, path: string): string {
  if (value === null) return "null";
  switch (typeof value) {
    case "number":
      if (!Number.isFinite(value)) {
        throw new Error(`canonicalJson: ${path} is ${value}, which has no JSON form`);
      }
      return JSON.stringify(value);
    case "string":
    case "boolean":
      return JSON.stringify(value);
    case "object": {
      if (Array.isArray(value)) {
        return `[${value.map((v, i) => (v === undefined ? "null" : walk(v, `${path}[${i}]`))).join(",")}]`;
      }
      const obj = value as Record<string, unknown>;
      const keys = Object.keys(obj).filter((k) => obj[k] !== undefined).sort();
      return `{${keys.map((k) => `${JSON.stringify(k)}:${walk(obj[k], `${path}.${k}`)}`).join(",")}}`;
    }
    default:
      throw new Error(`canonicalJson: ${path} is a ${typeof value}, which has no JSON form`);
  }
}

export function sha256Hex(data: Uint8Array | string): string {
  return createHash("sha256").update(data).digest("hex");
}

/** The first `ID_LENGTH` hex characters of sha256(canonicalJson(value)). */
export function hashId(value: unknown): string {
  return sha256Hex(canonicalJson(value)).slice(0, ID_LENGTH);
}

export interface FileIdentity {
  /** sha256 of the whole file (data files) or of the sampled parts (weights; see `modelIdentity`). */
  sha256: string;
  bytes: number;
}

// Keyed by path, size and mtime: a file replaced in place gets hashed again.
const cache = new Map<string, FileIdentity>();

async function statOf(path: string): Promise<Deno.FileInfo> {
  try {
    return await Deno.stat(path);
  } catch (err) {
    throw new Error(`${path}: cannot read (${(err as Error).message})`);
  }
}

async function cached(
  path: string,
  make: (stat: Deno.FileInfo) => Promise<FileIdentity>,
  extraKey = "",
): Promise<FileIdentity> {
  const stat = await statOf(path);
  const key = `${path}\0${stat.size}\0${stat.mtime?.getTime() ?? 0}\0${extraKey}`;
  const hit = cache.get(key);
  if (hit) return hit;
  const id = await make(stat);
  cache.set(key, id);
  return id;
}

/** sha256 and size of a whole file (GLUE TSVs: a few MB, hashed in well under a second). */
export function fileIdentity(path: string): Promise<FileIdentity> {
  return cached(path, () => fileChecksum(path));
}

const SAMPLE = 1 << 20;

/**
 * The identity of a model folder without reading all of a multi-GB weights file: sha256 over config.json,
 * the weights file's size, its first MB (the safetensors header: every name, shape and offset) and its
 * last MB. Two checkpoints that differ only in the middle of the file would collide; for released or
 * trained checkpoints that does not happen in practice, and reading 440 MB per grid build would.
 * Whatever format `findWeights` picks is hashed this way; sharded safetensors hash their index and then
 * each shard's size and sampled ends, in the index's order.
 */
export async function modelIdentity(dir: string): Promise<FileIdentity> {
  const { format, path: weights } = await findWeights(dir);
  const configStat = await statOf(join(dir, "config.json"));
  const configKey = `${configStat.size}\0${configStat.mtime?.getTime() ?? 0}`;
  return cached(weights, async (stat) => {
    const hash = createHash("sha256");
    let config: Uint8Array;
    try {
      config = await Deno.readFile(join(dir, "config.json"));
    } catch (err) {
      throw new Error(`${join(dir, "config.json")}: cannot read (${(err as Error).message})`);
    }
    hash.update(config);
    if (format !== "sharded safetensors") {
      await hashSampled(hash, weights, stat.size);
      return { sha256: hash.digest("hex"), bytes: stat.size };
    }
    const indexText = await Deno.readTextFile(weights);
    hash.update(indexText);
    let bytes = stat.size;
    for (const shard of parseShardIndex(indexText, weights).shards) {
      const path = join(dir, shard);
      const size = (await statOf(path)).size;
      await hashSampled(hash, path, size);
      bytes += size;
    }
    return { sha256: hash.digest("hex"), bytes };
  }, configKey);
}

/** Adds a file's size, its first MB and its last MB to `hash`. */
async function hashSampled(hash: Hash, path: string, size: number): Promise<void> {
  hash.update(`\0${size}\0`);
  using file = await Deno.open(path);
  const readAt = async (offset: number, length: number) => {
    const buf = new Uint8Array(length);
    await file.seek(offset, Deno.SeekMode.Start);
    let got = 0;
    while (got < length) {
      const n = await file.read(buf.subarray(got));
      if (n === null) break;
      got += n;
    }
    return buf.subarray(0, got);
  };
  hash.update(await readAt(0, Math.min(SAMPLE, size)));
  if (size > SAMPLE) hash.update(await readAt(Math.max(SAMPLE, size - SAMPLE), SAMPLE));
}
