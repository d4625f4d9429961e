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
import type { KernelReplacement } from "./wasm_kernels.ts";

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
 * Whether `auto` takes webgpu: on a GPU yes (training, evaluation, Fisher and forward read tensors
 * asynchronously, so everything runs there), never on a software adapter (slower than wasm).
 */
export function autoTakesWebgpu(found: FoundAdapter): { take: boolean; note: string } {
  if (found.software) {
    return {
      take: false,
      note: `WebGPU adapter "${found.name}" skipped: a software adapter is slower than wasm`,
    };
  }
  return { take: true, note: "" };
}

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

/**
 * tfjs-backend-webgpu's AddN binds every input as a storage buffer of one shader, and WebGPU allows
 * `maxStorageBuffersPerShaderStage` of them (8 unless a larger limit is requested, which tfjs does not):
 * more inputs fail validation ("Too many bindings of type StorageBuffers"), as the gradient clipping's
 * global norm (one square sum per trained tensor) did. Its Concat splits its inputs; this does the same
 * for AddN: sums of at most limit - 1 inputs (one binding is the output), then the sum of those.
 */
export function webgpuReplacements(): KernelReplacement[] {
  return [{ kernelName: "AddN", replace: chunkedAddN }];
}

function chunkedAddN(stock: tf.KernelFunc): tf.KernelFunc {
  const addN: tf.KernelFunc = (args) => {
    const inputs = args.inputs as unknown as tf.TensorInfo[];
    const backend = args.backend as unknown as {
      device: { limits: { maxStorageBuffersPerShaderStage: number } };
      disposeData(dataId: object): void;
    };
    const most = Math.max(2, backend.device.limits.maxStorageBuffersPerShaderStage - 1);
    if (inputs.length <= most) return stock(args);
    const sums: tf.TensorInfo[] = [];
    for (let i = 0; i < inputs.length; i += most) {
      const part = inputs.slice(i, i + most) as unknown as tf.NamedTensorInfoMap;
      sums.push(stock({ ...args, inputs: part }) as tf.TensorInfo);
    }
    try {
      return addN({ ...args, inputs: sums as unknown as tf.NamedTensorInfoMap });
    } finally {
      for (const t of sums) backend.disposeData(t.dataId);
    }
  };
  return addN;
}
