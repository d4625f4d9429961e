/**
 * pytorch_model.bin: torch.save's zip + pickle. Real files from tools/make_formats.py (a malicious one
 * included) and archives built here: strided and offset views, shared storages, float16/bfloat16, and
 * every way a file can be wrong.
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { loadCheckpoint } from "../../lib/bert/checkpoint.ts";
import { readPytorchBin } from "../../lib/bert/pytorch.ts";
import { tempDir } from "../env.ts";
import { f32, PickleWriter, stateDictPickle, type TensorSpec, torchZip, u16 } from "./pickle_writer.ts";

const FORMATS = join(import.meta.dirname!, "..", "fixtures", "formats");
// The command evil.bin's payload would run: `touch` of this file.
const MARKER = "/tmp/normtune-evil-pickle-ran";

async function withFile(bytes: Uint8Array, fn: (path: string) => Promise<void>): Promise<void> {
  const [dir, cleanup] = await tempDir();
  try {
    const path = join(dir, "pytorch_model.bin");
    await Deno.writeFile(path, bytes);
    await fn(path);
  } finally {
    await cleanup();
  }
}

Deno.test("a pickle calling os.system (torch.save of a malicious object) is refused; nothing runs", async () => {
  await Deno.remove(MARKER).catch(() => {});
  await assert.rejects(
    () => readPytorchBin(join(FORMATS, "evil.bin")),
    /evil\.bin: evil\/data\.pkl: refusing pickle global "posix\.system": .*nothing was run \(pickle byte \d+\)/,
  );
  // Through the model loader too, with the file in place of a model's weights.
  const [dir, cleanup] = await tempDir();
  try {
    await Deno.copyFile(join(FORMATS, "pytorch", "config.json"), join(dir, "config.json"));
    await Deno.copyFile(join(FORMATS, "evil.bin"), join(dir, "pytorch_model.bin"));
    await assert.rejects(
      () => loadCheckpoint(dir, { numLabels: 2, quiet: true }),
      /pytorch_model\.bin: evil\/data\.pkl: refusing pickle global "posix\.system"/,
    );
  } finally {
    await cleanup();
  }
  assert.equal(await Deno.stat(MARKER).then(() => true, () => false), false, `${MARKER} appeared`);
});

Deno.test("views: offsets, transposed and broadcast strides, shared storages, float16 and bfloat16", async () => {
  const storage = (key: string, type: string, numel: number) => ({ key, type, numel });
  const s0 = storage("0", "FloatStorage", 12);
  const specs: TensorSpec[] = [
    { name: "transposed", ...s0, offset: 1, shape: [3, 2], stride: [1, 3] },
    { name: "slice", ...s0, offset: 6, shape: [2, 3], stride: [3, 1] },
    { name: "scalar", ...s0, offset: 11, shape: [], stride: [] },
    { name: "broadcast", ...s0, offset: 2, shape: [2, 3], stride: [0, 1] },
    { name: "empty", ...s0, offset: 12, shape: [0, 4], stride: [4, 1] },
    { name: "half", ...storage("h", "HalfStorage", 3), offset: 0, shape: [3], stride: [1] },
    { name: "bf16", ...storage("b", "BFloat16Storage", 2), offset: 0, shape: [2, 1], stride: [1, 1] },
  ];
  const zip = await torchZip(stateDictPickle(specs), {
    "0": f32([0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11]),
    h: u16([0x3e00, 0xc000, 0x7c00]), // 1.5, -2, +inf
    b: u16([0x3fc0, 0xc2f7]), // 1.5, -123.5
  });
  await withFile(zip, async (path) => {
    const t = await readPytorchBin(path);
    const get = (n: string) => ({ shape: t.get(n)!.shape, data: [...t.get(n)!.data] });
    assert.deepEqual([...t.keys()], specs.map((s) => s.name));
    assert.deepEqual(get("transposed"), { shape: [3, 2], data: [1, 4, 2, 5, 3, 6] });
    assert.deepEqual(get("slice"), { shape: [2, 3], data: [6, 7, 8, 9, 10, 11] });
    assert.deepEqual(get("scalar"), { shape: [], data: [11] });
    assert.deepEqual(get("broadcast"), { shape: [2, 3], data: [2, 3, 4, 2, 3, 4] });
    assert.deepEqual(get("empty"), { shape: [0, 4], data: [] });
    assert.deepEqual(get("half"), { shape: [3], data: [1.5, -2, Infinity] });
    assert.deepEqual(get("bf16"), { shape: [2, 1], data: [1.5, -123.5] });
    // Views are copies: changing one tensor leaves the others (and the shared storage) alone.
    t.get("slice")!.data[0] = 99;
    assert.equal(t.get("broadcast")!.data[0], 2);
  });
});

Deno.test("bad archives: errors name the file, the tensor or the storage", async () => {
  const one = (over: Partial<TensorSpec>) =>
    stateDictPickle([{
      name: "w",
      key: "0",
      type: "FloatStorage",
      numel: 4,
      offset: 0,
      shape: [4],
      stride: [1],
      ...over,
    }]);
  const cases: [Promise<Uint8Array> | Uint8Array, RegExp][] = [
    [
      torchZip(one({ offset: 1 }), { "0": f32([1, 2, 3, 4]) }),
      /tensor "w": view \(offset 1, size \[4\], stride \[1\]\) reaches element 4 of a 4-element storage/,
    ],
    [
      torchZip(one({ shape: [2, 2], stride: [3, 1] }), { "0": f32([1, 2, 3, 4]) }),
      /reaches element 4 of a 4-element/,
    ],
    [
      torchZip(one({}), { "0": f32([1, 2, 3]) }),
      /tensor "w": storage 0 has 12 bytes, expected 4 x 4 \(file corrupt\?\)/,
    ],
    [torchZip(one({}), {}), /storage 0 \(archive\/data\/0\) is missing from the archive/],
    [
      torchZip(one({ type: "LongStorage" }), { "0": new Uint8Array(32) }),
      /tensor "w" is torch\.LongStorage; only float32, float16 and bfloat16/,
    ],
    [
      torchZip(one({ type: "OrderedDict" }), {}),
      /refusing pickle global "torch\.OrderedDict"/,
    ],
    [
      torchZip(one({}), { "0": f32([1, 2, 3, 4]) }, [{ name: "archive/byteorder", data: "big" }]),
      /byte order "big" is not supported/,
    ],
    [torchZip(new PickleWriter().op(0x5d).bytes(), {}), /archive\/data\.pkl: holds a list, not a state dict/],
    [
      torchZip(new PickleWriter().op(0x7d).str("model").op(0x7d).op(0x73).bytes(), {}),
      /"model" is a dict, not a tensor \(a nested dict: save model\.state_dict\(\) itself\)/,
    ],
    [
      // Only the legacy format's first pickle (torch's magic number): the second is missing.
      Uint8Array.from("80028a0a6cfc9c46f9206aa850192e".match(/../g)!, (h) => parseInt(h, 16)),
      /pytorch_model\.bin: truncated: needs 1 more byte\(s\) \(pickle byte 15\)/,
    ],
    [
      new TextEncoder().encode("<!DOCTYPE html>"),
      /pytorch_model\.bin: not a PyTorch checkpoint \(expected the zip or the legacy format torch\.save writes\)/,
    ],
    [
      torchZip(new Uint8Array([0x80, 2, 0x4e, 0x2e]), {}).then((z) => z.slice(0, z.length - 30)),
      /not a zip file|truncated zip|corrupt central directory/,
    ],
  ];
  for (const [bytes, re] of cases) {
    await withFile(await bytes, async (path) => {
      await assert.rejects(() => readPytorchBin(path), (err: Error) => {
        assert.ok(err.message.startsWith(path), err.message);
        assert.match(err.message, re);
        return true;
      });
    });
  }
  // A flipped bit inside a storage fails the zip entry's CRC-32.
  const zip = await torchZip(one({}), { "0": f32([1, 2, 3, 4]) });
  const data = f32([1, 2, 3, 4]);
  const at = zip.findIndex((_, i) => data.every((b, k) => zip[i + k] === b)) + 4; // the 2.0
  zip[at] ^= 1;
  await withFile(zip, async (path) => {
    await assert.rejects(
      () => readPytorchBin(path),
      /archive\/data\/0 is corrupt \(size 16\/16, crc mismatch true\)/,
    );
  });
});

Deno.test("the legacy format reads as the zip format does; a cut file is an error naming the storage", async () => {
  const skip = { skip: (n: string) => n.endsWith("position_ids") };
  const legacy = await readPytorchBin(join(FORMATS, "legacy", "pytorch_model.bin"), skip);
  assert.deepEqual(legacy, await readPytorchBin(join(FORMATS, "pytorch", "pytorch_model.bin"), skip));
  const whole = await Deno.readFile(join(FORMATS, "legacy", "pytorch_model.bin"));
  await withFile(whole.subarray(0, whole.length - 100), async (path) => {
    await assert.rejects(() => readPytorchBin(path), /pytorch_model\.bin: truncated inside storage \d+/);
  });
});
