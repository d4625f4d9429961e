import assert from "node:assert/strict";
import { join } from "node:path";
import {
  canonicalJson,
  fileIdentity,
  hashId,
  ID_LENGTH,
  modelIdentity,
  sha256Hex,
} from "../../lib/experiments/hash.ts";
import { tempDir } from "../env.ts";

// A configuration shaped like a study cell's, nested the same way.
const CONFIG = {
  kind: "finetune",
  version: 1,
  model: { name: "bert-tiny-mlm", sha256: "ab".repeat(32), bytes: 17737792 },
  data: {
    task: "RTE",
    train: { sha256: "cd".repeat(32), bytes: 1000 },
    dev: { sha256: "ef".repeat(32), bytes: 99 },
  },
  backend: "wasm",
  hp: { mode: "layernorm", lr: 1e-3, epochs: 3, batchSize: 32, maxLen: 128, seed: 1, maxTrain: null },
  tags: ["a", "b"],
  flag: false,
};

/** Every leaf path of a JSON value. */
function leaves(value: unknown, path: (string | number)[] = []): (string | number)[][] {
  if (value !== null && typeof value === "object") {
    return Object.entries(value as Record<string, unknown>).flatMap(([k, v]) =>
      leaves(v, [...path, Array.isArray(value) ? Number(k) : k])
    );
  }
  return [path];
}

function mutate(value: unknown, path: (string | number)[]): unknown {
  const copy = structuredClone(value) as Record<string | number, unknown>;
  let node = copy;
  for (const key of path.slice(0, -1)) node = node[key] as Record<string | number, unknown>;
  const last = path.at(-1)!;
  const old = node[last];
  node[last] = typeof old === "number"
    ? old * 1.0001 + 1e-9
    : typeof old === "string"
    ? old + "x"
    : typeof old === "boolean"
    ? !old
    : 0; // null
  return copy;
}

Deno.test("canonicalJson sorts keys at every depth and drops undefined members", () => {
  assert.equal(
    canonicalJson({ b: 1, a: [2, { d: 3, c: 4 }], u: undefined }),
    '{"a":[2,{"c":4,"d":3}],"b":1}',
  );
  assert.equal(canonicalJson({ x: { q: 1, p: 2 }, y: 3 }), canonicalJson({ y: 3, x: { p: 2, q: 1 } }));
});

Deno.test("canonicalJson refuses values that have no JSON form", () => {
  assert.throws(() => canonicalJson({ a: { b: NaN } }), /\$\.a\.b is NaN/);
  assert.throws(() => canonicalJson({ f: () => 1 }), /\$\.f is a function/);
  assert.throws(() => canonicalJson([Infinity]), /\$\[0\] is Infinity/);
});

Deno.test("hashId is stable across runs and key orders", () => {
  // Pinned: a change here would orphan every stored result.
  assert.equal(hashId({ a: 1 }), "015abd7f5cc57a2d");
  assert.equal(hashId(CONFIG).length, ID_LENGTH);
  const reordered = Object.fromEntries(Object.entries(CONFIG).reverse());
  assert.equal(hashId(reordered), hashId(CONFIG));
});

Deno.test("hashId changes when any single field changes", () => {
  const paths = leaves(CONFIG);
  assert.ok(paths.length >= 15, `expected many leaves, got ${paths.length}`);
  const base = hashId(CONFIG);
  const seen = new Set([base]);
  for (const path of paths) {
    const id = hashId(mutate(CONFIG, path));
    assert.notEqual(id, base, `changing ${path.join(".")} did not change the id`);
    seen.add(id);
  }
  assert.equal(seen.size, paths.length + 1);
  // Adding or removing a field changes it too.
  assert.notEqual(hashId({ ...CONFIG, extra: 0 }), base);
  const { flag: _flag, ...without } = CONFIG;
  assert.notEqual(hashId(without), base);
});

Deno.test("fileIdentity follows the content", async () => {
  const [dir, cleanup] = await tempDir();
  try {
    const path = join(dir, "train.tsv");
    await Deno.writeTextFile(path, "a\tb\n");
    const one = await fileIdentity(path);
    assert.equal(one.bytes, 4);
    assert.equal(one.sha256, sha256Hex("a\tb\n"));
    await Deno.writeTextFile(path, "a\tc\n");
    // Same size: the mtime (and then the content hash) tells the files apart.
    const now = new Date(Date.now() + 5000);
    await Deno.utime(path, now, now);
    const two = await fileIdentity(path);
    assert.notEqual(two.sha256, one.sha256);
  } finally {
    await cleanup();
  }
});

Deno.test("modelIdentity covers config.json, size, and both ends of the weights", async () => {
  const [dir, cleanup] = await tempDir();
  try {
    const weights = new Uint8Array(3 << 20).map((_, i) => i % 251);
    const write = async (config: string, w: Uint8Array, t: number) => {
      await Deno.writeTextFile(join(dir, "config.json"), config);
      await Deno.writeFile(join(dir, "model.safetensors"), w);
      const when = new Date(1_700_000_000_000 + t * 1000);
      await Deno.utime(join(dir, "config.json"), when, when);
      await Deno.utime(join(dir, "model.safetensors"), when, when);
      return (await modelIdentity(dir)).sha256;
    };
    const base = await write('{"hidden_size":128}', weights, 1);
    assert.equal(await write('{"hidden_size":128}', weights, 2), base, "a touch alone changes nothing");
    assert.notEqual(await write('{"hidden_size":256}', weights, 3), base);
    const head = weights.slice();
    head[10] ^= 1;
    assert.notEqual(await write('{"hidden_size":128}', head, 4), base);
    const tail = weights.slice();
    tail[tail.length - 10] ^= 1;
    assert.notEqual(await write('{"hidden_size":128}', tail, 5), base);
    assert.notEqual(await write('{"hidden_size":128}', weights.slice(0, weights.length - 1), 6), base);
    await assert.rejects(
      () => modelIdentity(join(dir, "nope")),
      /nope: no weights: expected model\.safetensors/,
    );
  } finally {
    await cleanup();
  }
});

Deno.test("modelIdentity reads every weights format, a sharded checkpoint through all its shards", async () => {
  const fixtures = new URL("../fixtures/formats/", import.meta.url).pathname;
  const ids = new Map<string, string>();
  for (const format of ["safetensors", "sharded", "pytorch", "legacy"]) {
    ids.set(format, (await modelIdentity(join(fixtures, format))).sha256);
  }
  assert.equal(new Set(ids.values()).size, 4, "each file layout is its own identity");
  const [dir, cleanup] = await tempDir();
  try {
    for (const entry of Deno.readDirSync(join(fixtures, "sharded"))) {
      await Deno.copyFile(join(fixtures, "sharded", entry.name), join(dir, entry.name));
    }
    assert.equal((await modelIdentity(dir)).sha256, ids.get("sharded"));
    // Change the second shard's last byte: only that shard's bytes differ.
    const shard = join(dir, "model-00002-of-00002.safetensors");
    const bytes = await Deno.readFile(shard);
    bytes[bytes.length - 1] ^= 1;
    await Deno.writeFile(shard, bytes);
    const later = new Date(Date.now() + 10_000);
    await Deno.utime(join(dir, "model.safetensors.index.json"), later, later);
    assert.notEqual((await modelIdentity(dir)).sha256, ids.get("sharded"));
  } finally {
    await cleanup();
  }
});
