/**
 * File checksums: sha256 and size of a whole file, streamed (deltas and Fisher files can be hundreds of
 * MB). Results records carry them for their artefacts, and a run's metrics for its delta, so a file that
 * was truncated or replaced is noticed before anything reads it.
 *
 * ```ts
 * await fileChecksum("runs/x/delta.safetensors"); // { sha256: "9f2c...", bytes: 17556 }
 * ```
 */
import { createHash } from "node:crypto";

export interface Checksum {
  sha256: string;
  bytes: number;
}

/** sha256 and size of the file; a file that cannot be read is an error naming it. */
export async function fileChecksum(path: string): Promise<Checksum> {
  let file: Deno.FsFile;
  try {
    file = await Deno.open(path);
  } catch (err) {
    throw new Error(`${path}: cannot read (${(err as Error).message})`);
  }
  const hash = createHash("sha256");
  let bytes = 0;
  // The readable stream closes the file when it ends.
  for await (const chunk of file.readable) {
    hash.update(chunk);
    bytes += chunk.length;
  }
  return { sha256: hash.digest("hex"), bytes };
}

/**
 * Why the file at `path` is not the one `expected` describes (missing, other size, other content), or
 * `undefined` when it is. The size is compared first, so a truncated file costs no hashing.
 */
export async function checksumMismatch(path: string, expected: Checksum): Promise<string | undefined> {
  let stat: Deno.FileInfo;
  try {
    stat = await Deno.stat(path);
  } catch {
    return `${path} is missing`;
  }
  if (stat.size !== expected.bytes) {
    return `${path} has ${stat.size} bytes, ${expected.bytes} were written`;
  }
  const now = await fileChecksum(path);
  if (now.sha256 !== expected.sha256) {
    return `${path} does not match the sha256 recorded when it was written (changed since)`;
  }
  return undefined;
}
