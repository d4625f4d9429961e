import assert from "node:assert/strict";
import { getShape, largestProduct, shapeConfig, SHAPES, stepFlops } from "../../lib/bench/shapes.ts";
import { parameterShapes } from "../../lib/bert/names.ts";
import { elementCount } from "../../lib/util/shape.ts";

Deno.test("shapes match torch_step.py and make valid configs (bert-base has 110M parameters)", () => {
  assert.deepEqual(
    Object.values(SHAPES).map((s) => [s.layers, s.hidden, s.heads, s.ffn, s.batch, s.seq]),
    [[2, 128, 2, 512, 32, 128], [4, 256, 4, 1024, 32, 128], [12, 768, 12, 3072, 8, 128]],
  );
  const base = shapeConfig(SHAPES.base);
  const n = [...parameterShapes(base, 2).values()].reduce((s, shape) => s + elementCount(shape), 0);
  assert.ok(n > 109e6 && n < 110e6, `bert-base parameters: ${n}`);
  assert.equal(base.hidden_dropout_prob, 0);
  assert.throws(() => getShape("huge"), /unknown benchmark shape "huge"/);
});

Deno.test("step FLOPs: products only; training weights costs a third more backward work", () => {
  const s = SHAPES.tiny;
  const tokens = 32 * 128;
  const f = stepFlops(s, "full");
  // Forward by hand: per layer 8h^2 + 4hf + 4sh per token, plus pooler and classifier per example.
  const forward = 2 * tokens * (8 * 128 * 128 + 4 * 128 * 512 + 4 * 128 * 128) +
    32 * (2 * 128 * 128 + 2 * 128 * 2);
  assert.equal(f.forward, forward);
  assert.ok(Math.abs(f.step / f.forward - 3) < 0.01, `full step / forward = ${f.step / f.forward}`);
  const ln = stepFlops(s, "layernorm"), bitfit = stepFlops(s, "bitfit");
  assert.equal(ln.step, bitfit.step); // neither trains a weight matrix
  assert.ok(
    ln.step / f.forward > 2 && ln.step / f.forward < 2.2,
    `frozen step / forward = ${ln.step / f.forward}`,
  );
  assert.deepEqual(largestProduct(s), [4096, 128, 512]);
  assert.equal(stepFlops(s, "full", 16, 64).forward < f.forward / 2, true);
});
