/**
 * The one place that changes TensorFlow.js's registries. `initBackend` (lib/tf.ts) calls
 * `installBackend(tf, name)` once the backend has started; nothing else registers a kernel or a
 * gradient, and no module does so when imported.
 *
 * What it installs:
 * - for every backend, the gradients: stock kernels' (lib/backend/gradients.ts: the tfjs-core build Deno
 *   loads registers none) and the fused kernels' (lib/backend/fused_gradients.ts), with the tape passing
 *   null, not zeros, for the fused kernels' saved-only outputs (lib/backend/tape.ts);
 * - per backend, from `BACKEND_KERNELS`: the fused kernels (lib/backend/fused_kernels.ts) where the
 *   backend's tensors live in JavaScript-visible memory (wasm, cpu), replacements for slow stock kernels
 *   (lib/backend/wasm_kernels.ts), and what must wait for the started backend (the wasm heap guard,
 *   lib/backend/heap_guard.ts; on webgpu clear errors for synchronous reads and for memory the GPU cannot hold, lib/backend/webgpu.ts
 *   and lib/backend/gpu_memory.ts).
 *
 * `tf` is passed in rather than imported so that this folder never imports lib/tf.ts at run time: the
 * registration code sits below the module that calls it, with no import circle.
 */
import type { tf } from "../tf.ts";
import { fusedGradients } from "./fused_gradients.ts";
import { FUSED, fusedKernels } from "./fused_kernels.ts";
import { stockGradients } from "./gradients.ts";
import { guardWasmHeap } from "./heap_guard.ts";
import { skipUnusedOutputZeros } from "./tape.ts";
import { type KernelReplacement, wasmReplacements } from "./wasm_kernels.ts";
import { guardGpuMemory } from "./gpu_memory.ts";
import { guardWebgpuReadSync, webgpuReplacements } from "./webgpu.ts";

type Tfjs = typeof tf;

/** What one backend gets beyond its stock kernels. */
export interface BackendKernels {
  /** Kernels registered for the backend. */
  add: tf.KernelConfig[];
  /** Stock kernels of the backend replaced by faster ones. */
  replace: KernelReplacement[];
  /** Runs on the started backend (after the kernels are in place). */
  started?: (backend: tf.KernelBackend) => void;
}

/** Per backend name, what `installBackend` registers; a backend without an entry gets the gradients only. */
export const BACKEND_KERNELS: Record<string, (tf: Tfjs) => BackendKernels> = {
  wasm: (tf) => ({ add: fusedKernels("wasm"), replace: wasmReplacements(tf), started: guardWasmHeap }),
  cpu: () => ({ add: fusedKernels("cpu"), replace: [] }),
  // The fused kernels read and write tensors in JavaScript memory: on a GPU they would copy every tensor
  // back and forth, so webgpu runs the op-by-op path (lib/bert/ops.ts) on its stock kernels (AddN split
  // to fit WebGPU's binding limit).
  webgpu: () => ({
    add: [],
    replace: webgpuReplacements(),
    started: (backend) => {
      guardWebgpuReadSync(backend);
      guardGpuMemory(backend);
    },
  }),
};

/** What this process has installed: "gradients" and backend names. */
const installed = new Set<string>();

/**
 * Registers the project's gradients (once) and the kernels of `backend` (once per backend). Call it with
 * the backend active (`tf.getBackend() === backend`): the wasm heap guard needs the started backend.
 */
export function installBackend(tf: Tfjs, backend: string): void {
  if (tf.getBackend() !== backend) {
    throw new Error(`installBackend: ${backend} is not the active backend (${tf.getBackend()} is)`);
  }
  if (!installed.has("gradients")) {
    installed.add("gradients");
    for (const config of [...stockGradients(tf), ...fusedGradients(tf)]) tf.registerGradient(config);
    skipUnusedOutputZeros(tf, [FUSED.layerNorm, FUSED.gelu, FUSED.dropout]);
  }
  if (installed.has(backend)) return;
  installed.add(backend);
  const kit = BACKEND_KERNELS[backend]?.(tf);
  if (!kit) return;
  for (const config of kit.add) tf.registerKernel(config);
  for (const { kernelName, replace } of kit.replace) {
    const stock = tf.getKernel(kernelName, backend);
    if (!stock) continue;
    tf.unregisterKernel(kernelName, backend);
    tf.registerKernel({ ...stock, kernelFunc: replace(stock.kernelFunc) });
  }
  kit.started?.(tf.backend());
}
