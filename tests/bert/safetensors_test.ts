import assert from "node:assert/strict";
import { join } from "node:path";
import {
  decodeSafetensors,
  encodeSafetensors,
  f16ToNumber,
  nonFiniteTensor,
  readSafetensors,
  readSafetensorsWithMetadata,
  type TensorMap,
  writeSafetensors,
} from "../../lib/bert/safetensors.ts";
import { sharedModel, tempDir } from "../env.ts";

/** Builds a safetensors file from a raw header object and a data section, for malformed-file tests. */
function rawFile(header: unknown, data: Uint8Array, headerLenOverride?: bigint): Uint8Array {
  const json = new TextEncoder().encode(JSON.stringify(header));
  const out = new Uint8Array(8 + json.length + data.length);
  new DataView(out.buffer).setBigUint64(0, headerLenOverride ?? BigInt(json.length), true);
  out.set(json, 8);
  out.set(data, 8 + json.length);
  return out;
}

function sample(): TensorMap {
  return new Map([
    ["b.weight", { shape: [2, 3], data: new Float32Array([1, -2, 3.5, 0, 1e-8, -1e30]) }],
    ["a.bias", { shape: [3], data: new Float32Array([0.25, 0.5, 0.75]) }],
    ["empty", { shape: [0, 4], data: new Float32Array(0) }],
  ]);
}

Deno.test("encode/decode round trip keeps names, shapes, values and metadata", () => {
  const bytes = encodeSafetensors(sample(), { format: "pt" });
  const headerLen = Number(new DataView(bytes.buffer).getBigUint64(0, true));
  assert.equal(headerLen % 8, 0, "header padded to 8 bytes");
  const header = JSON.parse(new TextDecoder().decode(bytes.subarray(8, 8 + headerLen)));
  assert.deepEqual(Object.keys(header), ["__metadata__", "a.bias", "b.weight", "empty"], "names sorted");
  assert.equal(header["a.bias"].dtype, "F32");
  const { tensors, metadata } = decodeSafetensors(bytes, "mem");
  assert.deepEqual(metadata, { format: "pt" });
  for (const [name, t] of sample()) {
    assert.deepEqual(tensors.get(name)!.shape, t.shape);
    assert.deepEqual(tensors.get(name)!.data, t.data);
  }
});

Deno.test("encoding is deterministic regardless of insertion order", () => {
  const a = encodeSafetensors(sample());
  const b = encodeSafetensors(new Map([...sample()].reverse()));
  assert.deepEqual(a, b);
});

Deno.test("F16 and BF16 convert to the hand-computed float32 values", () => {
  // F16: 1.0 = 0x3c00, -2.0 = 0xc000, 0.5 = 0x3800, 65504 = 0x7bff, smallest subnormal 0x0001 = 2^-24
  const f16 = [0x3c00, 0xc000, 0x3800, 0x7bff, 0x0001, 0x7c00];
  const f16Want = [1, -2, 0.5, 65504, 2 ** -24, Infinity];
  // BF16: top 16 bits of float32. 1.0 = 0x3f80, -2.0 = 0xc000, 3.140625 = 0x4049, 1e-40ish subnormal 0x0001
  const bf16 = [0x3f80, 0xc000, 0x4049, 0x0001];
  const bf16Want = [1, -2, 3.140625, 2 ** -133];
  const data = new Uint8Array(2 * (f16.length + bf16.length));
  const dv = new DataView(data.buffer);
  [...f16, ...bf16].forEach((v, i) => dv.setUint16(2 * i, v, true));
  const header = {
    h: { dtype: "F16", shape: [2, 3], data_offsets: [0, 12] },
    b: { dtype: "BF16", shape: [4], data_offsets: [12, 20] },
  };
  const { tensors } = decodeSafetensors(rawFile(header, data), "mem");
  assert.deepEqual([...tensors.get("h")!.data], f16Want);
  assert.deepEqual(tensors.get("h")!.shape, [2, 3]);
  assert.deepEqual([...tensors.get("b")!.data], bf16Want.map((v) => Math.fround(v)));
  assert.ok(Number.isNaN(f16ToNumber(0x7e00)));
  assert.equal(f16ToNumber(0x8000), -0);
});

Deno.test("F32 data at an offset that is not 4-aligned is read correctly", () => {
  // A header of odd length puts the data section at an unaligned byte offset.
  const values = new Float32Array([1.5, -2.25, 3]);
  const header = { x: { dtype: "F32", shape: [3], data_offsets: [0, 12] }, __metadata__: { p: "" } };
  let file = rawFile(header, new Uint8Array(values.buffer));
  if ((8 + Number(new DataView(file.buffer).getBigUint64(0, true))) % 4 === 0) {
    // force misalignment with an extra header space
    const h2 = { ...header, __metadata__: { p: "x" } };
    file = rawFile(h2, new Uint8Array(values.buffer));
  }
  assert.notEqual((8 + Number(new DataView(file.buffer).getBigUint64(0, true))) % 4, 0);
  // also slice the file so that its own byteOffset is odd
  const host = new Uint8Array(file.length + 1);
  host.set(file, 1);
  const { tensors } = decodeSafetensors(host.subarray(1), "mem");
  assert.deepEqual(tensors.get("x")!.data, values);
});

Deno.test("header validation errors name the file and the tensor", () => {
  const data = new Uint8Array(16);
  const bad = (header: unknown, re: RegExp, d = data) =>
    assert.throws(() => decodeSafetensors(rawFile(header, d), "bad.safetensors"), re);
  bad({ x: { dtype: "F32", shape: [4], data_offsets: [8, 24] } }, /bad\.safetensors.*"x".*out of bounds/);
  bad(
    {
      x: { dtype: "F32", shape: [2], data_offsets: [0, 8] },
      y: { dtype: "F32", shape: [2], data_offsets: [4, 12] },
    },
    /bad\.safetensors.*"x".*"y".*overlap/,
  );
  bad(
    { x: { dtype: "F32", shape: [3], data_offsets: [0, 16] } },
    /bad\.safetensors.*"x".*16 bytes.*expected 12/,
  );
  bad({ ids: { dtype: "I64", shape: [2], data_offsets: [0, 16] } }, /bad\.safetensors.*"ids".*"I64"/);
  bad({ x: { dtype: "F32", shape: [-1], data_offsets: [0, 4] } }, /"x".*shape/);
  bad({ x: { dtype: "F32", shape: [1], data_offsets: [4] } }, /"x".*data_offsets/);
  bad({ __metadata__: { n: 3 } }, /bad\.safetensors.*__metadata__/);
  // Truncated: header claims more than the file holds; too short to hold the length at all.
  const good = encodeSafetensors(sample());
  assert.throws(() => decodeSafetensors(good.subarray(0, 20), "t.safetensors"), /t\.safetensors.*truncated/);
  assert.throws(() => decodeSafetensors(good.subarray(0, 5), "t.safetensors"), /t\.safetensors.*truncated/);
  assert.throws(
    () => decodeSafetensors(good.subarray(0, good.length - 4), "t.safetensors"),
    /t\.safetensors.*"b\.weight".*out of bounds/,
  );
  assert.throws(
    () => decodeSafetensors(rawFile({}, data, 1n << 60n), "h.safetensors"),
    /h\.safetensors.*header length/,
  );
  const notJson = rawFile({}, data);
  notJson[8] = 0x41;
  assert.throws(() => decodeSafetensors(notJson, "j.safetensors"), /j\.safetensors.*JSON/);
});

Deno.test("writing refuses NaN and infinite values, naming the file and the tensor; nothing is left", async () => {
  const [dir, cleanup] = await tempDir();
  try {
    const path = join(dir, "w.safetensors");
    const bad = sample();
    bad.get("b.weight")!.data[1] = NaN;
    await assert.rejects(
      writeSafetensors(path, bad),
      /w\.safetensors: not written: tensor "b\.weight" \[.*\] has 1 non-finite value\(s\), the first NaN at index 1/,
    );
    bad.get("b.weight")!.data[1] = -Infinity;
    await assert.rejects(writeSafetensors(path, bad), /the first -Infinity at index 1/);
    assert.deepEqual([...Deno.readDirSync(dir)], [], "no file and no temporary file");
    assert.equal(nonFiniteTensor(sample()), undefined);
  } finally {
    await cleanup();
  }
});

Deno.test("writeSafetensors is atomic and readable back; the shared checkpoint decodes", async () => {
  const [dir, cleanup] = await tempDir();
  try {
    const path = join(dir, "sub", "m.safetensors");
    await writeSafetensors(path, sample(), { k: "v" });
    assert.deepEqual([...Deno.readDirSync(join(dir, "sub"))].map((e) => e.name), ["m.safetensors"]);
    const { tensors, metadata } = await readSafetensorsWithMetadata(path);
    assert.deepEqual(metadata, { k: "v" });
    assert.deepEqual(tensors.get("b.weight")!.data, sample().get("b.weight")!.data);
    await assert.rejects(() => readSafetensors(join(dir, "missing.safetensors")), /missing\.safetensors/);
  } finally {
    await cleanup();
  }
  const shared = await readSafetensors(join(sharedModel(), "model.safetensors"));
  assert.deepEqual(shared.get("bert.embeddings.word_embeddings.weight")!.shape, [30522, 128]);
  assert.equal(shared.get("bert.embeddings.word_embeddings.weight")!.data.length, 30522 * 128);
});

Deno.test("skip drops entries of any known dtype (e.g. an int64 position_ids buffer) but still checks them", () => {
  const data = new Uint8Array(24);
  new DataView(data.buffer).setFloat32(16, 2.5, true);
  const header = {
    "bert.embeddings.position_ids": { dtype: "I64", shape: [1, 2], data_offsets: [0, 16] },
    w: { dtype: "F32", shape: [2], data_offsets: [16, 24] },
  };
  const skip = (name: string) => name.endsWith("position_ids");
  const { tensors } = decodeSafetensors(rawFile(header, data), "mem", { skip });
  assert.deepEqual([...tensors.keys()], ["w"]);
  assert.equal(tensors.get("w")!.data[0], 2.5);
  const wrongSize = {
    ...header,
    "bert.embeddings.position_ids": { dtype: "I64", shape: [1, 3], data_offsets: [0, 16] },
  };
  assert.throws(
    () => decodeSafetensors(rawFile(wrongSize, data), "mem", { skip }),
    /position_ids.*expected 24/,
  );
  assert.throws(() => decodeSafetensors(rawFile(header, data), "mem"), /position_ids.*"I64"/);
});
