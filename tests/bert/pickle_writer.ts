/**
 * Test helper (not a test): writes pickles opcode by opcode, and torch.save-style zips around them, so
 * the restricted unpickler and the pytorch_model.bin reader are tested on inputs made here, hostile ones
 * included, without Python.
 */
import { makeZip } from "../glue/zip_writer.ts";

const enc = new TextEncoder();
const le32 = (n: number) => {
  const b = new Uint8Array(4);
  new DataView(b.buffer).setInt32(0, n, true);
  return [...b];
};

export class PickleWriter {
  private readonly out: number[] = [0x80, 2]; // PROTO 2, as torch.save writes

  op(...bytes: number[]): this {
    this.out.push(...bytes);
    return this;
  }
  str(s: string): this {
    const b = enc.encode(s);
    return this.op(0x58, ...le32(b.length), ...b); // BINUNICODE
  }
  int(n: number): this {
    return this.op(0x4a, ...le32(n)); // BININT
  }
  global(module: string, name: string): this {
    return this.op(0x63, ...enc.encode(`${module}\n${name}\n`)); // GLOBAL
  }
  mark(): this {
    return this.op(0x28);
  }
  tuple(): this {
    return this.op(0x74);
  }
  reduce(): this {
    return this.op(0x52);
  }
  /** `collections.OrderedDict()` */
  orderedDict(): this {
    return this.global("collections", "OrderedDict").op(0x29).reduce();
  }
  ints(values: number[]): this {
    this.mark();
    for (const v of values) this.int(v);
    return this.tuple();
  }
  /** `_rebuild_tensor_v2(storage, offset, shape, stride, False, OrderedDict())` with a persistent storage. */
  tensor(
    t: { key: string; type: string; numel: number; offset: number; shape: number[]; stride: number[] },
  ): this {
    this.global("torch._utils", "_rebuild_tensor_v2").mark();
    this.mark().str("storage").global("torch", t.type).str(t.key).str("cpu").int(t.numel).tuple().op(0x51);
    return this.int(t.offset).ints(t.shape).ints(t.stride).op(0x89).orderedDict().tuple().reduce();
  }
  /** The bytes, ended by STOP. */
  bytes(): Uint8Array {
    return new Uint8Array([...this.out, 0x2e]);
  }
}

export interface TensorSpec {
  name: string;
  key: string;
  type: string;
  numel: number;
  offset: number;
  shape: number[];
  stride: number[];
}

/** A state-dict pickle: `OrderedDict` of name -> tensor, in order. */
export function stateDictPickle(tensors: TensorSpec[]): Uint8Array {
  const p = new PickleWriter().orderedDict().mark();
  for (const t of tensors) p.str(t.name).tensor(t);
  return p.op(0x75).bytes(); // SETITEMS
}

/** A torch.save-style zip: ARCHIVE/data.pkl, ARCHIVE/data/KEY per storage, ARCHIVE/version. */
export function torchZip(
  pickle: Uint8Array,
  storages: Record<string, Uint8Array>,
  extra: { name: string; data: string }[] = [],
): Promise<Uint8Array> {
  return makeZip([
    { name: "archive/data.pkl", data: pickle },
    ...Object.entries(storages).map(([key, data]) => ({ name: `archive/data/${key}`, data })),
    { name: "archive/version", data: "3\n" },
    ...extra,
  ]);
}

export const f32 = (values: number[]) => new Uint8Array(new Float32Array(values).buffer);
export const u16 = (values: number[]) => new Uint8Array(new Uint16Array(values).buffer);
