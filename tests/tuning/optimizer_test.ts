import assert from "node:assert/strict";
import { initBackend, tf } from "../../lib/tf.ts";
import { AdamW, clipByGlobalNorm, decays } from "../../lib/tuning/optimizer.ts";

await initBackend();

/** torch.optim.AdamW in float64, for comparison. */
function reference(p0: number[], grads: number[][], lr: number, wd: number): number[] {
  const [b1, b2, eps] = [0.9, 0.999, 1e-8];
  const p = [...p0], m = p0.map(() => 0), v = p0.map(() => 0);
  grads.forEach((g, k) => {
    const t = k + 1;
    for (let i = 0; i < p.length; i++) {
      p[i] *= 1 - lr * wd;
      m[i] = b1 * m[i] + (1 - b1) * g[i];
      v[i] = b2 * v[i] + (1 - b2) * g[i] * g[i];
      p[i] -= (lr / (1 - b1 ** t)) * m[i] / (Math.sqrt(v[i]) / Math.sqrt(1 - b2 ** t) + eps);
    }
  });
  return p;
}

Deno.test("AdamW matches a hand-computed two-step update (decay on weights, none on biases)", () => {
  const w0 = [0.5, -1.25, 2, 0.001], b0 = [0.3, -0.7];
  const gw = [[0.1, -0.2, 0.3, 1e-4], [-0.05, 0.4, 0.3, 2e-4]], gb = [[1, -1], [0.5, 0.25]];
  const params = new Map([
    ["x.dense.weight", tf.variable(tf.tensor1d(w0))],
    ["x.dense.bias", tf.variable(tf.tensor1d(b0))],
  ]);
  const opt = new AdamW(params, new Map([["x.dense.weight", "all"], ["x.dense.bias", "all"]]), {
    weightDecay: 0.1,
  });
  for (let k = 0; k < 2; k++) {
    const grads = new Map([["x.dense.weight", tf.tensor1d(gw[k])], ["x.dense.bias", tf.tensor1d(gb[k])]]);
    opt.apply(grads, 0.01 * (k + 1));
    tf.dispose([...grads.values()]);
  }
  // The reference takes one lr per run; rebuild it step by step with the same rates.
  const ref = (p0: number[], g: number[][], wd: number) => {
    // two steps with lr 0.01 then 0.02: recompute by hand
    const [b1, b2, eps] = [0.9, 0.999, 1e-8];
    const p = [...p0], m = p0.map(() => 0), v = p0.map(() => 0);
    [0.01, 0.02].forEach((lr, k) => {
      const t = k + 1;
      for (let i = 0; i < p.length; i++) {
        p[i] *= 1 - lr * wd;
        m[i] = b1 * m[i] + (1 - b1) * g[k][i];
        v[i] = b2 * v[i] + (1 - b2) * g[k][i] ** 2;
        p[i] -= (lr / (1 - b1 ** t)) * m[i] / (Math.sqrt(v[i]) / Math.sqrt(1 - b2 ** t) + eps);
      }
    });
    return p;
  };
  const gotW = [...params.get("x.dense.weight")!.dataSync()],
    gotB = [...params.get("x.dense.bias")!.dataSync()];
  const wantW = ref(w0, gw, 0.1), wantB = ref(b0, gb, 0);
  gotW.forEach((x, i) => assert.ok(Math.abs(x - wantW[i]) < 1e-6, `w[${i}] ${x} vs ${wantW[i]}`));
  gotB.forEach((x, i) => assert.ok(Math.abs(x - wantB[i]) < 1e-6, `b[${i}] ${x} vs ${wantB[i]}`));
  // Sanity of the reference itself: first step of Adam moves each element by ~lr.
  assert.ok(Math.abs(reference([1], [[3]], 0.1, 0)[0] - 0.9) < 1e-6);
  assert.equal(opt.step, 2);
  opt.dispose();
  tf.dispose([...params.values()]);
});

Deno.test("masked elements keep their exact bits, weight decay included", async () => {
  const init = new Float32Array([0.1, -0.2, 0.3, 1 / 3, -0, 7.5]);
  const p = tf.variable(tf.tensor2d(init, [2, 3]));
  const mask = new Float32Array([1, 0, 0, 1, 0, 1]);
  const opt = new AdamW(new Map([["a.weight", p]]), new Map([["a.weight", mask]]), { weightDecay: 0.5 });
  for (let k = 0; k < 3; k++) {
    const g = tf.tensor2d([[1, 2, 3], [4, 5, -6]]);
    const masked = opt.maskGradients(new Map([["a.weight", g]]));
    assert.deepEqual([...masked.get("a.weight")!.dataSync()], [1, 0, 0, 4, 0, -6]);
    opt.apply(masked, 0.1);
    tf.dispose([g, ...masked.values()]);
  }
  const got = p.dataSync() as Float32Array;
  for (let i = 0; i < 6; i++) {
    if (mask[i] === 0) assert.ok(Object.is(got[i], init[i]), `element ${i} changed: ${got[i]}`);
    else assert.notEqual(got[i], init[i]);
  }
  const state = await opt.exportState();
  assert.deepEqual(
    [...state.get("m/a.weight")!.data].map((x, i) => mask[i] ? x !== 0 : x === 0),
    Array(6).fill(true),
  );
  opt.dispose();
  p.dispose();
});

Deno.test("state export and import restore the moments", async () => {
  const mk = () => new Map([["l.weight", tf.variable(tf.tensor1d([1, 2, 3]))]]);
  const a = mk(), b = mk();
  const sel = new Map([["l.weight", "all" as const]]);
  const oa = new AdamW(a, sel), ob = new AdamW(b, sel);
  const g = new Map([["l.weight", tf.tensor1d([0.3, -0.1, 0.2])]]);
  oa.apply(g, 0.1);
  ob.importState(await oa.exportState(), oa.step);
  b.get("l.weight")!.assign(a.get("l.weight")!);
  oa.apply(g, 0.05);
  ob.apply(g, 0.05);
  assert.deepEqual(b.get("l.weight")!.dataSync(), a.get("l.weight")!.dataSync());
  assert.throws(() => ob.importState(new Map(), 1), /lacks "m\/l.weight"/);
  tf.dispose([...g.values(), ...a.values(), ...b.values()]);
  oa.dispose();
  ob.dispose();
});

Deno.test("global-norm clipping as torch does, and no decay on biases and LayerNorm", async () => {
  const grads = new Map([["a", tf.tensor1d([3, 0])], ["b", tf.tensor1d([0, 4])]]);
  const before = tf.memory().numTensors;
  const { grads: clipped, norm } = await clipByGlobalNorm(grads, 1);
  assert.ok(Math.abs(norm - 5) < 1e-6);
  const a = clipped.get("a")!.dataSync();
  assert.ok(Math.abs(a[0] - 3 / (5 + 1e-6)) < 1e-6);
  assert.equal(tf.memory().numTensors, before + 2);
  tf.dispose([...clipped.values()]);
  const same = await clipByGlobalNorm(grads, 10);
  assert.equal(same.grads, grads);
  tf.dispose([...grads.values()]);
  assert.equal(decays("bert.pooler.dense.weight"), true);
  assert.equal(decays("bert.pooler.dense.bias"), false);
  assert.equal(decays("bert.embeddings.LayerNorm.weight"), false);
});
