import assert from "node:assert/strict";
import { benchMatMulForms, formatMatMul, MATMUL_FORMS, matMulPeak } from "../../lib/bench/matmul.ts";
import { initBackend } from "../../lib/tf.ts";

Deno.test("every matMul form is timed on both backends with a positive rate", async () => {
  for (const backend of ["wasm", "cpu"] as const) {
    await initBackend(backend);
    const rows = benchMatMulForms([64, 16, 32], { warmup: 0, repeats: 1, batched: [4, 16, 8] });
    assert.deepEqual(rows.map((r) => r.form), [...MATMUL_FORMS]);
    for (const r of rows) {
      assert.ok(r.seconds > 0 && r.gflops > 0, `${backend} ${r.form}: ${r.seconds} s`);
    }
    assert.equal(rows[0].flops, 2 * 64 * 16 * 32);
    assert.match(formatMatMul(rows), /transposeA\s+\[16,64\]\^T x \[16,32\]/);
    assert.equal(matMulPeak([32, 8, 16], { warmup: 0, repeats: 1 }).form, "plain");
  }
});
