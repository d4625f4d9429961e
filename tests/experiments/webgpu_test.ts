/**
 * The experiment runner on webgpu (in CI Mesa's llvmpipe): a tiny study (the tiny world's golden
 * checkpoint, RTE, 8 examples) runs its Fisher cell and a LayerNorm fine-tuning cell with the study's real
 * executors, and their records equal the same cells computed on cpu within float32 tolerance (the records
 * keep a few significant digits). The cells' ids differ: the backend is part of a cell's identity.
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { studyExecutors } from "../../lib/experiments/cells.ts";
import type { FinetuneRecord, FisherCellRecord } from "../../lib/experiments/load.ts";
import { getProfile, type Profile, sparseEpochs } from "../../lib/experiments/profiles.ts";
import { Runner } from "../../lib/experiments/runner.ts";
import { ResultStore } from "../../lib/experiments/store.ts";
import { findGrid, studyContext, studyGrids } from "../../lib/experiments/study.ts";
import type { BackendName } from "../../lib/tf.ts";
import { tinyWorld } from "../tuning/fixture.ts";

Deno.test("webgpu runner: a Fisher cell and a fine-tuning cell equal cpu's", async () => {
  const w = await tinyWorld(8, 8);
  try {
    const smoke = getProfile("smoke", w.model);
    const profile: Profile = {
      ...smoke,
      tasks: ["RTE", "STS-B"], // the cross-task grid needs two; only RTE's cells run
      seeds: smoke.seeds.slice(0, 1),
      train: { ...smoke.train, maxLen: 16, batchSize: 4, maxTrain: 8, maxDev: 8 },
      fisher: { ...smoke.fisher, examples: 4, maxLen: 16 },
    };
    const study = async (backend: BackendName) => {
      const ctx = await studyContext(profile, { glueDir: w.glue, backend });
      const grids = studyGrids(ctx);
      const fisher = findGrid(grids, "fisher").cells.find((c) => c.config.task === "RTE")!;
      const tuned = findGrid(grids, "main").cells.find((c) =>
        c.config.task === "RTE" && c.config.mode === "layernorm"
      )!;
      const store = new ResultStore(join(w.dir, backend, "results"), join(w.dir, backend, "runs"));
      const executors = studyExecutors({ modelDir: ctx.modelDir, glueDir: ctx.glueDir, backend });
      const r = await new Runner({ store, executors }).runAll([fisher, tuned]);
      assert.equal(r.computed, 2, `${backend}: both cells computed`);
      return {
        ids: [fisher.id, tuned.id],
        fisher: ((await store.read(fisher.id)) as FisherCellRecord).result,
        tuned: (await store.read(tuned.id))! as FinetuneRecord,
      };
    };
    const cpu = await study("cpu");
    const gpu = await study("webgpu");
    assert.notDeepEqual(gpu.ids, cpu.ids, "the backend is part of a cell's identity");

    assert.equal(gpu.fisher.N, 4);
    assert.equal(gpu.fisher.records.length, cpu.fisher.records.length);
    gpu.fisher.records.forEach((g, i) => {
      const c = cpu.fisher.records[i];
      assert.deepEqual([g.component, g.layer, g.kind], [c.component, c.layer, c.kind]);
      assert.ok(
        Math.abs(g.mean - c.mean) <= 1e-3 * Math.abs(c.mean) + 1e-12,
        `${c.component}: ${g.mean} vs ${c.mean}`,
      );
    });
    assert.ok(cpu.fisher.records.some((r) => r.mean > 0), "a Fisher of zero tests nothing");

    const [g, c] = [gpu.tuned.result, cpu.tuned.result];
    // LayerNorm is a sparse class: it trains the profile's sparse epochs, 2 steps each.
    assert.equal(g.steps, 2 * sparseEpochs(profile.train.epochs), "8 examples in batches of 4");
    assert.equal(g.steps, c.steps);
    const [lg, lc] = [g.epochs[0].trainLoss, c.epochs[0].trainLoss];
    assert.ok(Number.isFinite(lg) && Math.abs(lg - lc) <= 1e-3 * Math.abs(lc), `train loss ${lg} vs ${lc}`);
  } finally {
    await w.cleanup();
  }
});
