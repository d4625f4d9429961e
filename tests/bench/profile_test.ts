import assert from "node:assert/strict";
import { formatProfile, OUTSIDE, profileKernels } from "../../lib/bench/profile.ts";
import { initBackend, tf } from "../../lib/tf.ts";

Deno.test("kernel profile: calls and times per kernel, the rest outside kernels, on either clock", async () => {
  await initBackend("wasm");
  const a = tf.ones([64, 64]);
  for (const clock of ["cpu", "wall"] as const) {
    const p = await profileKernels(() => {
      tf.tidy(() => {
        tf.matMul(a, a);
        tf.matMul(a, a);
        tf.add(a, 1);
      });
    }, clock);
    assert.equal(p.clock, clock);
    const mm = p.rows.find((r) => r.kernel === "BatchMatMul");
    assert.equal(mm?.calls, 2);
    assert.ok(p.rows.some((r) => r.kernel === "Add"));
    assert.equal(p.rows.at(-1)!.kernel, OUTSIDE);
    assert.ok(p.kernelMs <= p.wallMs + 1e-6);
    assert.match(formatProfile(p), /BatchMatMul\s+2/);
  }
  a.dispose();
});

Deno.test("kernel profile: the warm-up calls run first and are left out of the profile", async () => {
  await initBackend("wasm");
  const a = tf.ones([8, 8]);
  let calls = 0;
  const p = await profileKernels(
    () => {
      calls++;
      tf.tidy(() => tf.add(a, 1));
    },
    "cpu",
    2,
  );
  assert.equal(calls, 3);
  assert.equal(p.rows.find((r) => r.kernel === "Add")?.calls, 1);
  a.dispose();
});
