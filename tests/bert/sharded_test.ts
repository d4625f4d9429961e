/**
 * Sharded safetensors: the index and its shards read as one checkpoint (the fixture from
 * tools/make_formats.py), and every disagreement between them an error naming both files.
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { readSafetensors } from "../../lib/bert/safetensors.ts";
import { parseShardIndex, readShardedSafetensors, SHARD_INDEX } from "../../lib/bert/sharded.ts";
import { tempDir } from "../env.ts";

const SHARDED = join(import.meta.dirname!, "..", "fixtures", "formats", "sharded");
// The int64 position_ids buffer can only be skipped.
const SKIP = { skip: (name: string) => name.endsWith("position_ids") };
const SHARDS = ["model-00001-of-00002.safetensors", "model-00002-of-00002.safetensors"];

Deno.test("the shards read together equal the unsharded file", async () => {
  const whole = await readSafetensors(join(SHARDED, "..", "safetensors", "model.safetensors"), SKIP);
  const sharded = await readShardedSafetensors(join(SHARDED, SHARD_INDEX), SKIP);
  assert.deepEqual(new Map([...sharded].sort()), new Map([...whole].sort()));
  const index = parseShardIndex(await Deno.readTextFile(join(SHARDED, SHARD_INDEX)), "i.json");
  assert.deepEqual(index.shards, SHARDS);
  assert.equal(index.weightMap.size, whole.size + 1); // + the skipped position_ids
});

Deno.test("index errors: not JSON, no weight_map, unsafe or non-safetensors shard names", () => {
  const bad: [string, RegExp][] = [
    ["{", /i\.json: not valid JSON/],
    ["[]", /i\.json: no "weight_map" object/],
    [`{"weight_map": {}}`, /i\.json: "weight_map" is empty/],
    [
      `{"weight_map": {"a": "sub/x.safetensors"}}`,
      /tensor "a" maps to "sub\/x\.safetensors", not a \.safetensors file name/,
    ],
    [`{"weight_map": {"a": ".."}}`, /maps to "\.\."/],
    [`{"weight_map": {"a": "pytorch_model-00001.bin"}}`, /maps to "pytorch_model-00001\.bin"/],
    [`{"weight_map": {"a": 3}}`, /maps to 3/],
  ];
  for (const [text, re] of bad) assert.throws(() => parseShardIndex(text, "i.json"), re, text);
});

Deno.test("shards that disagree with the index: errors name the shard and the index", async () => {
  const [dir, cleanup] = await tempDir();
  try {
    for (const f of SHARDS) await Deno.copyFile(join(SHARDED, f), join(dir, f));
    const index = JSON.parse(await Deno.readTextFile(join(SHARDED, SHARD_INDEX)));
    const path = join(dir, SHARD_INDEX);
    const write = (map: Record<string, string>) =>
      Deno.writeTextFile(path, JSON.stringify({ weight_map: map }));
    const [first, second] = Object.keys(index.weight_map).filter((n) => index.weight_map[n] === SHARDS[0]);

    await write({ ...index.weight_map, [first]: SHARDS[1] });
    await assert.rejects(
      () => readShardedSafetensors(path, SKIP),
      new RegExp(`${SHARDS[0]}: holds tensor "${first}", which .*${SHARD_INDEX} places in ${SHARDS[1]}`),
    );
    const { [second]: _, ...withoutSecond } = index.weight_map;
    await write(withoutSecond);
    await assert.rejects(
      () => readShardedSafetensors(path, SKIP),
      new RegExp(`holds tensor "${second}", which .* does not list`),
    );
    await write({ ...index.weight_map, "bert.extra": SHARDS[1] });
    await assert.rejects(
      () => readShardedSafetensors(path, SKIP),
      new RegExp(`${SHARDS[1]}: has no tensor "bert\\.extra" although .*${SHARD_INDEX} lists it there`),
    );
    await write(index.weight_map);
    assert.equal((await readShardedSafetensors(path, SKIP)).size, Object.keys(index.weight_map).length - 1);
  } finally {
    await cleanup();
  }
});
