/**
 * Reads and writes the safetensors format (https://github.com/huggingface/safetensors): an 8-byte
 * little-endian header length, a JSON header `{name: {dtype, shape, data_offsets: [begin, end]}}`, then the
 * raw tensor bytes. Hugging Face checkpoints ship in it, and writing it back keeps our fine-tuned models
 * loadable by transformers. F32, F16 and BF16 are read (all become Float32Array); we always write F32.
 *
 * The header is validated fully before any data is touched, because a corrupt or truncated file should
 * fail with a message naming the file and the tensor, not with a RangeError deep in the model. Writing
 * refuses tensors with NaN or infinite values (a diverged run must not leave weights that look finished);
 * loaders of weights check the same with `nonFiniteTensor`.
 */
import { writeFileAtomic } from "../util/atomic.ts";

export type DType = "F32" | "F16" | "BF16";

export interface NamedTensor {
  shape: number[];
  data: Float32Array;
}

export type TensorMap = Map<string, NamedTensor>;

const BYTES: Record<DType, number> = { F32: 4, F16: 2, BF16: 2 };

/** Element sizes of the other safetensors dtypes: entries we skip are still checked for size. */
const OTHER_BYTES: Record<string, number> = {
  BOOL: 1,
  U8: 1,
  I8: 1,
  F8_E5M2: 1,
  F8_E4M3: 1,
  I16: 2,
  U16: 2,
  I32: 4,
  U32: 4,
  F64: 8,
  I64: 8,
  U64: 8,
};

/** Options for reading: `skip` drops entries (any dtype) without decoding them, e.g. int64 buffers. */
export interface ReadOptions {
  skip?: (name: string) => boolean;
}

/** The header length is a u64; anything beyond this is certainly a corrupt file (the reference caps at 100 MB). */
const MAX_HEADER = 100_000_000;

function isDType(s: unknown): s is DType {
  return s === "F32" || s === "F16" || s === "BF16";
}

/** Converts one IEEE half-precision value (as its 16 bits) to a number. */
export function f16ToNumber(bits: number): number {
  const sign = bits & 0x8000 ? -1 : 1;
  const exp = (bits >> 10) & 0x1f;
  const frac = bits & 0x3ff;
  if (exp === 0) return sign * frac * 2 ** -24; // subnormal (or zero)
  if (exp === 0x1f) return frac ? NaN : sign * Infinity;
  return sign * (1 + frac / 1024) * 2 ** (exp - 15);
}

/** `count` little-endian values of `dtype` from `bytes[begin..]` as float32 (also reads torch storages). */
export function decodeFloats(bytes: Uint8Array, begin: number, count: number, dtype: DType): Float32Array {
  const out = new Float32Array(count);
  if (dtype === "F32") {
    // Copy into a fresh (4-aligned) buffer: the tensor's offset in the file need not be a multiple of 4.
    new Uint8Array(out.buffer).set(bytes.subarray(begin, begin + count * 4));
    if (!LITTLE_ENDIAN) {
      const view = new DataView(bytes.buffer, bytes.byteOffset + begin, count * 4);
      for (let i = 0; i < count; i++) out[i] = view.getFloat32(i * 4, true);
    }
    return out;
  }
  const view = new DataView(bytes.buffer, bytes.byteOffset + begin, count * 2);
  if (dtype === "BF16") {
    // bfloat16 is the top half of a float32: shift its bits up.
    const u32 = new Uint32Array(out.buffer);
    if (LITTLE_ENDIAN) {
      for (let i = 0; i < count; i++) u32[i] = view.getUint16(i * 2, true) << 16;
    } else {
      const tmp = new DataView(out.buffer);
      for (let i = 0; i < count; i++) tmp.setUint32(i * 4, view.getUint16(i * 2, true) << 16, true);
      for (let i = 0; i < count; i++) out[i] = tmp.getFloat32(i * 4, true);
    }
    return out;
  }
  for (let i = 0; i < count; i++) out[i] = f16ToNumber(view.getUint16(i * 2, true));
  return out;
}

const LITTLE_ENDIAN = new Uint8Array(new Uint16Array([1]).buffer)[0] === 1;

/**
 * Parses a safetensors file held in memory. `source` (usually the path) names the file in errors.
 * Returns every tensor as Float32Array plus the optional `__metadata__` string map.
 */
export function decodeSafetensors(
  bytes: Uint8Array,
  source: string,
  opts: ReadOptions = {},
): { tensors: TensorMap; metadata: Record<string, string> } {
  const fail = (msg: string): never => {
    throw new Error(`${source}: ${msg}`);
  };
  if (bytes.length < 8) fail(`truncated: ${bytes.length} bytes, too short for the 8-byte header length`);
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const headerLen = view.getBigUint64(0, true);
  if (headerLen > BigInt(MAX_HEADER) || 8n + headerLen > BigInt(bytes.length)) {
    fail(
      `header length ${headerLen} is out of bounds (file has ${bytes.length} bytes): ` +
        `the file is truncated or not safetensors (a download or a write cut short): fetch or regenerate it`,
    );
  }
  const n = Number(headerLen);
  let header: unknown;
  try {
    header = JSON.parse(new TextDecoder("utf-8", { fatal: true }).decode(bytes.subarray(8, 8 + n)));
  } catch (err) {
    fail(`header is not valid JSON (${(err as Error).message})`);
  }
  if (typeof header !== "object" || header === null || Array.isArray(header)) {
    fail("header is not a JSON object");
  }
  const dataStart = 8 + n;
  const dataLen = bytes.length - dataStart;
  const metadata: Record<string, string> = {};
  const entries: {
    name: string;
    dtype: DType;
    shape: number[];
    begin: number;
    end: number;
    skipped: boolean;
  }[] = [];
  for (const [name, raw] of Object.entries(header as Record<string, unknown>)) {
    if (name === "__metadata__") {
      if (typeof raw !== "object" || raw === null || Array.isArray(raw)) {
        fail(`__metadata__ is not an object`);
      }
      for (const [k, v] of Object.entries(raw as Record<string, unknown>)) {
        if (typeof v !== "string") fail(`__metadata__.${k} is not a string`);
        metadata[k] = v as string;
      }
      continue;
    }
    const t = `tensor "${name}"`;
    if (typeof raw !== "object" || raw === null) fail(`${t}: entry is not an object`);
    const { dtype, shape, data_offsets: offsets } = raw as Record<string, unknown>;
    const skipped = opts.skip?.(name) ?? false;
    if (!isDType(dtype) && !(skipped && typeof dtype === "string" && dtype in OTHER_BYTES)) {
      fail(
        `${t} has dtype ${JSON.stringify(dtype)}; only F32, F16 and BF16 are supported ` +
          `(convert the checkpoint's floating-point weights to one of these)`,
      );
    }
    if (!Array.isArray(shape) || !shape.every((d) => Number.isSafeInteger(d) && d >= 0)) {
      fail(`${t}: shape ${JSON.stringify(shape)} is not a list of non-negative integers`);
    }
    if (
      !Array.isArray(offsets) || offsets.length !== 2 ||
      !offsets.every((o) => Number.isSafeInteger(o) && o >= 0)
    ) {
      fail(`${t}: data_offsets ${JSON.stringify(offsets)} is not [begin, end]`);
    }
    const [begin, end] = offsets as number[];
    if (begin > end || end > dataLen) {
      fail(
        `${t}: data_offsets [${begin}, ${end}] out of bounds of the ${dataLen}-byte data section ` +
          `(file truncated?)`,
      );
    }
    const count = (shape as number[]).reduce((a, b) => a * b, 1);
    const want = count * (BYTES[dtype as DType] ?? OTHER_BYTES[dtype as string]);
    if (end - begin !== want) {
      fail(
        `${t}: ${end - begin} bytes for shape [${shape}] ${dtype}, expected ${want}`,
      );
    }
    entries.push({ name, dtype: dtype as DType, shape: shape as number[], begin, end, skipped });
  }
  // No two tensors may share bytes (empty tensors occupy none, so they cannot overlap).
  const sorted = entries.filter((e) => e.end > e.begin).sort((a, b) => a.begin - b.begin);
  for (let i = 1; i < sorted.length; i++) {
    if (sorted[i].begin < sorted[i - 1].end) {
      fail(
        `tensors "${sorted[i - 1].name}" [${sorted[i - 1].begin}, ${sorted[i - 1].end}] and ` +
          `"${sorted[i].name}" [${sorted[i].begin}, ${sorted[i].end}] overlap`,
      );
    }
  }
  const tensors: TensorMap = new Map();
  for (const e of entries) {
    if (e.skipped) continue;
    const count = e.shape.reduce((a, b) => a * b, 1);
    tensors.set(e.name, { shape: e.shape, data: decodeFloats(bytes, dataStart + e.begin, count, e.dtype) });
  }
  return { tensors, metadata };
}

/**
 * Serialises tensors as F32 little-endian, names sorted (so equal maps give equal bytes), header padded
 * with spaces to a multiple of 8 so the data section is aligned.
 */
export function encodeSafetensors(tensors: TensorMap, metadata?: Record<string, string>): Uint8Array {
  const names = [...tensors.keys()].sort();
  const header: Record<string, unknown> = {};
  if (metadata && Object.keys(metadata).length > 0) header.__metadata__ = metadata;
  let offset = 0;
  for (const name of names) {
    const t = tensors.get(name)!;
    const count = t.shape.reduce((a, b) => a * b, 1);
    if (count !== t.data.length) {
      throw new Error(
        `tensor "${name}": shape [${t.shape}] holds ${count} values but data has ${t.data.length}`,
      );
    }
    header[name] = { dtype: "F32", shape: t.shape, data_offsets: [offset, offset + count * 4] };
    offset += count * 4;
  }
  let json = new TextEncoder().encode(JSON.stringify(header));
  const padded = Math.ceil(json.length / 8) * 8;
  if (padded !== json.length) {
    const p = new Uint8Array(padded).fill(0x20);
    p.set(json);
    json = p;
  }
  const out = new Uint8Array(8 + json.length + offset);
  const view = new DataView(out.buffer);
  view.setBigUint64(0, BigInt(json.length), true);
  out.set(json, 8);
  let pos = 8 + json.length;
  for (const name of names) {
    const data = tensors.get(name)!.data;
    if (LITTLE_ENDIAN) {
      out.set(new Uint8Array(data.buffer, data.byteOffset, data.byteLength), pos);
    } else {
      for (let i = 0; i < data.length; i++) view.setFloat32(pos + i * 4, data[i], true);
    }
    pos += data.byteLength;
  }
  return out;
}

/**
 * The first tensor holding NaN or an infinity, described ("tensor "x" has 3 non-finite values, the first
 * NaN at index 7"), or `undefined` when every value is finite.
 */
export function nonFiniteTensor(tensors: TensorMap): string | undefined {
  for (const [name, t] of tensors) {
    const d = t.data;
    let first = -1, count = 0;
    for (let i = 0; i < d.length; i++) {
      // x - x is 0 for every finite x and NaN for NaN and the infinities.
      if (d[i] - d[i] !== 0) {
        if (first < 0) first = i;
        count++;
      }
    }
    if (count > 0) {
      return `tensor "${name}" [${t.shape}] has ${count} non-finite value(s), the first ${
        d[first]
      } at index ${first}`;
    }
  }
  return undefined;
}

export async function readBytes(path: string): Promise<Uint8Array> {
  try {
    return await Deno.readFile(path);
  } catch (err) {
    throw new Error(`${path}: cannot read (${(err as Error).message})`);
  }
}

export async function readSafetensors(path: string, opts?: ReadOptions): Promise<TensorMap> {
  return decodeSafetensors(await readBytes(path), path, opts).tensors;
}

export async function readSafetensorsWithMetadata(
  path: string,
  opts?: ReadOptions,
): Promise<{ tensors: TensorMap; metadata: Record<string, string> }> {
  return decodeSafetensors(await readBytes(path), path, opts);
}

/** Writes F32 safetensors atomically (temp file + rename); a non-finite value is an error, nothing written. */
export async function writeSafetensors(
  path: string,
  tensors: TensorMap,
  metadata?: Record<string, string>,
): Promise<void> {
  const bad = nonFiniteTensor(tensors);
  if (bad) throw new Error(`${path}: not written: ${bad}`);
  await writeFileAtomic(path, encodeSafetensors(tensors, metadata));
}
