/**
 * What a WebGPU allocation the GPU cannot hold turns into. WebGPU reports it asynchronously, as an
 * "uncaptured" error on the device (a buffer over `maxBufferSize` is a validation error, memory running
 * out an out-of-memory error, a driver reset a lost device), and the work that used the missing buffer
 * then reads back zeros: tfjs does not look. So: a buffer over the device's limit is refused where it is
 * requested, and any other such error is kept and thrown by the next read (`await tensor.data()`), with
 * what to lower.
 */
import type { tf } from "../tf.ts";

export class GpuMemoryError extends Error {
  constructor(what: string) {
    super(
      `webgpu: ${what}. The GPU cannot hold this step: lower the batch size or the sequence length ` +
        `(--max-len), use micro-batches (finetune --micro-batch), train fewer parameters (--mode layernorm ` +
        `or bitfit keep no gradients or optimizer state for frozen weights), or use a GPU with more memory.`,
    );
    this.name = "GpuMemoryError";
  }
}

const GIB = 2 ** 30;
const size = (bytes: number) =>
  bytes >= GIB ? `${(bytes / GIB).toFixed(2)} GiB` : `${Math.ceil(bytes / 2 ** 20)} MiB`;

/** The error for a device error event (`GPUError` subclass name and message) or a lost device. */
export function gpuErrorToThrow(kind: string, message: string): Error {
  if (kind === "GPUOutOfMemoryError") return new GpuMemoryError(`out of GPU memory (${message})`);
  if (/maximum buffer size|buffer size .* greater than/i.test(message)) {
    return new GpuMemoryError(`a tensor is larger than the device's largest buffer (${message})`);
  }
  if (kind === "lost") {
    return new Error(
      `webgpu: the GPU device was lost (${message}); results since then are void. ` +
        `If it ran out of memory, lower the batch size, --max-len or use --micro-batch.`,
    );
  }
  return new Error(`webgpu: the GPU rejected work (${kind}: ${message}); results since then are void`);
}

/** A buffer request above the device's `maxBufferSize`, as an error (else undefined). */
export function oversizedBuffer(bytes: number, maxBufferSize: number): GpuMemoryError | undefined {
  if (bytes <= maxBufferSize) return undefined;
  return new GpuMemoryError(
    `a tensor of ${size(bytes)} is larger than this GPU's largest buffer (${size(maxBufferSize)})`,
  );
}

interface WebgpuInternals {
  device: GPUDevice;
  bufferManager: { acquireBuffer(size: number, ...rest: unknown[]): GPUBuffer };
  read(dataId: object): Promise<unknown>;
}

/** Installs the checks on the started webgpu backend (see the module comment). */
export function guardGpuMemory(backend: tf.KernelBackend): void {
  const b = backend as unknown as WebgpuInternals;
  let failure: Error | undefined;
  b.device.addEventListener("uncapturederror", (event) => {
    const error = (event as GPUUncapturedErrorEvent).error;
    failure ??= gpuErrorToThrow(error.constructor.name, error.message);
  });
  b.device.lost.then((info) => {
    if (info.reason !== "destroyed") failure ??= gpuErrorToThrow("lost", info.message);
  });
  const manager = b.bufferManager;
  const acquire = manager.acquireBuffer.bind(manager);
  manager.acquireBuffer = (bytes: number, ...rest: unknown[]) => {
    const tooBig = oversizedBuffer(bytes, b.device.limits.maxBufferSize);
    if (tooBig) throw tooBig;
    return acquire(bytes, ...rest);
  };
  const read = b.read.bind(b);
  b.read = async (dataId: object) => {
    const values = await read(dataId);
    if (failure) throw failure;
    return values;
  };
}
