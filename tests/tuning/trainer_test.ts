import assert from "node:assert/strict";
import { join } from "node:path";
import { loadCheckpoint } from "../../lib/bert/checkpoint.ts";
import { randomWeights } from "../../lib/bert/init.ts";
import { BertClassifier } from "../../lib/bert/model.ts";
import { parameterShapes } from "../../lib/bert/names.ts";
import {
  nonFiniteTensor,
  readSafetensors,
  readSafetensorsWithMetadata,
  type TensorMap,
} from "../../lib/bert/safetensors.ts";
import { initBackend, tf } from "../../lib/tf.ts";
import { loadWithDelta, readDelta } from "../../lib/tuning/delta.ts";
import { writeMask } from "../../lib/tuning/mask_file.ts";
import { DivergedError, finetune, type FinetuneOptions } from "../../lib/tuning/trainer.ts";
import { readJsonIfExists } from "../../lib/util/atomic.ts";
import { bitwiseEqual, GOLDEN, smallBatch, tinyWorld } from "./fixture.ts";

await initBackend();

const ck = await loadCheckpoint(GOLDEN, { numLabels: 2, seed: 1, quiet: true });
const { batch } = smallBatch();

const names = [...parameterShapes(ck.config, 2).keys()];

Deno.test("finetune: outputs, delta round trip, finished runs not redone, changed arguments refused", async () => {
  const w = await tinyWorld();
  const tensorsBefore = tf.memory().numTensors;
  try {
    const out = join(w.dir, "run");
    const opts = {
      model: w.model,
      task: "RTE",
      mode: "layernorm",
      out,
      epochs: 2,
      batchSize: 8,
      maxLen: 24,
      lr: 3e-3,
      glueDir: w.glue,
      saveModel: true,
      quiet: true,
    };
    const r = await finetune(opts);
    assert.equal(tf.memory().numTensors, tensorsBefore, "finetune leaked tensors");
    assert.equal(r.alreadyDone, false);
    assert.equal(r.metrics.finished, true);
    assert.equal(r.metrics.epochs.length, 2);
    assert.equal(r.metrics.steps, 12);
    assert.ok(r.metrics.best.accuracy >= 0 && r.metrics.best.accuracy <= 1);
    assert.equal(r.config.trainable.encoderTrainable, 5 * 2 * 16);
    const saved = await readJsonIfExists<{ identity: { lr: number } }>(join(out, "config.json"));
    assert.equal(saved?.identity.lr, 3e-3);
    await assert.rejects(Deno.stat(join(out, "state")), Deno.errors.NotFound);

    // The delta holds exactly the trained tensors (LayerNorms + head) and reproduces the model.
    const { tensors: delta, info } = await readDelta(r.deltaPath);
    assert.deepEqual(
      [...delta.keys()].sort(),
      [...names.filter((n) => n.includes("LayerNorm") || n.startsWith("classifier."))].sort(),
    );
    assert.equal(info.mode, "layernorm");
    const applied = await loadWithDelta(w.model, r.deltaPath);
    const full = await readSafetensors(join(r.modelPath!, "model.safetensors"));
    const base = await loadCheckpoint(w.model, { numLabels: 2, seed: 12345, quiet: true });
    for (const n of names) {
      assert.ok(
        bitwiseEqual(applied.tensors.get(n)!.data, full.get(n)!.data),
        `${n} differs from the saved model`,
      );
      if (!delta.has(n)) {
        assert.ok(bitwiseEqual(full.get(n)!.data, base.tensors.get(n)!.data), `${n} changed`);
      }
    }
    const logits = (t: TensorMap) => {
      const m = new BertClassifier(ck.config, 2, t);
      const l = m.logits(batch);
      const v = l.dataSync() as Float32Array;
      l.dispose();
      m.dispose();
      return v;
    };
    assert.ok(bitwiseEqual(logits(applied.tensors), logits(full)));

    const again = await finetune(opts);
    assert.equal(again.alreadyDone, true);
    assert.deepEqual(again.metrics, r.metrics);
    await assert.rejects(
      finetune({ ...opts, lr: 1e-3 }),
      /other arguments \(lr: saved 0.003, now 0.001\).*--fresh/,
    );
    const fresh = await finetune({ ...opts, lr: 1e-3, fresh: true, epochs: 1, saveModel: false });
    assert.equal(fresh.alreadyDone, false);
    assert.equal(fresh.metrics.epochs.length, 1);
  } finally {
    await w.cleanup();
  }
});

Deno.test("finetune: mask mode trains only the masked elements; STS-B regression runs", async () => {
  const w = await tinyWorld(32, 12);
  try {
    const q = "bert.encoder.layer.0.intermediate.dense.weight";
    const mask = new Float32Array(32 * 16);
    for (let i = 0; i < mask.length; i += 5) mask[i] = 1;
    const maskFile = join(w.dir, "mask.safetensors");
    await writeMask(maskFile, new Map([[q, { shape: [32, 16], data: mask }]]), { method: "test" });
    const r = await finetune({
      model: w.model,
      task: "RTE",
      mode: "mask",
      mask: maskFile,
      out: join(w.dir, "mask-run"),
      epochs: 1,
      batchSize: 8,
      maxLen: 24,
      glueDir: w.glue,
      quiet: true,
    });
    assert.equal(r.config.trainable.encoderTrainable, Math.ceil(mask.length / 5));
    assert.deepEqual(r.config.maskInfo, { method: "test" });
    const { tensors: delta } = await readDelta(r.deltaPath);
    assert.deepEqual([...delta.keys()].sort(), [q, "classifier.bias", "classifier.weight"].sort());
    const base = (await loadCheckpoint(w.model, { numLabels: 2, quiet: true })).tensors.get(q)!.data;
    const tuned = delta.get(q)!.data;
    for (let i = 0; i < mask.length; i++) {
      if (mask[i]) assert.notEqual(tuned[i], base[i]);
      else assert.ok(Object.is(tuned[i], base[i]), `element ${i} changed`);
    }

    const sts = await finetune({
      model: w.model,
      task: "STS-B",
      mode: "bitfit",
      out: join(w.dir, "sts"),
      epochs: 1,
      batchSize: 8,
      maxLen: 24,
      glueDir: w.glue,
      quiet: true,
    });
    assert.equal(sts.config.numLabels, 1);
    assert.ok(Number.isFinite(sts.metrics.best.pearson) && Number.isFinite(sts.metrics.best.spearman));
  } finally {
    await w.cleanup();
  }
});

Deno.test("finetune --init random: starts from BERT's init (per seed), delta holds every tensor, identity differs", async () => {
  const w = await tinyWorld(32, 12);
  const tensorsBefore = tf.memory().numTensors;
  try {
    const opts = {
      model: w.model,
      task: "RTE",
      mode: "layernorm",
      init: "random" as const,
      out: join(w.dir, "random"),
      epochs: 1,
      batchSize: 8,
      maxLen: 24,
      seed: 5,
      glueDir: w.glue,
      quiet: true,
    };
    const r = await finetune(opts);
    assert.equal(tf.memory().numTensors, tensorsBefore, "finetune leaked tensors");
    assert.equal(r.config.identity.init, "random");
    const { tensors: delta, info } = await readDelta(r.deltaPath);
    assert.equal(info.init, "random");
    assert.deepEqual([...delta.keys()].sort(), [...names].sort(), "every tensor: the base is not the start");
    // Frozen tensors are the random init's own (seed 5), not the checkpoint's; trained ones moved.
    const start = randomWeights(ck.config, 2, 5);
    const base = await loadCheckpoint(w.model, { numLabels: 2, quiet: true });
    for (const n of names) {
      const trained = n.includes(".LayerNorm.") || n.startsWith("classifier.");
      assert.equal(bitwiseEqual(delta.get(n)!.data, start.get(n)!.data), !trained, n);
      if (n.endsWith("query.weight")) assert.ok(!bitwiseEqual(delta.get(n)!.data, base.tensors.get(n)!.data));
    }
    // base + delta is the fine-tuned model whatever the base holds.
    const applied = await loadWithDelta(w.model, r.deltaPath);
    for (const n of names) assert.ok(bitwiseEqual(applied.tensors.get(n)!.data, delta.get(n)!.data), n);
    // Deterministic per seed: the same run elsewhere gives the same bytes; the pretrained run is refused
    // in this folder (another identity) and differs.
    const again = await finetune({ ...opts, out: join(w.dir, "random-again") });
    assert.deepEqual(await Deno.readFile(again.deltaPath), await Deno.readFile(r.deltaPath));
    await assert.rejects(
      finetune({ ...opts, init: "pretrained" }),
      /other arguments \(init: saved "random", now null\)/,
    );
    const pre = await finetune({ ...opts, init: "pretrained", out: join(w.dir, "pretrained") });
    assert.equal(pre.config.identity.init, undefined);
    assert.notDeepEqual(pre.metrics.epochs[0].trainLoss, r.metrics.epochs[0].trainLoss);
    await assert.rejects(
      finetune({ ...opts, init: "other" as never }),
      /init must be one of pretrained, random/,
    );
  } finally {
    await w.cleanup();
  }
});

Deno.test("finetune: a diverging run (lr 1e30) stops with a clear error", async () => {
  const w = await tinyWorld(32, 8);
  try {
    const out = join(w.dir, "nan");
    await assert.rejects(
      finetune({
        model: w.model,
        task: "RTE",
        mode: "full",
        out,
        lr: 1e30,
        epochs: 2,
        batchSize: 4,
        maxLen: 24,
        glueDir: w.glue,
        saveEvery: 1,
        quiet: true,
      }),
      /training diverged at step \d+ \(epoch 1, batch \d+\): .*(NaN|Infinity|non-finite).*last saved state is kept.*Lower --lr \(now 1e\+30\)/,
    );
    const metrics = await readJsonIfExists(join(out, "metrics.json"));
    assert.equal(metrics, undefined);
    await Deno.stat(join(out, "state", "state.safetensors"));
  } finally {
    await w.cleanup();
  }
});

/** A short full fine-tuning of the tiny world's RTE (64 train rows, 4 a batch: 16 updates). */
function tinyRun(w: { model: string; glue: string; dir: string }, extra: Partial<FinetuneOptions> = {}) {
  return {
    model: w.model,
    task: "RTE",
    mode: "full",
    out: join(w.dir, "run"),
    epochs: 1,
    batchSize: 4,
    maxLen: 24,
    glueDir: w.glue,
    quiet: true,
    ...extra,
  };
}

Deno.test("finetune: an update to infinite weights (lr 1e38) is an error; nothing non-finite is written", async () => {
  const w = await tinyWorld(64, 8);
  try {
    const o = tinyRun(w, { lr: 1e38, batchSize: 32, saveEvery: 50 });
    // The first update has lr 0 (warm-up); the second sends every weight to infinity while the loss
    // computed before it is finite.
    await assert.rejects(
      finetune(o),
      /training diverged at step 2 \(epoch 1, batch 2\): the update made "[^"]+" non-finite \(lr 1e\+38/,
    );
    // The same error carries where it diverged (what a study cell records instead of failing).
    const err = await finetune(o).then(() => undefined, (e: unknown) => e);
    assert.ok(err instanceof DivergedError, `${err}`);
    assert.deepEqual([err.step, err.epoch, err.batch, err.lr, err.epochs], [2, 1, 2, 1e38, []]);
    assert.match(err.reason, /^the update made "[^"]+" non-finite/);
    assert.match(err.message, /Lower --lr \(now 1e\+38\), then rerun with --fresh\.$/);
    await assert.rejects(Deno.stat(join(o.out, "delta.safetensors")), Deno.errors.NotFound);
    assert.equal(await readJsonIfExists(join(o.out, "metrics.json")), undefined);
  } finally {
    await w.cleanup();
  }
});

Deno.test("finetune: the state kept after divergence is the last finite one", async () => {
  const w = await tinyWorld(64, 8);
  try {
    const o = tinyRun(w, { lr: 1e38, saveEvery: 1 });
    const error = await finetune(o).then(() => undefined, (err: Error) => err.message);
    const state = join(o.out, "state", "state.safetensors");
    const { tensors, metadata } = await readSafetensorsWithMetadata(state);
    assert.equal(nonFiniteTensor(tensors), undefined);
    assert.equal(JSON.parse(metadata.normtune_state).step, 1);
    assert.match(error ?? "no error", /training diverged at step 2 .*last saved state is kept/);
  } finally {
    await w.cleanup();
  }
});

Deno.test("finetune: a finished run whose delta was truncated is trained again to the same bytes", async () => {
  const w = await tinyWorld(32, 8);
  try {
    const o = tinyRun(w, { mode: "layernorm", lr: 1e-3 });
    const first = await finetune(o);
    const bytes = await Deno.readFile(first.deltaPath);
    await Deno.writeFile(first.deltaPath, bytes.subarray(0, 100));
    const again = await finetune(o);
    assert.equal(again.alreadyDone, false, "a truncated delta is not a finished run");
    assert.deepEqual(await Deno.readFile(again.deltaPath), bytes);
    assert.equal((await finetune(o)).alreadyDone, true);
    const metrics = await readJsonIfExists<{ delta?: { bytes: number } }>(join(o.out, "metrics.json"));
    assert.equal(metrics?.delta?.bytes, bytes.length, "metrics.json records the delta's size (and sha256)");
  } finally {
    await w.cleanup();
  }
});

Deno.test("finetune: a max length beyond the position embeddings is refused before anything is written", async () => {
  const w = await tinyWorld(32, 8);
  try {
    const o = tinyRun(w, { mode: "layernorm", maxLen: 40 });
    await assert.rejects(finetune(o), /max length 40 is more than the model's max_position_embeddings 32/);
    await assert.rejects(Deno.stat(o.out), Deno.errors.NotFound);
    // The corrected run is not refused as "other arguments".
    assert.equal((await finetune({ ...o, maxLen: 32 })).metrics.finished, true);
  } finally {
    await w.cleanup();
  }
});

Deno.test("finetune: temporary files a killed write left in OUT are removed", async () => {
  const w = await tinyWorld(32, 8);
  try {
    const o = tinyRun(w, { mode: "layernorm" });
    await Deno.mkdir(o.out, { recursive: true });
    const stale = join(o.out, "delta.safetensors.tmp-99999999-0badf00d");
    await Deno.writeTextFile(stale, "half a delta");
    await finetune(o);
    await assert.rejects(Deno.stat(stale), Deno.errors.NotFound);
    assert.deepEqual(
      [...Deno.readDirSync(o.out)].map((e) => e.name).sort(),
      ["config.json", "delta.safetensors", "metrics.json"],
    );
  } finally {
    await w.cleanup();
  }
});

Deno.test("finetune: two calls on one OUT at once train it once; the other waits and finds it finished", async () => {
  const w = await tinyWorld(32, 8);
  try {
    const o = tinyRun(w, { mode: "layernorm" });
    const results = await Promise.all([finetune(o), finetune(o)]);
    assert.deepEqual(results.map((r) => r.alreadyDone).sort(), [false, true]);
    assert.deepEqual(results[0].metrics, results[1].metrics);
    await assert.rejects(Deno.stat(join(o.out, ".lock")), Deno.errors.NotFound, "the lock is released");
  } finally {
    await w.cleanup();
  }
});

Deno.test("finetune --workers 2: two Workers train; the same run repeats bitwise; no leaks", async () => {
  const w = await tinyWorld();
  const tensorsBefore = tf.memory().numTensors;
  try {
    const opts = (out: string) => ({
      model: w.model,
      task: "RTE",
      mode: "bitfit",
      out: join(w.dir, out),
      epochs: 1,
      batchSize: 8,
      maxLen: 24,
      lr: 3e-3,
      glueDir: w.glue,
      workers: 2,
      quiet: true,
    });
    const a = await finetune(opts("a"));
    const b = await finetune(opts("b"));
    assert.equal(tf.memory().numTensors, tensorsBefore, "finetune leaked tensors");
    assert.equal(a.config.identity.workers, 2);
    const [da, db] = [await readDelta(a.deltaPath), await readDelta(b.deltaPath)];
    let moved = false;
    for (const [name, t] of da.tensors) {
      assert.ok(bitwiseEqual(t.data, db.tensors.get(name)!.data), `${name} differs between two runs`);
      if (name.endsWith(".bias") && !bitwiseEqual(t.data, ck.tensors.get(name)?.data ?? t.data)) moved = true;
    }
    assert.ok(moved, "training with two workers changed no bias");
  } finally {
    await w.cleanup();
  }
});
