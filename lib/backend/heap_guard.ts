/**
 * The wasm heap guard: a failed heap allocation becomes a `WasmHeapError` that says what to do. Without
 * it, tfjs-wasm's malloc returns 0 when the heap cannot grow and the tensor is written over the start of
 * the heap. Installed by `installBackend` (lib/backend/install.ts) once the wasm backend has started.
 */

/** The wasm heap's hard limit: wasm32 addresses 4 GiB (tfjs-wasm is built with that maximum). */
export const WASM_HEAP_LIMIT = 4 * 2 ** 30;

/** An allocation the wasm heap cannot hold. */
export class WasmHeapError extends Error {}

// deno-lint-ignore no-explicit-any
type WasmModule = any;

const guarded = new WeakSet<object>();

/** Wraps the started wasm backend's malloc (idempotent; a backend without a wasm module is left alone). */
export function guardWasmHeap(backend: unknown): void {
  const wasm = (backend as { wasm?: WasmModule } | undefined)?.wasm;
  if (!wasm || guarded.has(wasm)) return;
  guarded.add(wasm);
  const malloc = wasm._malloc.bind(wasm);
  wasm._malloc = (bytes: number) => {
    const ptr = malloc(bytes);
    if (ptr === 0 && bytes > 0) {
      const mib = (n: number) => `${Math.round(n / 2 ** 20)} MiB`;
      throw new WasmHeapError(
        `wasm heap exhausted: cannot allocate ${mib(bytes)} with the heap at ${
          mib(wasm.HEAPU8.length)
        } of its ` +
          `${
            mib(WASM_HEAP_LIMIT)
          } limit (wasm32). Use a smaller batch or micro-batches, a mode that trains fewer ` +
          `parameters (layernorm or bitfit keep no gradients or optimizer state for frozen weights), or the ` +
          `tensorflow backend.`,
      );
    }
    return ptr;
  };
}
