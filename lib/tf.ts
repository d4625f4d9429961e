/**
 * The one module that imports TensorFlow.js. Everything else takes `tf` from here, so the backend
 * choice applies everywhere. `initBackend` starts a backend and then installs the project's gradients and
 * kernels for it (lib/backend/install.ts): importing a module changes no tfjs state; starting a backend
 * through `initBackend` is what does.
 *
 * Backends, in the order `auto` tries them:
 * - `tensorflow`: native libtensorflow through `@tensorflow/tfjs-node-gpu`, else `@tensorflow/tfjs-node`.
 *   Optional: installing them downloads libtensorflow, so a plain install never pulls them in.
 * - `webgpu`: `@tensorflow/tfjs-backend-webgpu` on Deno's built-in WebGPU (Vulkan, Metal, D3D12). `auto`
 *   takes a GPU and never a software adapter (llvmpipe, lavapipe, SwiftShader: slower than wasm;
 *   lib/backend/webgpu.ts). Asked for by name it runs on any adapter (CI tests it on llvmpipe). Imported
 *   only when tried.
 * - `wasm`: `@tensorflow/tfjs-backend-wasm` (SIMD), works everywhere Deno runs.
 * - `cpu`: the pure-JavaScript reference backend; slow, but every op exists and is exact.
 *
 * On wasm, the fused kernels' products run on the product `initCompute` chooses (lib/backend/
 * gemm_choice.ts): the project's wasm GEMM by default, OpenBLAS with `--gemm openblas`.
 *
 * ```ts
 * import { initBackend, initCompute, tf } from "./tf.ts";
 * const name = await initBackend("auto"); // "wasm" here, "tensorflow" on a machine with tfjs-node
 * const { identity } = await initCompute({ gemm: "openblas" }); // "wasm+openblas-t2" on 2 cores
 * ```
 */
import * as tf from "@tensorflow/tfjs-core";
import "@tensorflow/tfjs-backend-cpu";
import { setThreadsCount, setWasmPaths } from "@tensorflow/tfjs-backend-wasm";
import {
  blasThreads,
  chooseGemm,
  type GemmAsk,
  gemmFromEnv,
  gemmIdentity,
  type GemmSetting,
} from "./backend/gemm_choice.ts";
import { installBackend } from "./backend/install.ts";
import { autoTakesWebgpu, findAdapter } from "./backend/webgpu.ts";

export { tf };

export type BackendName = "auto" | "tensorflow" | "webgpu" | "wasm" | "cpu";
export const BACKENDS: readonly BackendName[] = ["auto", "tensorflow", "webgpu", "wasm", "cpu"];

const NATIVE_VERSION = "4.22.0";
const NATIVE_HELP =
  `The "tensorflow" backend needs the native TensorFlow.js bindings, which download libtensorflow ` +
  `when installed. Install one of them into this project and allow its install script:\n` +
  `  deno install --allow-scripts=npm:@tensorflow/tfjs-node-gpu@${NATIVE_VERSION} npm:@tensorflow/tfjs-node-gpu@${NATIVE_VERSION}\n` +
  `  deno install --allow-scripts=npm:@tensorflow/tfjs-node@${NATIVE_VERSION} npm:@tensorflow/tfjs-node@${NATIVE_VERSION}\n` +
  `or choose another backend with NORMTUNE_BACKEND=wasm (or --backend wasm).`;

/** Reads the wanted backend from `NORMTUNE_BACKEND`, defaulting to `auto`. */
export function backendFromEnv(): BackendName {
  const value = Deno.env.get("NORMTUNE_BACKEND") ?? "auto";
  if (!(BACKENDS as readonly string[]).includes(value)) {
    throw new Error(`NORMTUNE_BACKEND=${value} is not a backend; use one of ${BACKENDS.join(", ")}`);
  }
  return value as BackendName;
}

/** The native bindings are usable only once their install script has fetched libtensorflow. */
function nativeInstalled(pkg: string): boolean {
  const lib = new URL(`../node_modules/@tensorflow/${pkg}/lib/`, import.meta.url);
  try {
    for (const entry of Deno.readDirSync(lib)) {
      if (entry.name.startsWith("napi-v")) return true;
    }
  } catch {
    // no such package
  }
  return false;
}

async function tryNative(): Promise<string | undefined> {
  for (const pkg of ["tfjs-node-gpu", "tfjs-node"]) {
    if (!nativeInstalled(pkg)) continue;
    // Built at run time so that neither `deno install` nor `deno check` fetches the optional package.
    await import(["npm:@tensorflow", `${pkg}@${NATIVE_VERSION}`].join("/"));
    if (await tf.setBackend("tensorflow")) return pkg;
  }
  return undefined;
}

const WEBGPU_HELP = "the webgpu backend found no WebGPU adapter. On Linux Deno's WebGPU runs on Vulkan: " +
  "install the GPU's Vulkan driver (NVIDIA's driver ships one; Mesa's: apt-get install mesa-vulkan-drivers) " +
  "and check with `vulkaninfo --summary`; see docs/gpu.md. Or choose another backend (--backend wasm).";

/** The adapter webgpu runs on, once started (for reports such as the benchmark's JSON). */
let webgpuAdapterName: string | undefined;

/** The name of the WebGPU adapter in use, or undefined when the backend is not webgpu. */
export function webgpuAdapter(): string | undefined {
  return tf.getBackend() === "webgpu" ? webgpuAdapterName : undefined;
}

/**
 * Starts webgpu if an adapter exists, and in `auto` only if that adapter is hardware. Returns the
 * backend's label, or a note saying why it was skipped.
 */
async function tryWebgpu(explicit: boolean): Promise<{ label?: string; note: string }> {
  const found = await findAdapter();
  if (!found) return { note: "no WebGPU adapter" };
  const kind = found.software ? "software" : "hardware";
  if (!explicit) {
    const { take, note } = autoTakesWebgpu(found);
    if (!take) return { note };
  }
  // Imported only now: it registers its kernels and a backend factory, which nothing else needs.
  await import("@tensorflow/tfjs-backend-webgpu");
  if (!(await tf.setBackend("webgpu"))) return { note: `WebGPU adapter "${found.name}" did not start` };
  webgpuAdapterName = found.name;
  return { label: `webgpu (${kind} adapter "${found.name}")`, note: "" };
}

async function tryWasm(): Promise<boolean> {
  // Deno has no bundler to place the .wasm files: point the backend at the installed package.
  setWasmPaths(new URL("../node_modules/@tensorflow/tfjs-backend-wasm/dist/", import.meta.url).href);
  // The threaded build needs SharedArrayBuffer workers, which do not start under Deno.
  setThreadsCount(1);
  try {
    return await tf.setBackend("wasm");
  } catch {
    return false;
  }
}

let chosen: string | undefined;

/**
 * Selects the backend (once per process; later calls with the same wish return the same answer) and
 * installs the project's gradients and kernels for it. Returns the name of the backend in use. Asking for one that cannot start is an error that says how
 * to install it. The WebGPU adapter taken or skipped is always said on stderr.
 */
export async function initBackend(wish: BackendName = backendFromEnv(), quiet = true): Promise<string> {
  if (chosen && (wish === "auto" || tf.getBackend() === wish)) return tf.getBackend();
  let got: string | undefined;
  if (wish === "tensorflow" || wish === "auto") {
    const pkg = await tryNative();
    if (pkg) got = `tensorflow (${pkg})`;
    else if (wish === "tensorflow") throw new Error(NATIVE_HELP);
  }
  if (!got && (wish === "webgpu" || wish === "auto")) {
    const { label, note } = await tryWebgpu(wish === "webgpu");
    if (label) got = label;
    else if (wish === "webgpu") {
      throw new Error(note === "no WebGPU adapter" ? WEBGPU_HELP : `webgpu: ${note}`);
    } // Said even when quiet: which adapter was skipped (or taken, below) is what a GPU user checks first.
    else if (note !== "no WebGPU adapter" || !quiet) console.error(`normtune: ${note}`);
  }
  if (!got && (wish === "wasm" || wish === "auto")) {
    if (await tryWasm()) got = "wasm";
    else if (wish === "wasm") {
      throw new Error(
        "the wasm backend did not start: is node_modules/@tensorflow/tfjs-backend-wasm/dist present? " +
          "Run `deno install` in the project folder.",
      );
    }
  }
  if (!got && (wish === "cpu" || wish === "auto")) {
    if (await tf.setBackend("cpu")) got = "cpu";
  }
  if (!got) throw new Error(`no TensorFlow.js backend could start (asked for ${wish})`);
  if (got.startsWith("webgpu") && quiet) console.error(`normtune: backend ${got}`);
  chosen = got;
  // The tfjs-core build Deno loads registers no gradients; the fused kernels and wasm fixes are ours too.
  installBackend(tf, tf.getBackend());
  if (!quiet) console.error(`normtune: backend ${got}`);
  return tf.getBackend();
}

/** What computes: the backend and, on wasm, the product its kernels run (lib/backend/gemm_choice.ts). */
export interface ComputeOptions {
  /** Default NORMTUNE_BACKEND, else auto. */
  backend?: BackendName;
  /** Default NORMTUNE_GEMM, else wasm. */
  gemm?: GemmAsk;
  /** OpenBLAS threads; default `blasThreads(workers)`. */
  gemmThreads?: number;
  /** The data-parallel workers this process trains with (sets the default thread count); default 1. */
  workers?: number;
}

export interface Compute {
  /** The backend's name ("wasm", "cpu", "webgpu", "tensorflow"). */
  backend: string;
  /** What results computed here are labelled with: "wasm" (default product) or "wasm+openblas-t1". */
  identity: string;
  gemm: GemmSetting;
}

/**
 * Starts the backend (`initBackend`) and makes the product choice for this isolate. Asking for OpenBLAS
 * where it does not load, or off the wasm backend, is an error.
 */
export async function initCompute(o: ComputeOptions = {}): Promise<Compute> {
  const backend = await initBackend(o.backend);
  const gemm = chooseGemm(backend, {
    name: o.gemm ?? gemmFromEnv(),
    threads: o.gemmThreads ?? blasThreads(o.workers ?? 1),
  });
  return { backend, identity: gemmIdentity(backend, gemm), gemm };
}
