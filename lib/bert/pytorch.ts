/**
 * Reads `pytorch_model.bin`, what `torch.save(model.state_dict())` writes. Since PyTorch 1.6 that is a zip
 * (entries stored uncompressed) holding `ARCHIVE/data.pkl`, a pickle of the state dict, and
 * `ARCHIVE/data/KEY`, one entry per storage (the flat buffer tensors view into); before (and with
 * `_use_new_zipfile_serialization=False`) it is the legacy format, pickles and storages in a row. Both
 * are read. Each tensor in the pickle is `torch._utils._rebuild_tensor_v2(storage, offset, size, stride,
 * ...)` where the storage is a persistent id `("storage", torch.FloatStorage, KEY, "cpu", numel)`:
 * several tensors may view one storage (tied weights, a fused QKV matrix split into views), at offsets
 * and with any strides (a transposed weight).
 *
 * The pickles run through lib/bert/pickle.ts with only the globals a state dict needs allowed (below), so
 * a file that names anything else (`os.system`, `builtins.eval`) is refused without running anything.
 * float32, float16 and bfloat16 storages are read (as Float32Array); tensors of other dtypes (the int64
 * `position_ids` buffer) may only be skipped.
 *
 * ```ts
 * const tensors = await readPytorchBin("bert/pytorch_model.bin", { skip: (n) => n.startsWith("cls.") });
 * ```
 */
import { listZip, readZipEntry, type ZipEntry } from "../glue/zip.ts";
import {
  describe,
  type GlobalHandler,
  PyGlobal,
  PyTuple,
  unpickle,
  unpickleAt,
  type UnpickleOptions,
} from "./pickle.ts";
import { decodeFloats, type DType, type ReadOptions, type TensorMap } from "./safetensors.ts";

/** Torch's storage classes as they appear in persistent ids: element dtype and size in bytes. */
const STORAGES: Record<string, { dtype?: DType; bytes: number }> = {
  FloatStorage: { dtype: "F32", bytes: 4 },
  HalfStorage: { dtype: "F16", bytes: 2 },
  BFloat16Storage: { dtype: "BF16", bytes: 2 },
  DoubleStorage: { bytes: 8 },
  LongStorage: { bytes: 8 },
  IntStorage: { bytes: 4 },
  ShortStorage: { bytes: 2 },
  CharStorage: { bytes: 1 },
  ByteStorage: { bytes: 1 },
  BoolStorage: { bytes: 1 },
  UntypedStorage: { bytes: 1 },
};

class StorageRef {
  constructor(readonly key: string, readonly type: string, readonly numel: number) {}
}

/** A tensor as the pickle describes it: a strided view into a storage. */
class TensorRef {
  constructor(
    readonly storage: StorageRef,
    readonly offset: number,
    readonly shape: number[],
    readonly stride: number[],
  ) {}
}

const isIndex = (v: unknown): v is number => Number.isSafeInteger(v) && (v as number) >= 0;

function indexTuple(v: unknown, what: string): number[] {
  if (!(v instanceof PyTuple) || !v.items.every(isIndex)) {
    throw new Error(`${what} is not a tuple of non-negative integers`);
  }
  return v.items as number[];
}

function rebuildTensor(args: unknown[]): TensorRef {
  const [storage, offset, size, stride] = args;
  if (args.length < 4 || !(storage instanceof StorageRef)) {
    throw new Error("expects (storage, offset, size, stride, ...)");
  }
  if (!isIndex(offset)) throw new Error(`storage offset ${offset} is not a non-negative integer`);
  const shape = indexTuple(size, "size");
  const strides = indexTuple(stride, "stride");
  if (shape.length !== strides.length) {
    throw new Error(`size (${shape}) and stride (${strides}) have different lengths`);
  }
  return new TensorRef(storage, offset, shape, strides);
}

/** The globals a torch state dict pickle may name; everything else is refused. */
function torchGlobals(): Map<string, GlobalHandler> {
  const globals = new Map<string, GlobalHandler>([
    ["collections.OrderedDict", {
      call: (args) => {
        if (args.length > 0) throw new Error("expects no arguments (items follow as SETITEMS)");
        return new Map();
      },
    }],
    ["torch._utils._rebuild_tensor_v2", { call: rebuildTensor }],
    ["torch._utils._rebuild_tensor", { call: rebuildTensor }],
    // torch.save(model.state_dict(keep_vars=True)): a Parameter around the tensor.
    ["torch._utils._rebuild_parameter", {
      call: ([data]) => {
        if (!(data instanceof TensorRef)) throw new Error(`expects a tensor, got a ${describe(data)}`);
        return data;
      },
    }],
  ]);
  // Storage classes are only markers inside persistent ids, never called.
  for (const name of Object.keys(STORAGES)) globals.set(`torch.${name}`, {});
  return globals;
}

/**
 * `("storage", torch.XStorage, key, location, numel)` -> a reference to storage `key`. The legacy format
 * adds a sixth item, view metadata, which torch has written as None since 0.4 (storage views are gone).
 */
function storageRef(pid: unknown): StorageRef {
  const items = pid instanceof PyTuple ? pid.items : [];
  const [kind, type, key, _location, numel, view] = items;
  if (
    (items.length !== 5 && !(items.length === 6 && view === null)) || kind !== "storage" ||
    !(type instanceof PyGlobal) || typeof key !== "string" || !isIndex(numel)
  ) {
    throw new Error(`persistent id is a ${describe(pid)}, not ("storage", type, key, location, numel)`);
  }
  if (type.module !== "torch" || !(type.name in STORAGES)) {
    throw new Error(`persistent id names ${type.qualified}, not a torch storage class`);
  }
  return new StorageRef(key, type.name, numel);
}

/** What the legacy format's first pickle holds: torch's magic number. */
const LEGACY_MAGIC = 0x1950a86a20f9469cfc6cn;
/** The bytes protocol 2 pickles it to (PROTO 2, LONG1 of 10 bytes). */
const LEGACY_HEAD = [0x80, 0x02, 0x8a, 0x0a, 0x6c, 0xfc, 0x9c, 0x46, 0xf9, 0x20, 0x6a, 0xa8, 0x50, 0x19];

/** Reads every tensor of a `torch.save`d state dict (those `opts.skip` accepts are not decoded). */
export async function readPytorchBin(path: string, opts: ReadOptions = {}): Promise<TensorMap> {
  let file: Deno.FsFile;
  try {
    file = await Deno.open(path);
  } catch (err) {
    throw new Error(`${path}: cannot read (${(err as Error).message})`);
  }
  try {
    const head = new Uint8Array(16);
    const n = (await file.read(head)) ?? 0;
    if (n >= 4 && head[0] === 0x50 && head[1] === 0x4b && head[2] === 0x03 && head[3] === 0x04) {
      return await readZipFormat(file, path, opts);
    }
    if (LEGACY_HEAD.every((b, i) => head[i] === b)) return await readLegacyFormat(path, opts);
    throw new Error(
      `${path}: not a PyTorch checkpoint (expected the zip or the legacy format torch.save writes)`,
    );
  } finally {
    file.close();
  }
}

/** Since PyTorch 1.6: a zip of ARCHIVE/data.pkl and one entry per storage, ARCHIVE/data/KEY. */
async function readZipFormat(file: Deno.FsFile, path: string, opts: ReadOptions): Promise<TensorMap> {
  const entries = new Map((await listZip(file, path)).map((e) => [e.name, e]));
  const pickles = [...entries.keys()].filter((name) => /^[^/]+\/data\.pkl$/.test(name));
  if (pickles.length !== 1) {
    throw new Error(
      `${path}: expected one ARCHIVE/data.pkl entry, found ${pickles.length}: not a torch.save checkpoint`,
    );
  }
  const archive = pickles[0].slice(0, -"/data.pkl".length);
  const order = entries.get(`${archive}/byteorder`);
  if (order) {
    const text = new TextDecoder().decode(await readZipEntry(file, order, path)).trim();
    if (text !== "little") throw new Error(`${path}: byte order "${text}" is not supported (only little)`);
  }
  const source = `${path}: ${pickles[0]}`;
  const root = unpickle(await readZipEntry(file, entries.get(pickles[0])!, path), source, {
    globals: torchGlobals(),
    persistentLoad: storageRef,
  });
  return await materialise(stateDict(root, source), opts, async (storage) => {
    const name = `${archive}/data/${storage.key}`;
    const entry: ZipEntry | undefined = entries.get(name);
    if (!entry) throw new Error(`${path}: storage ${storage.key} (${name}) is missing from the archive`);
    return await readZipEntry(file, entry, path);
  }, path);
}

/**
 * Before PyTorch 1.6 (and with `_use_new_zipfile_serialization=False` since): five pickles in a row
 * (magic number, protocol 1001, system info, the state dict, the list of storage keys), then each storage
 * in that list's order as an 8-byte little-endian element count and its bytes. Many older hub
 * checkpoints are in this format.
 */
async function readLegacyFormat(path: string, opts: ReadOptions): Promise<TensorMap> {
  const bytes = await Deno.readFile(path);
  const plain: UnpickleOptions = { globals: new Map() };
  let pos = 0;
  const next = (o = plain): unknown => {
    const r = unpickleAt(bytes, pos, path, o);
    pos = r.end;
    return r.value;
  };
  if (next() !== LEGACY_MAGIC) throw new Error(`${path}: not a PyTorch checkpoint (wrong magic number)`);
  const protocol = next();
  if (protocol !== 1001) throw new Error(`${path}: legacy protocol ${protocol} is not supported (1001 is)`);
  const info = next();
  if (!(info instanceof Map) || info.get("little_endian") !== true) {
    throw new Error(`${path}: not saved on a little-endian machine, which is all that is supported`);
  }
  const used = new Map<string, StorageRef>();
  const root = next({
    globals: torchGlobals(),
    persistentLoad: (pid) => {
      const ref = storageRef(pid);
      used.set(ref.key, ref);
      return ref;
    },
  });
  const keys = next();
  if (!Array.isArray(keys) || !keys.every((k) => typeof k === "string")) {
    throw new Error(`${path}: the storage key list is a ${describe(keys)}, not a list of names`);
  }
  const storages = new Map<string, Uint8Array>();
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  for (const key of keys as string[]) {
    const ref = used.get(key);
    if (!ref) throw new Error(`${path}: storage ${key} is listed but no tensor uses it`);
    if (pos + 8 > bytes.length) throw new Error(`${path}: truncated before storage ${key}`);
    const numel = view.getBigUint64(pos, true);
    if (numel !== BigInt(ref.numel)) {
      throw new Error(`${path}: storage ${key} holds ${numel} elements, the state dict says ${ref.numel}`);
    }
    const length = ref.numel * STORAGES[ref.type].bytes;
    if (pos + 8 + length > bytes.length) throw new Error(`${path}: truncated inside storage ${key}`);
    storages.set(key, bytes.subarray(pos + 8, pos + 8 + length));
    pos += 8 + length;
  }
  return await materialise(stateDict(root, path), opts, (storage) => {
    const data = storages.get(storage.key);
    if (!data) throw new Error(`${path}: storage ${storage.key} is not in the file's storage list`);
    return Promise.resolve(data);
  }, path);
}

/** The pickled value as name -> tensor, or an error saying what it holds instead. */
function stateDict(root: unknown, source: string): Map<string, TensorRef> {
  if (!(root instanceof Map)) {
    throw new Error(`${source}: holds a ${describe(root)}, not a state dict (name -> tensor)`);
  }
  const out = new Map<string, TensorRef>();
  for (const [name, value] of root) {
    if (typeof name !== "string") throw new Error(`${source}: a key is a ${describe(name)}, not a name`);
    if (!(value instanceof TensorRef)) {
      throw new Error(
        `${source}: "${name}" is a ${describe(value)}, not a tensor` +
          (value instanceof Map ? " (a nested dict: save model.state_dict() itself)" : ""),
      );
    }
    out.set(name, value);
  }
  return out;
}

/** Decodes each storage once (tied and fused tensors share one) and gathers every tensor's view of it. */
async function materialise(
  refs: Map<string, TensorRef>,
  opts: ReadOptions,
  load: (storage: StorageRef) => Promise<Uint8Array>,
  path: string,
): Promise<TensorMap> {
  const decoded = new Map<string, Float32Array>();
  const tensors: TensorMap = new Map();
  for (const [name, t] of refs) {
    const kind = STORAGES[t.storage.type];
    const what = `${path}: tensor "${name}"`;
    if (!kind) throw new Error(`${what}: unknown storage type torch.${t.storage.type}`);
    // Bounds: the last element the view reaches must lie inside the storage.
    const count = t.shape.reduce((a, b) => a * b, 1);
    const last = t.offset + t.shape.reduce((acc, d, i) => acc + (d - 1) * t.stride[i], 0);
    if (count > 0 && last >= t.storage.numel) {
      throw new Error(
        `${what}: view (offset ${t.offset}, size [${t.shape}], stride [${t.stride}]) reaches element ` +
          `${last} of a ${t.storage.numel}-element storage`,
      );
    }
    if (opts.skip?.(name)) continue;
    if (!kind.dtype) {
      throw new Error(
        `${what} is torch.${t.storage.type}; only float32, float16 and bfloat16 tensors are supported`,
      );
    }
    let data = decoded.get(t.storage.key);
    if (data === undefined) {
      const bytes = await load(t.storage);
      if (bytes.length !== t.storage.numel * kind.bytes) {
        throw new Error(
          `${what}: storage ${t.storage.key} has ${bytes.length} bytes, expected ${t.storage.numel} ` +
            `x ${kind.bytes} (file corrupt?)`,
        );
      }
      data = decodeFloats(bytes, 0, t.storage.numel, kind.dtype);
      decoded.set(t.storage.key, data);
    }
    tensors.set(name, { shape: t.shape, data: gather(data, t, count) });
  }
  return tensors;
}

/** The view's elements in row-major order: a copy of a slice when contiguous, else a strided walk. */
function gather(storage: Float32Array, t: TensorRef, count: number): Float32Array {
  const rank = t.shape.length;
  let contiguous = true;
  for (let i = rank - 1, step = 1; i >= 0; i--) {
    if (t.shape[i] !== 1 && t.stride[i] !== step) contiguous = false;
    step *= t.shape[i];
  }
  if (contiguous) return storage.slice(t.offset, t.offset + count);
  const out = new Float32Array(count);
  const index = new Array<number>(rank).fill(0);
  let src = t.offset;
  for (let k = 0; k < count; k++) {
    out[k] = storage[src];
    // Odometer: bump the last axis, carrying into the ones before it.
    for (let i = rank - 1; i >= 0; i--) {
      index[i]++;
      src += t.stride[i];
      if (index[i] < t.shape[i]) break;
      src -= t.stride[i] * t.shape[i];
      index[i] = 0;
    }
  }
  return out;
}
