import assert from "node:assert/strict";
import { join } from "node:path";
import { encodeSafetensors } from "../../lib/bert/safetensors.ts";
import { initBackend, tf } from "../../lib/tf.ts";
import { AdamW } from "../../lib/tuning/optimizer.ts";
import {
  clearRun,
  readState,
  restoreState,
  runPaths,
  type SavedState,
  saveState,
} from "../../lib/tuning/state.ts";
import { tempDir } from "../env.ts";

await initBackend();

Deno.test("state round trip restores parameters and moments; stale temp files go", async () => {
  const [dir, cleanup] = await tempDir();
  const p = runPaths(join(dir, "run"));
  const mk = () =>
    new Map([["a.weight", tf.variable(tf.tensor1d([1, 2, 3]))], ["b.weight", tf.variable(tf.tensor1d([4]))]]);
  const src = mk(), dst = mk();
  const sel = new Map([["a.weight", "all" as const]]);
  const o1 = new AdamW(src, sel), o2 = new AdamW(dst, sel);
  try {
    const g = new Map([["a.weight", tf.tensor1d([0.5, -0.5, 1])]]);
    o1.apply(g, 0.1);
    tf.dispose([...g.values()]);
    const state: SavedState = {
      identity: { x: 1 },
      step: 1,
      epochs: [],
      lossSum: 0.5,
      lossCount: 1,
      epochSeconds: 0.25,
      resumedAt: [],
    };
    assert.equal(await readState(p.state), undefined);
    await Deno.mkdir(p.stateDir, { recursive: true });
    await saveState(p.state, src, o1, state);
    await Deno.writeTextFile(`${p.state}.tmp-123-abcd`, "half a file");
    const back = await readState(p.state);
    assert.deepEqual(back!.state, state);
    assert.deepEqual([...Deno.readDirSync(p.stateDir)].map((e) => e.name), ["state.safetensors"]);
    restoreState(p.state, back!, dst, o2);
    assert.deepEqual(dst.get("a.weight")!.dataSync(), src.get("a.weight")!.dataSync());
    assert.deepEqual(
      dst.get("b.weight")!.dataSync(),
      Float32Array.from([4]),
      "untrained parameters are not in the state",
    );
    assert.deepEqual(await o2.exportState(), await o1.exportState());
    assert.equal(o2.step, 1);
    await clearRun(p);
    assert.equal(await readState(p.state), undefined);

    // A state with non-finite values (saved by a version that did not check) is refused, not resumed.
    await Deno.mkdir(p.stateDir, { recursive: true });
    const bad = await o1.exportState();
    bad.set("param/a.weight", { shape: [3], data: Float32Array.from([1, NaN, 3]) });
    await Deno.writeFile(p.state, encodeSafetensors(bad, { normtune_state: JSON.stringify(state) }));
    await assert.rejects(readState(p.state), /state\.safetensors: tensor "param\/a\.weight" .*NaN.*--fresh/);
  } finally {
    o1.dispose();
    o2.dispose();
    tf.dispose([...src.values(), ...dst.values()]);
    await cleanup();
  }
});
