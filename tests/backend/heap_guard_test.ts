import assert from "node:assert/strict";
import { initBackend, tf } from "../../lib/tf.ts";
import { WasmHeapError } from "../../lib/backend/heap_guard.ts";

Deno.test("wasm: an allocation the heap cannot hold is an error that says what to do", async () => {
  await initBackend("wasm"); // installs the guard
  // deno-lint-ignore no-explicit-any
  const wasm = (tf.backend() as any).wasm;
  assert.throws(() => wasm._malloc(0xfffffff0), (err: unknown) => {
    assert.ok(err instanceof WasmHeapError);
    assert.match(err.message, /wasm heap exhausted.*layernorm or bitfit/s);
    return true;
  });
  const p = wasm._malloc(64); // ordinary allocations are unaffected
  assert.ok(p > 0);
  wasm._free(p);
});
