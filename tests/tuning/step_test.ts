import assert from "node:assert/strict";
import { loadCheckpoint } from "../../lib/bert/checkpoint.ts";
import { BertClassifier } from "../../lib/bert/model.ts";
import { parameterShapes } from "../../lib/bert/names.ts";
import { initBackend, tf } from "../../lib/tf.ts";
import { type ModeName, type Selection, selectTrainable } from "../../lib/tuning/modes.ts";
import { StepRunner } from "../../lib/tuning/step.ts";
import { bitwiseEqual, GOLDEN, smallBatch } from "./fixture.ts";

await initBackend();

const ck = await loadCheckpoint(GOLDEN, { numLabels: 2, seed: 1, quiet: true });
const { batch, labels } = smallBatch();

function values(model: BertClassifier): Map<string, Float32Array> {
  return new Map([...model.params].map(([n, v]) => [n, v.dataSync() as Float32Array]));
}

async function train(selection: Selection, steps: number) {
  const model = new BertClassifier(ck.config, 2, ck.tensors);
  const runner = new StepRunner(model, selection, { weightDecay: 0.01 });
  const before = values(model);
  const gradNames: string[][] = [];
  const counts: number[] = [];
  for (let s = 0; s < steps; s++) {
    gradNames.push((await runner.step(batch, labels, 1e-2, s)).gradNames);
    counts.push(tf.memory().numTensors);
  }
  const after = values(model);
  runner.dispose();
  model.dispose();
  return { before, after, gradNames, counts };
}

const names = [...parameterShapes(ck.config, 2).keys()];

for (const mode of ["layernorm", "bitfit", "layernorm-output", "head", "head-pooler"] as ModeName[]) {
  Deno.test(`${mode}: frozen parameters bitwise unchanged, gradients only for trained ones`, async () => {
    const selection = selectTrainable(mode, names);
    const { before, after, gradNames } = await train(selection, 3);
    for (const g of gradNames) assert.deepEqual(g.sort(), [...selection.keys()].sort());
    for (const name of names) {
      const same = bitwiseEqual(before.get(name)!, after.get(name)!);
      assert.equal(
        same,
        !selection.has(name),
        `${name}: ${selection.has(name) ? "trained but unchanged" : "frozen but changed"}`,
      );
    }
  });
}

Deno.test("masked parameter: unselected elements keep their bits, selected ones move", async () => {
  const q = "bert.encoder.layer.1.attention.self.query.weight";
  const mask = new Float32Array(16 * 16);
  for (let i = 0; i < mask.length; i += 7) mask[i] = 1;
  const selection: Selection = new Map<string, Float32Array | "all">([
    [q, mask],
    ["classifier.weight", "all"],
    ["classifier.bias", "all"],
  ]);
  const { before, after } = await train(selection, 3);
  const b = before.get(q)!, a = after.get(q)!;
  for (let i = 0; i < mask.length; i++) {
    if (mask[i]) assert.notEqual(a[i], b[i], `element ${i} did not train`);
    else assert.ok(Object.is(a[i], b[i]), `element ${i} changed`);
  }
});

Deno.test("frozen weights cost no gradient work: the step's gradient pass runs fewer kernels", async () => {
  // The kernels of the gradient computation for exactly the variables the step passes to tfjs.
  const kernels = async (mode: ModeName) => {
    const model = new BertClassifier(ck.config, 2, ck.tensors);
    const runner = new StepRunner(model, selectTrainable(mode, names));
    const vars = runner.optimizer.variables();
    const info = await tf.profile(() => {
      const { value, grads } = tf.variableGrads(() => model.loss(model.logits(batch), labels), vars);
      tf.dispose([value, ...Object.values(grads)]);
    });
    runner.dispose();
    model.dispose();
    return { count: info.kernels.length, vars: vars.length };
  };
  const full = await kernels("full"), ln = await kernels("layernorm");
  assert.equal(full.vars, names.length);
  assert.equal(ln.vars, 5 * 2 + 2);
  // Each of the 13 frozen dense weights (6 per layer + pooler) would need at least one product.
  assert.ok(ln.count + 13 <= full.count, `layernorm ${ln.count} vs full ${full.count} kernels`);
});

Deno.test("no tensor leaks across training steps", async () => {
  const { counts } = await train(selectTrainable("full", names), 5);
  assert.equal(new Set(counts.slice(1)).size, 1, `tensor counts ${counts}`);
});

Deno.test("a diverging step (NaN loss) throws before changing anything", async () => {
  const model = new BertClassifier(ck.config, 2, ck.tensors);
  const runner = new StepRunner(model, selectTrainable("full", names));
  try {
    const before = values(model);
    const bad = smallBatch().batch;
    const nanLabels = Float32Array.from([NaN, 0, 1]) as unknown as Int32Array;
    await assert.rejects(runner.step(bad, nanLabels, 1e-3, 0));
    const after = values(model);
    for (const n of names) assert.ok(bitwiseEqual(before.get(n)!, after.get(n)!), n);
  } finally {
    runner.dispose();
    model.dispose();
  }
});

for (const mode of ["bitfit", "full"] as const) {
  Deno.test(`micro-batches accumulate to the whole batch's update (${mode}, no dropout), without leaks`, async () => {
    const config = { ...ck.config, hidden_dropout_prob: 0, attention_probs_dropout_prob: 0 };
    const run = async (microBatch: number) => {
      const model = new BertClassifier(config, 2, ck.tensors);
      const runner = new StepRunner(model, selectTrainable(mode, names), { weightDecay: 0.01, microBatch });
      const counts: number[] = [];
      for (let s = 0; s < 3; s++) {
        await runner.step(batch, labels, 1e-2, s);
        counts.push(tf.memory().numTensors);
      }
      const out = values(model);
      runner.dispose();
      model.dispose();
      return { out, counts };
    };
    const whole = await run(0), micro = await run(1);
    assert.equal(new Set(micro.counts).size, 1, `tensor counts ${micro.counts}`);
    for (const [name, a] of whole.out) {
      // The key bias cancels in the softmax: its exact gradient is 0, so Adam turns rounding noise of
      // either sign into full-size steps. Every other parameter must agree.
      if (name.endsWith("attention.self.key.bias")) continue;
      const b = micro.out.get(name)!;
      const diff = a.reduce((m, x, i) => Math.max(m, Math.abs(x - b[i])), 0);
      assert.ok(diff < 1e-5, `${name}: micro-batched update differs by ${diff}`);
    }
  });
}
