import assert from "node:assert/strict";
import { transposeInto } from "../../lib/backend/layout.ts";

Deno.test("transposeInto: strided transposes with a scale, any block remainder", () => {
  const rows = 11, cols = 19;
  const src = Float32Array.from({ length: rows * cols }, (_, i) => i);
  const dst = new Float32Array(rows * cols);
  transposeInto(src, 0, cols, dst, 0, rows, rows, cols, 2);
  for (let r = 0; r < rows; r++) {
    for (let c = 0; c < cols; c++) assert.equal(dst[c * rows + r], 2 * (r * cols + c));
  }
  // A 3 x 4 block out of a wider source, into a wider destination.
  const out = new Float32Array(4 * 7).fill(-1);
  transposeInto(src, 1 * cols + 2, cols, out, 3, 7, 3, 4);
  assert.equal(out[3], src[1 * cols + 2]);
  assert.equal(out[3 + 7 * 3 + 2], src[3 * cols + 5]);
  assert.equal(out[0], -1);
});
