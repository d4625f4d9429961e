/**
 * A small zip reader, so that `glue download` needs no dependency: the central directory is parsed from
 * the end of the file, and each entry is streamed from disk through `DecompressionStream("deflate-raw")`
 * (or copied when stored) into its file, checking size and CRC-32. Memory stays flat even for MNLI's
 * ~300 MB zip.
 *
 * Supports stored (0) and deflate (8) entries of ordinary (non-ZIP64, unencrypted) archives, which is what
 * the GLUE zips are. Entry names that would escape the destination (`..`, absolute paths) are errors.
 *
 * Entries can also be read into memory (`listZip` + `readZipEntry`), which is how pytorch_model.bin (a zip
 * of a pickle and one stored entry per tensor storage) is read.
 *
 * ```ts
 * const written = await extractZip("CoLA.zip", "tmp/out"); // ["CoLA/train.tsv", ...]
 * ```
 */
import { dirname, join } from "node:path";

export interface ZipEntry {
  /** The path inside the archive, `/`-separated; directories end with `/`. */
  name: string;
  /** 0 stored, 8 deflate. */
  method: number;
  compressedSize: number;
  size: number;
  crc: number;
  /** Offset of the entry's local header. */
  localOffset: number;
}

const EOCD_SIG = 0x06054b50;
const CENTRAL_SIG = 0x02014b50;
const LOCAL_SIG = 0x04034b50;
const CHUNK = 1 << 16;

let crcTable: Uint32Array | undefined;

/** CRC-32 (IEEE, as zip and gzip use), continuing from `crc` to checksum data in pieces. */
export function crc32(data: Uint8Array, crc = 0): number {
  if (!crcTable) {
    crcTable = new Uint32Array(256);
    for (let n = 0; n < 256; n++) {
      let c = n;
      for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
      crcTable[n] = c >>> 0;
    }
  }
  let c = (crc ^ 0xffffffff) >>> 0;
  for (let i = 0; i < data.length; i++) c = crcTable[(c ^ data[i]) & 0xff] ^ (c >>> 8);
  return (c ^ 0xffffffff) >>> 0;
}

async function readAt(file: Deno.FsFile, offset: number, length: number, path: string): Promise<Uint8Array> {
  const buf = new Uint8Array(length);
  await file.seek(offset, Deno.SeekMode.Start);
  let filled = 0;
  while (filled < length) {
    const n = await file.read(buf.subarray(filled));
    if (n === null || n === 0) {
      throw new Error(`${path}: truncated zip (wanted ${length} bytes at ${offset})`);
    }
    filled += n;
  }
  return buf;
}

/** Lists the entries of an open zip file from its central directory. */
export async function listZip(file: Deno.FsFile, path: string): Promise<ZipEntry[]> {
  const size = (await file.stat()).size;
  // The end-of-central-directory record is 22 bytes plus a comment of at most 65535 bytes.
  const tailLength = Math.min(size, 22 + 0xffff);
  if (tailLength < 22) throw new Error(`${path}: not a zip file (${size} bytes)`);
  const tail = await readAt(file, size - tailLength, tailLength, path);
  const tv = new DataView(tail.buffer);
  let eocd = -1;
  for (let i = tailLength - 22; i >= 0; i--) {
    if (tv.getUint32(i, true) === EOCD_SIG) {
      eocd = i;
      break;
    }
  }
  if (eocd < 0) {
    throw new Error(`${path}: not a zip file (no end-of-central-directory record); download again`);
  }
  const count = tv.getUint16(eocd + 10, true);
  const cdSize = tv.getUint32(eocd + 12, true);
  const cdOffset = tv.getUint32(eocd + 16, true);
  if (count === 0xffff || cdSize === 0xffffffff || cdOffset === 0xffffffff) {
    throw new Error(`${path}: ZIP64 archives (over 4 GB or 65,535 entries) are not supported`);
  }
  if (cdOffset + cdSize > size) throw new Error(`${path}: truncated zip (central directory past the end)`);
  const cd = await readAt(file, cdOffset, cdSize, path);
  const v = new DataView(cd.buffer);
  const decoder = new TextDecoder();
  const entries: ZipEntry[] = [];
  let p = 0;
  for (let i = 0; i < count; i++) {
    if (p + 46 > cdSize || v.getUint32(p, true) !== CENTRAL_SIG) {
      throw new Error(`${path}: corrupt central directory at entry ${i}`);
    }
    const flags = v.getUint16(p + 8, true);
    const nameLength = v.getUint16(p + 28, true);
    const name = decoder.decode(cd.subarray(p + 46, p + 46 + nameLength));
    if (flags & 1) throw new Error(`${path}: entry ${name} is encrypted`);
    entries.push({
      name,
      method: v.getUint16(p + 10, true),
      crc: v.getUint32(p + 16, true),
      compressedSize: v.getUint32(p + 20, true),
      size: v.getUint32(p + 24, true),
      localOffset: v.getUint32(p + 42, true),
    });
    p += 46 + nameLength + v.getUint16(p + 30, true) + v.getUint16(p + 32, true);
  }
  return entries;
}

/** A stream of `length` bytes of `file` from `start`. */
function rangeStream(
  file: Deno.FsFile,
  start: number,
  length: number,
  path: string,
): ReadableStream<Uint8Array> {
  let pos = start, left = length;
  return new ReadableStream({
    async pull(ctrl) {
      if (left === 0) return ctrl.close();
      const buf = await readAt(file, pos, Math.min(left, CHUNK), path);
      pos += buf.length;
      left -= buf.length;
      ctrl.enqueue(buf);
    },
  });
}

/** The entry name as a safe relative path, or an error for names that would escape the destination. */
function safeName(name: string, path: string): string {
  const parts = name.split("/");
  if (name.startsWith("/") || name.includes("\\") || /^[A-Za-z]:/.test(name) || parts.includes("..")) {
    throw new Error(`${path}: unsafe entry name ${JSON.stringify(name)}`);
  }
  return parts.filter((s) => s !== "" && s !== ".").join("/");
}

async function writeAll(out: Deno.FsFile, data: Uint8Array): Promise<void> {
  for (let done = 0; done < data.length;) done += await out.write(data.subarray(done));
}

/** The entry's bytes, decompressed, as a stream (the size and CRC-32 are checked by the consumers). */
async function entryStream(
  file: Deno.FsFile,
  entry: ZipEntry,
  path: string,
): Promise<ReadableStream<Uint8Array>> {
  const local = new DataView((await readAt(file, entry.localOffset, 30, path)).buffer);
  if (local.getUint32(0, true) !== LOCAL_SIG) {
    throw new Error(`${path}: corrupt local header of ${entry.name}`);
  }
  const dataStart = entry.localOffset + 30 + local.getUint16(26, true) + local.getUint16(28, true);
  const stream = rangeStream(file, dataStart, entry.compressedSize, path);
  if (entry.method === 8) {
    return stream.pipeThrough(
      new DecompressionStream("deflate-raw") as TransformStream<Uint8Array, Uint8Array>,
    );
  }
  if (entry.method !== 0) {
    throw new Error(
      `${path}: entry ${entry.name} uses compression method ${entry.method}; only stored/deflate`,
    );
  }
  return stream;
}

function checkEntry(entry: ZipEntry, size: number, crc: number, path: string): void {
  if (size !== entry.size || crc !== entry.crc) {
    throw new Error(
      `${path}: ${entry.name} is corrupt (size ${size}/${entry.size}, crc mismatch ` +
        `${crc !== entry.crc}); download again`,
    );
  }
}

/** Streams one entry into `target`, checking its size and CRC-32. */
async function extractEntry(file: Deno.FsFile, entry: ZipEntry, target: string, path: string): Promise<void> {
  const stream = await entryStream(file, entry, path);
  await Deno.mkdir(dirname(target), { recursive: true });
  const out = await Deno.open(target, { write: true, create: true, truncate: true });
  let crc = 0, size = 0;
  try {
    for await (const chunk of stream) {
      crc = crc32(chunk, crc);
      size += chunk.length;
      await writeAll(out, chunk);
    }
  } catch (err) {
    throw new Error(`${path}: cannot extract ${entry.name}: ${(err as Error).message}`);
  } finally {
    out.close();
  }
  checkEntry(entry, size, crc, path);
}

/** One entry's bytes in memory (for archives read in place, e.g. pytorch_model.bin), size and CRC-32 checked. */
export async function readZipEntry(file: Deno.FsFile, entry: ZipEntry, path: string): Promise<Uint8Array> {
  const out = new Uint8Array(entry.size);
  let crc = 0, size = 0;
  try {
    for await (const chunk of await entryStream(file, entry, path)) {
      if (size + chunk.length > out.length) {
        throw new Error(`more than the ${entry.size} bytes the directory says`);
      }
      out.set(chunk, size);
      crc = crc32(chunk, crc);
      size += chunk.length;
    }
  } catch (err) {
    throw new Error(`${path}: cannot read ${entry.name}: ${(err as Error).message}`);
  }
  checkEntry(entry, size, crc, path);
  return out;
}

/**
 * Extracts every entry of `zipPath` under `destDir` (skipping macOS `__MACOSX/` metadata) and returns
 * the relative paths of the files written. A failure leaves partial files in `destDir`: extract into a
 * temporary folder and rename it into place.
 */
export async function extractZip(zipPath: string, destDir: string): Promise<string[]> {
  const file = await Deno.open(zipPath);
  try {
    const written: string[] = [];
    for (const entry of await listZip(file, zipPath)) {
      const rel = safeName(entry.name, zipPath);
      if (rel === "" || rel.split("/")[0] === "__MACOSX") continue;
      if (entry.name.endsWith("/")) {
        await Deno.mkdir(join(destDir, rel), { recursive: true });
        continue;
      }
      await extractEntry(file, entry, join(destDir, rel), zipPath);
      written.push(rel);
    }
    return written;
  } finally {
    file.close();
  }
}
