/**
 * Choosing webgpu: which adapters count as software (never taken by `auto`), what `auto` does on this
 * machine's adapter, and the error a synchronous read of a GPU tensor gives. CI has Mesa's llvmpipe
 * (tools/setup.sh installs mesa-vulkan-drivers); on a GPU machine the same tests check the other branch.
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import {
  adapterName,
  autoTakesWebgpu,
  findAdapter,
  isSoftwareAdapter,
  WebgpuSyncReadError,
} from "../../lib/backend/webgpu.ts";
import { initBackend, tf, webgpuAdapter } from "../../lib/tf.ts";
import { ROOT } from "../../lib/util/paths.ts";

// Adapter infos as drivers report them (Deno's GPUAdapterInfo fields).
const SOFTWARE = [
  { vendor: "65541", architecture: "", device: "0", description: "llvmpipe (LLVM 15.0.6, 256 bits)" },
  { vendor: "mesa", architecture: "", device: "", description: "lavapipe" },
  { vendor: "google", architecture: "swiftshader", device: "", description: "" },
  { vendor: "", architecture: "", device: "", description: "Microsoft Basic Render Driver" },
  { vendor: "nvidia", architecture: "", device: "", description: "", isFallbackAdapter: true },
];
const HARDWARE = [
  { vendor: "4318", architecture: "", device: "8961", description: "NVIDIA H100 80GB HBM3" },
  { vendor: "nvidia", architecture: "hopper", device: "", description: "", isFallbackAdapter: false },
  { vendor: "4098", architecture: "", device: "29772", description: "AMD Radeon RX 7900 XTX (RADV NAVI31)" },
  { vendor: "32902", architecture: "", device: "", description: "Intel(R) Arc(tm) A770 Graphics (DG2)" },
  { vendor: "apple", architecture: "metal-3", device: "", description: "Apple M2" },
];

Deno.test("software adapters are told from GPUs by the fallback flag or the driver's name", () => {
  for (const info of SOFTWARE) assert.equal(isSoftwareAdapter(info), true, JSON.stringify(info));
  for (const info of HARDWARE) assert.equal(isSoftwareAdapter(info), false, JSON.stringify(info));
  // The flag on the adapter itself (older implementations) counts too.
  assert.equal(isSoftwareAdapter(HARDWARE[0], true), true);
  assert.equal(adapterName(SOFTWARE[0]), "llvmpipe (LLVM 15.0.6, 256 bits)");
  assert.equal(adapterName(HARDWARE[1]), "nvidia hopper");
  assert.equal(adapterName({}), "unnamed adapter");
});

Deno.test("auto's rule: a GPU yes, a software adapter never", () => {
  const gpu = { name: "NVIDIA H100 80GB HBM3", software: false, info: HARDWARE[0] };
  const cpu = { name: "llvmpipe (LLVM 15.0.6, 256 bits)", software: true, info: SOFTWARE[0] };
  assert.deepEqual(autoTakesWebgpu(gpu), { take: true, note: "" });
  assert.equal(autoTakesWebgpu(cpu).take, false);
  assert.match(autoTakesWebgpu(cpu).note, /"llvmpipe \(LLVM 15.0.6, 256 bits\)" skipped: a software adapter/);
});

/** Runs `code` (a module body with `tf`, `initBackend` in scope) in a fresh process. */
async function fresh(code: string, env: Record<string, string> = {}) {
  const tfUrl = new URL(`file://${join(ROOT, "lib", "tf.ts")}`).href;
  const out = await new Deno.Command(Deno.execPath(), {
    args: [
      "eval",
      "--config",
      join(ROOT, "deno.json"),
      `import { initBackend, tf } from "${tfUrl}";\n${code}`,
    ],
    cwd: ROOT,
    env: { NORMTUNE_BACKEND: "auto", ...env },
    stdout: "piped",
    stderr: "piped",
  }).output();
  const text = (b: Uint8Array) => new TextDecoder().decode(b);
  return { code: out.code, stdout: text(out.stdout).trim(), stderr: text(out.stderr) };
}

Deno.test("auto on this machine follows the rule and says which adapter it skipped", async () => {
  const found = await findAdapter();
  assert.ok(found, "no WebGPU adapter here: tools/setup.sh installs mesa-vulkan-drivers (llvmpipe)");
  const run = await fresh(`console.log(await initBackend("auto"));`);
  assert.equal(run.code, 0, run.stderr);
  assert.doesNotMatch(run.stderr, /XDG_RUNTIME_DIR/);
  const rule = autoTakesWebgpu(found);
  if (rule.take) {
    assert.equal(run.stdout, "webgpu");
    assert.match(run.stderr, /backend webgpu \(hardware adapter/);
  } else {
    assert.notEqual(run.stdout, "webgpu");
    assert.ok(run.stderr.includes(rule.note), run.stderr);
  }
  // This project's CI machine has only Mesa's software adapter.
  if (found.software) assert.match(run.stderr, /skipped: a software adapter is slower than wasm/);
});

Deno.test("webgpu by name starts on any adapter and says which", async () => {
  const run = await fresh(`console.log(await initBackend()); console.log((await tf.add(1, 2).data())[0]);`, {
    NORMTUNE_BACKEND: "webgpu",
  });
  assert.equal(run.code, 0, run.stderr);
  assert.deepEqual(run.stdout.split("\n"), ["webgpu", "3"]);
  assert.match(run.stderr, /backend webgpu \((software|hardware) adapter "[^"]+"\)/);
  assert.doesNotMatch(run.stderr, /XDG_RUNTIME_DIR/);
});

Deno.test("webgpu: a synchronous read of a GPU tensor is a clear error; CPU-side values still read", async () => {
  await initBackend("webgpu");
  assert.equal(tf.getBackend(), "webgpu");
  assert.ok(webgpuAdapter(), "the adapter's name is known");
  const a = tf.tensor1d([1, 2, 3]);
  assert.deepEqual(Array.from(a.dataSync()), [1, 2, 3]); // still on the CPU side: uploaded lazily
  // Large enough to run on the GPU (tfjs hands inputs under 1000 values still on the CPU to the CPU).
  const b = tf.tidy(() => tf.matMul(tf.ones([64, 64]), tf.ones([64, 64])));
  assert.throws(
    () => b.dataSync(),
    (e: unknown) => e instanceof WebgpuSyncReadError && /await/.test(e.message),
  );
  const values = await b.data();
  assert.equal(values.length, 64 * 64);
  assert.ok(values.every((v) => v === 64));
  tf.dispose([a, b]);
});

Deno.test("webgpu: addN of more tensors than one shader can bind equals their sum, without leaks", async () => {
  await initBackend("webgpu");
  // 4096 values each: large enough to run on the GPU. 20 inputs: more than the 7 one shader can take.
  const xs = Array.from({ length: 20 }, (_, i) => tf.fill([64, 64], i + 1));
  const backend = tf.backend() as unknown as { numDataIds(): number };
  const [tensors, dataIds] = [tf.memory().numTensors, backend.numDataIds()];
  const sum = tf.addN(xs);
  const values = await sum.data();
  assert.ok(values.every((v) => v === 210), `got ${values[0]}`); // 1 + 2 + ... + 20
  sum.dispose();
  assert.equal(tf.memory().numTensors, tensors);
  assert.equal(backend.numDataIds(), dataIds, "the partial sums are released");
  tf.dispose(xs);
});
