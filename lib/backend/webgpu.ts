/**
 * The WebGPU side of backend choice: finding Deno's WebGPU adapter, telling a software one (llvmpipe,
 * lavapipe, SwiftShader: slower than wasm) from a GPU, and what `installBackend` does on webgpu.
 *
 * ```ts
 * const found = await findAdapter();
 * if (found && !found.software) console.error(`GPU: ${found.name}`);
 * ```
 */
import type { tf } from "../tf.ts";

/** The fields of a `GPUAdapterInfo` this module reads (a plain object in tests). */
export interface AdapterInfoLike {
  vendor?: string;
  architecture?: string;
  device?: string;
  description?: string;
  isFallbackAdapter?: boolean;
}

/** Software rasterisers that expose themselves as Vulkan (or D3D/Metal) devices. */
const SOFTWARE = /llvmpipe|lavapipe|softpipe|swiftshader|microsoft basic render|\bwarp\b/i;

/** True for an adapter that runs on the CPU: the fallback flag, or a known software driver's name. */
export function isSoftwareAdapter(info: AdapterInfoLike, fallback = false): boolean {
  if (fallback || info.isFallbackAdapter) return true;
  return [info.vendor, info.architecture, info.device, info.description].some((s) => s && SOFTWARE.test(s));
}

/** A readable name: the description if the driver gives one, else vendor / architecture / device. */
export function adapterName(info: AdapterInfoLike): string {
  const description = info.description?.trim();
  if (description) return description;
  const parts = [info.vendor, info.architecture, info.device].filter((s) => s && s.trim() !== "");
  return parts.length > 0 ? parts.join(" ") : "unnamed adapter";
}

/**
 * Whether `auto` takes webgpu: never on a software adapter (slower than wasm); on a GPU only once
 * training and evaluation read tensors asynchronously. `WEBGPU_TRAINS` says whether they do.
 */
export function autoTakesWebgpu(
  found: FoundAdapter,
  trains = WEBGPU_TRAINS,
): { take: boolean; note: string } {
  const named = `WebGPU adapter "${found.name}"`;
  if (found.software) {
    return { take: false, note: `${named} skipped: a software adapter is slower than wasm` };
  }
  if (!trains) {
    return {
      take: false,
      note: `${named} (hardware) not taken by auto yet: the trainer and evaluation read tensors ` +
        `synchronously, which Deno's WebGPU cannot (docs/gpu.md); --backend webgpu runs the model, ` +
        `its gradients and the Fisher`,
    };
  }
  return { take: true, note: "" };
}

/**
 * False until the training step, evaluation and state saving read tensors with `await data()`: they
 * use `dataSync()`, which webgpu cannot do under Deno (see `guardWebgpuReadSync`), so `auto` on a GPU
 * would stop at the first step. Flip it (and `autoTakesWebgpu`'s test) when they are async.
 */
export const WEBGPU_TRAINS = false;

export interface FoundAdapter {
  name: string;
  software: boolean;
  info: AdapterInfoLike;
}

/**
 * wgpu's Vulkan loader prints "XDG_RUNTIME_DIR is invalid or not set" for every adapter request when the
 * variable does not name a folder (headless machines, CI). It does not matter for compute: point it at a
 * private temporary folder before the first request.
 */
function quietXdgRuntimeDir(): void {
  const dir = Deno.env.get("XDG_RUNTIME_DIR");
  try {
    if (dir && Deno.statSync(dir).isDirectory) return;
  } catch {
    // not a folder: replaced below
  }
  Deno.env.set("XDG_RUNTIME_DIR", Deno.makeTempDirSync({ prefix: "normtune-xdg-" }));
}

/** The adapter tfjs-backend-webgpu would get (same power preference), or undefined without one. */
export async function findAdapter(): Promise<FoundAdapter | undefined> {
  const gpu = (globalThis.navigator as { gpu?: GPU } | undefined)?.gpu;
  if (!gpu) return undefined;
  quietXdgRuntimeDir();
  let adapter: GPUAdapter | null;
  try {
    adapter = await gpu.requestAdapter({ powerPreference: "high-performance" });
  } catch {
    return undefined;
  }
  if (!adapter) return undefined;
  // Deno puts isFallbackAdapter on the info (newer spec); older implementations on the adapter.
  // Copied into a plain object: GPUAdapterInfo's fields are getters, which JSON.stringify does not see.
  const raw = adapter.info as unknown as AdapterInfoLike;
  const info: AdapterInfoLike = {
    vendor: raw.vendor,
    architecture: raw.architecture,
    device: raw.device,
    description: raw.description,
    isFallbackAdapter: raw.isFallbackAdapter,
  };
  const fallback = (adapter as unknown as { isFallbackAdapter?: boolean }).isFallbackAdapter === true;
  return { name: adapterName(info), software: isSoftwareAdapter(info, fallback), info };
}

/**
 * tfjs-backend-webgpu reads synchronously (`dataSync`, `arraySync`) through a 2-D OffscreenCanvas, which
 * Deno lacks: the stock failure is "Cannot read properties of null (reading 'clearRect')". Replace it with
 * an error that says what to do; tensors already on the CPU still read synchronously.
 */
export function guardWebgpuReadSync(backend: tf.KernelBackend): void {
  const b = backend as unknown as {
    readSync(dataId: object): unknown;
    tensorMap: { get(dataId: object): { values?: unknown } | undefined };
  };
  const stock = b.readSync.bind(b);
  b.readSync = (dataId: object) => {
    if (b.tensorMap.get(dataId)?.values != null) return stock(dataId);
    throw new WebgpuSyncReadError();
  };
}

export class WebgpuSyncReadError extends Error {
  constructor() {
    super(
      "webgpu: a synchronous read (dataSync/arraySync) of a GPU tensor is not possible under Deno " +
        "(tfjs needs a 2-D OffscreenCanvas for it); this code path needs `await tensor.data()`, or run it " +
        "with --backend wasm",
    );
    this.name = "WebgpuSyncReadError";
  }
}
