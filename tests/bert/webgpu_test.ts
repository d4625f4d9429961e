/**
 * The model on webgpu (Deno's WebGPU; in CI Mesa's llvmpipe): logits, loss and every gradient equal
 * PyTorch's golden values, per-example gradients from one pass equal one-example passes, the batched
 * Fisher equals the one-example loop, frozen parameters get no gradient computed, and a few AdamW steps
 * train with masked elements bitwise unchanged. webgpu runs the op-by-op path (no fused kernels), and
 * reads only asynchronously. Tiny shapes throughout: the software adapter is slow.
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { initBackend, tf } from "../../lib/tf.ts";
import { fusedKernelsActive } from "../../lib/bert/fused_ops.ts";
import { readSafetensors } from "../../lib/bert/safetensors.ts";
import { isLayerNorm } from "../../lib/bert/names.ts";
import { computeFisher, type LabeledBatch } from "../../lib/analysis/fisher_information.ts";
import { AdamW } from "../../lib/tuning/optimizer.ts";
import type { Selection } from "../../lib/tuning/modes.ts";
import {
  allGrads,
  assertClose,
  assertFrozenWeightsGetNoGradient,
  assertPerExampleGradients,
  GOLDEN,
  goldenModel,
} from "./golden.ts";

async function webgpu(): Promise<void> {
  assert.equal(await initBackend("webgpu"), "webgpu");
  assert.equal(fusedKernelsActive(), false, "webgpu runs the op-by-op path");
}

for (const tag of ["cls", "reg"] as const) {
  Deno.test(`webgpu golden ${tag}: logits, loss and every gradient equal PyTorch's`, async () => {
    await webgpu();
    const want = await readSafetensors(join(GOLDEN, `grads_${tag}.safetensors`));
    const { model, batch, g } = await goldenModel(tag);
    const before = tf.memory().numTensors;
    const logits = model.logits(batch);
    assert.deepEqual(logits.shape, [3, g.num_labels]);
    assertClose(await logits.data(), g.logits.flat(), "webgpu logits");
    logits.dispose();
    const { loss, grads } = await allGrads(model, batch, g.labels);
    assertClose([loss], [g.loss], "webgpu loss");
    assert.equal(grads.size, want.size);
    for (const [name, t] of want) {
      assert.ok(grads.has(name), `webgpu: no gradient for ${name}`);
      assertClose(grads.get(name)!, t.data, `webgpu grad ${name}`);
    }
    assert.equal(tf.memory().numTensors, before, "tensors leaked");
    model.dispose();
  });
}

Deno.test("webgpu: per-example gradients from one pass equal one-example passes", async () => {
  await webgpu();
  await assertPerExampleGradients("webgpu");
});

for (const labels of ["true", "sampled"] as const) {
  Deno.test(`webgpu: batched per-example Fisher (${labels} labels) equals the one-example loop and cpu's`, async () => {
    const fisher = async (method: "batched" | "loop") => {
      const { model, batch, g } = await goldenModel("cls");
      const data: LabeledBatch[] = [{ batch, labels: g.labels }];
      const before = tf.memory().numTensors;
      const f = await computeFisher(model, data, {
        params: "layernorm",
        examples: 3,
        seed: 0,
        method,
        batchSize: 2,
        labels,
      });
      assert.equal(tf.memory().numTensors, before, `${method}: tensors leaked`);
      model.dispose();
      return f;
    };
    await initBackend("cpu");
    const cpu = await fisher("batched");
    await webgpu();
    const batched = await fisher("batched");
    const loop = await fisher("loop");
    assert.ok(batched.size > 0);
    for (const [name, want] of cpu) {
      const scale = Math.max(...want.data.map(Math.abs));
      assert.ok(scale > 0, `${name}: a Fisher of zero tests nothing`);
      for (const [what, got] of [["batched", batched], ["loop", loop]] as const) {
        const t = got.get(name)!;
        for (let i = 0; i < want.data.length; i++) {
          assert.ok(Math.abs(t.data[i] - want.data[i]) <= 1e-4 * scale, `${what} ${name}[${i}]`);
        }
      }
    }
  });
}

Deno.test("webgpu: frozen weights get no gradient computed", async () => {
  await webgpu();
  await assertFrozenWeightsGetNoGradient(["BatchMatMul", "_FusedMatMul"]);
});

Deno.test("webgpu: AdamW steps on a mask lower the loss; masked-out and frozen elements stay bitwise", async () => {
  await webgpu();
  const { model, batch, g } = await goldenModel("cls");
  // Train every other element of each LayerNorm gamma and beta, plus the head.
  const selection: Selection = new Map();
  for (const [name, v] of model.params) {
    if (isLayerNorm(name)) selection.set(name, Float32Array.from({ length: v.size }, (_, i) => i % 2));
    else if (name.startsWith("classifier.")) selection.set(name, "all");
  }
  const before = new Map<string, Float32Array>();
  for (const [name, v] of model.params) before.set(name, (await v.data()) as Float32Array);
  const opt = new AdamW(model.params, selection);
  const losses: number[] = [];
  for (let step = 0; step < 4; step++) {
    const { value, grads } = tf.variableGrads(
      () => model.loss(model.logits(batch), g.labels),
      opt.variables(),
    );
    const named = new Map(opt.names.map((n) => [n, grads[model.params.get(n)!.name]]));
    const masked = opt.maskGradients(named);
    opt.apply(masked, 1e-2);
    losses.push((await value.data())[0]);
    tf.dispose([
      value,
      ...Object.values(grads),
      ...[...masked.values()].filter((t) => ![...named.values()].includes(t)),
    ]);
  }
  assert.ok(losses[3] < losses[0], `loss did not fall: ${losses}`);
  let trainedChanged = 0;
  for (const [name, v] of model.params) {
    const now = (await v.data()) as Float32Array, was = before.get(name)!;
    const sel = selection.get(name);
    for (let i = 0; i < now.length; i++) {
      const trains = sel === "all" || (sel !== undefined && sel[i] === 1);
      if (!trains) assert.equal(Object.is(now[i], was[i]), true, `${name}[${i}] changed`);
      else if (now[i] !== was[i]) trainedChanged++;
    }
  }
  assert.ok(trainedChanged > 0, "nothing trained");
  opt.dispose();
  model.dispose();
});
