/**
 * The fused AdamW update and non-finite check (lib/backend/optimizer_kernels.ts) against the tfjs op
 * sequence they replace, bit for bit, on wasm and cpu: every parameter, moment and step.
 */
import assert from "node:assert/strict";
import { loadCheckpoint } from "../../lib/bert/checkpoint.ts";
import { BertClassifier } from "../../lib/bert/model.ts";
import { parameterShapes } from "../../lib/bert/names.ts";
import type { TensorMap } from "../../lib/bert/safetensors.ts";
import { OPTIMIZER_KERNELS } from "../../lib/backend/optimizer_kernels.ts";
import { initBackend, tf } from "../../lib/tf.ts";
import { type Selection, selectTrainable } from "../../lib/tuning/modes.ts";
import { AdamW, clipByGlobalNorm } from "../../lib/tuning/optimizer.ts";
import { StepRunner } from "../../lib/tuning/step.ts";
import { mulberry32, normal } from "../../lib/util/random.ts";
import { bitwiseEqual, GOLDEN, smallBatch } from "./fixture.ts";

/**
 * Signed values over many magnitudes (1e-30 to 1e12 times a normal draw), with exact zeros, -0 and
 * subnormals: where rounding order would show.
 */
function wide(n: number, rng: () => number, maxExp = 12): Float32Array {
  const out = new Float32Array(n);
  for (let i = 0; i < n; i++) {
    const r = rng();
    if (r < 0.03) out[i] = 0;
    else if (r < 0.05) out[i] = -0;
    else if (r < 0.07) out[i] = (rng() - 0.5) * 1e-42;
    else out[i] = normal(rng) * 10 ** (-30 + (maxExp + 30) * rng());
  }
  return out;
}

/** name -> shape, and which get masks: sizes with and without a SIMD tail, decayed and not. */
const PARAMS: [string, number[], boolean][] = [
  ["a.dense.weight", [37, 23], false], // 851 elements: 212 vectors and a tail of 3
  ["a.dense.bias", [5], false], // no decay
  ["b.LayerNorm.weight", [64], false], // no decay
  ["c.weight", [3], false], // the tail only
  ["d.dense.weight", [4099], true], // masked, decayed
  ["d.dense.bias", [10], true], // masked, no decay
];

function setup(ops: boolean, weightDecay: number) {
  const rng = mulberry32(7);
  const params = new Map<string, tf.Variable>();
  const selection: Selection = new Map();
  for (const [name, shape, masked] of PARAMS) {
    const n = shape.reduce((a, b) => a * b, 1);
    params.set(name, tf.variable(tf.tensor(wide(n, rng, 3), shape)));
    selection.set(name, masked ? Float32Array.from({ length: n }, () => (rng() < 0.4 ? 1 : 0)) : "all");
  }
  const opt = new AdamW(params, selection, { weightDecay, ops });
  // Moments from a long run: anything finite, v >= 0.
  const state: TensorMap = new Map();
  for (const [name, shape] of PARAMS) {
    const n = shape.reduce((a, b) => a * b, 1);
    state.set(`m/${name}`, { shape, data: wide(n, rng, 6) });
    state.set(`v/${name}`, { shape, data: wide(n, rng, 10).map(Math.abs) });
  }
  opt.importState(state, 0);
  return { params, opt };
}

async function assertSame(a: ReturnType<typeof setup>, b: ReturnType<typeof setup>, what: string) {
  for (const [name, p] of a.params) {
    assert.ok(
      bitwiseEqual(p.dataSync() as Float32Array, b.params.get(name)!.dataSync() as Float32Array),
      `${what}: ${name}`,
    );
  }
  const sa = await a.opt.exportState(), sb = await b.opt.exportState();
  for (const [key, t] of sa) assert.ok(bitwiseEqual(t.data, sb.get(key)!.data), `${what}: ${key}`);
}

function dispose(x: ReturnType<typeof setup>) {
  x.opt.dispose();
  tf.dispose([...x.params.values()]);
}

for (const backend of ["wasm", "cpu"] as const) {
  Deno.test(`${backend}: the fused AdamW update gives the op sequence's bits, every step (decay on and off, masks, clipping scale, bias correction 1..12)`, async () => {
    await initBackend(backend);
    for (const wd of [0.01, 0.3, 0]) {
      const fused = setup(false, wd), ops = setup(true, wd);
      const rng = mulberry32(99);
      const counts: number[] = [];
      for (let t = 1; t <= 12; t++) {
        const lr = [1e-3, 5e-2, 3e-5, 2][t % 4] * (1 + rng());
        const scale = t % 3 === 0 ? undefined : rng();
        const grads = new Map(
          PARAMS.map((
            [name, shape],
          ) => [name, tf.tensor(wide(shape.reduce((a, b) => a * b, 1), rng), shape)]),
        );
        const kernelsOf = async (opt: AdamW) =>
          (await tf.profile(() => opt.apply(grads, lr, scale))).kernelNames;
        const kf = await kernelsOf(fused.opt), ko = await kernelsOf(ops.opt);
        assert.ok(kf.includes(OPTIMIZER_KERNELS.adamw) && !kf.includes("Sqrt"), `fused ran ${kf}`);
        assert.ok(!ko.includes(OPTIMIZER_KERNELS.adamw) && ko.includes("Sqrt"), `ops ran ${ko}`);
        tf.dispose([...grads.values()]);
        await assertSame(fused, ops, `wd ${wd} step ${t}`);
        counts.push(tf.memory().numTensors);
      }
      assert.equal(new Set(counts).size, 1, `tensor counts ${counts}`);
      assert.equal(fused.opt.step, 12);
      dispose(fused);
      dispose(ops);
    }
  });

  Deno.test(`${backend}: apply(grads, lr, scale) gives the bits of clipByGlobalNorm's scaled gradients applied as ops`, async () => {
    await initBackend(backend);
    const old = setup(true, 0.01), fused = setup(false, 0.01), ops = setup(true, 0.01);
    const rng = mulberry32(5);
    for (let t = 1; t <= 4; t++) {
      const grads = new Map(
        PARAMS.map((
          [name, shape],
        ) => [name, tf.tensor(wide(shape.reduce((a, b) => a * b, 1), rng, 0), shape)]),
      );
      // What StepRunner did before: clip (new tensors), then apply.
      const { grads: clipped, norm } = await clipByGlobalNorm(grads, 1e-3);
      assert.notEqual(clipped, grads, "clipping happened");
      old.opt.apply(clipped, 1e-2);
      const coef = 1e-3 / (norm + 1e-6);
      fused.opt.apply(grads, 1e-2, coef);
      ops.opt.apply(grads, 1e-2, coef);
      tf.dispose([...grads.values(), ...clipped.values()]);
      await assertSame(fused, old, `fused step ${t}`);
      await assertSame(ops, old, `ops step ${t}`);
    }
    for (const x of [old, fused, ops]) dispose(x);
  });

  Deno.test(`${backend}: the fused non-finite check names the same parameter as the ops`, async () => {
    await initBackend(backend);
    const fused = setup(false, 0.01), ops = setup(true, 0.01);
    try {
      assert.equal(await fused.opt.nonFinite(), undefined);
      assert.equal(await ops.opt.nonFinite(), undefined);
      // Poison elements (a vector lane, a tail element) of later and earlier parameters in turn.
      for (
        const [name, at, x] of [["d.dense.bias", 9, NaN], ["c.weight", 2, -Infinity], [
          "a.dense.weight",
          850,
          Infinity,
        ]] as const
      ) {
        for (const { params } of [fused, ops]) {
          const p = params.get(name)!;
          const d = (p.dataSync() as Float32Array).slice();
          d[at] = x;
          tf.tidy(() => p.assign(tf.tensor(d, p.shape)));
        }
        const want = await ops.opt.nonFinite();
        assert.equal(want, name);
        assert.equal(await fused.opt.nonFinite(), want);
      }
    } finally {
      dispose(fused);
      dispose(ops);
    }
  });

  Deno.test(`${backend}: training steps with the fused update repeat the op sequence's bits (full and masked, clipped and not)`, async () => {
    await initBackend(backend);
    const ck = await loadCheckpoint(GOLDEN, { numLabels: 2, seed: 1, quiet: true });
    const names = [...parameterShapes(ck.config, 2).keys()];
    const { batch, labels } = smallBatch();
    const masked: Selection = new Map(selectTrainable("full", names));
    const q = "bert.encoder.layer.1.attention.self.query.weight";
    masked.set(q, Float32Array.from({ length: 16 * 16 }, (_, i) => (i % 3 === 0 ? 1 : 0)));
    for (
      const [selection, clip] of [[selectTrainable("full", names), 0.05], [masked, 0], [
        masked,
        0.05,
      ]] as const
    ) {
      const train = async (ops: boolean) => {
        const model = new BertClassifier(ck.config, 2, ck.tensors);
        const runner = new StepRunner(model, selection, { weightDecay: 0.01, clip });
        runner.optimizer.ops = ops;
        const norms: number[] = [], counts: number[] = [];
        for (let s = 0; s < 4; s++) {
          norms.push((await runner.step(batch, labels, 1e-2, s)).gradNorm);
          counts.push(tf.memory().numTensors);
        }
        const values = new Map([...model.params].map(([n, v]) => [n, v.dataSync() as Float32Array]));
        const state = await runner.optimizer.exportState();
        runner.dispose();
        model.dispose();
        return { norms, counts, values, state };
      };
      const a = await train(false), b = await train(true);
      assert.deepEqual(a.norms, b.norms);
      if (clip) assert.ok(a.norms.every((n) => n > clip), `clipping happened: norms ${a.norms}`);
      assert.equal(new Set(a.counts).size, 1, `tensor counts ${a.counts}`);
      for (const [n, v] of a.values) assert.ok(bitwiseEqual(v, b.values.get(n)!), `clip ${clip}: ${n}`);
      for (const [k, t] of a.state) {
        assert.ok(bitwiseEqual(t.data, b.state.get(k)!.data), `clip ${clip}: ${k}`);
      }
    }
  });
}
