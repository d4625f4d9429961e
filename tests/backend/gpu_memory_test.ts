/**
 * A request the GPU cannot hold ends in an error naming what to lower, instead of WebGPU's silent zeros:
 * the error mapping, a tensor over the device's largest buffer (refused where it is made), and an error
 * the device reports later (thrown by the next read; in a process of its own, since it voids the device).
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { gpuErrorToThrow, GpuMemoryError, oversizedBuffer } from "../../lib/backend/gpu_memory.ts";
import { initBackend, tf } from "../../lib/tf.ts";
import { ROOT } from "../../lib/util/paths.ts";

const LOWER = /lower the batch size or the sequence length \(--max-len\), use micro-batches/;

Deno.test("device errors map to errors that say what to lower", () => {
  const oom = gpuErrorToThrow("GPUOutOfMemoryError", "Not enough memory left");
  assert.ok(oom instanceof GpuMemoryError);
  assert.match(oom.message, /out of GPU memory \(Not enough memory left\)/);
  assert.match(oom.message, LOWER);
  const big = gpuErrorToThrow(
    "GPUValidationError",
    "Buffer size 2800000000 is greater than the maximum buffer size (2147483647)",
  );
  assert.ok(big instanceof GpuMemoryError);
  assert.match(big.message, /larger than the device's largest buffer/);
  const lost = gpuErrorToThrow("lost", "device reset");
  assert.ok(!(lost instanceof GpuMemoryError));
  assert.match(lost.message, /device was lost \(device reset\).*--micro-batch/);
  const other = gpuErrorToThrow("GPUValidationError", "BindGroup with '' label is invalid");
  assert.match(other.message, /rejected work \(GPUValidationError: BindGroup/);
  assert.equal(oversizedBuffer(2 ** 31 - 1, 2 ** 31 - 1), undefined);
  assert.match(
    oversizedBuffer(2.8e9, 2 ** 31 - 1)!.message,
    /a tensor of 2\.61 GiB is larger than .* \(2\.00 GiB\)/,
  );
});

Deno.test("webgpu: a tensor over the largest buffer is refused where it is made; the device still works", async () => {
  await initBackend("webgpu");
  const max = (tf.backend() as unknown as { device: GPUDevice }).device.limits.maxBufferSize;
  const before = tf.memory().numTensors;
  assert.throws(() => tf.fill([Math.ceil(max / 4) + 1024], 1), (e: unknown) => {
    return e instanceof GpuMemoryError && LOWER.test(e.message);
  });
  assert.equal(tf.memory().numTensors, before, "the failed op left no tensor");
  const ok = tf.tidy(() => tf.sum(tf.fill([4096], 1)));
  assert.equal((await ok.data())[0], 4096);
  ok.dispose();
});

Deno.test("webgpu: an error the device reports later is thrown by the next read", async () => {
  const tfUrl = new URL(`file://${join(ROOT, "lib", "tf.ts")}`).href;
  const code = `import { initBackend, tf } from "${tfUrl}";
await initBackend("webgpu");
const device = tf.backend().device;
// Bypasses the size check, as an allocation that runs out of memory on the device would.
device.createBuffer({ size: device.limits.maxBufferSize + 4096, usage: GPUBufferUsage.STORAGE });
const x = tf.tidy(() => tf.sum(tf.fill([4096], 1)));
try { await x.data(); console.log("read"); } catch (e) { console.log(e.name + ": " + e.message); }`;
  const out = await new Deno.Command(Deno.execPath(), {
    args: ["eval", "--config", join(ROOT, "deno.json"), code],
    cwd: ROOT,
    stdout: "piped",
    stderr: "piped",
  }).output();
  const stdout = new TextDecoder().decode(out.stdout);
  assert.equal(out.code, 0, new TextDecoder().decode(out.stderr));
  assert.match(stdout, /^GpuMemoryError: webgpu: a tensor is larger than the device's largest buffer/);
  assert.match(stdout, LOWER);
});
