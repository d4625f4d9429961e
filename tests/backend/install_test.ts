import assert from "node:assert/strict";
import { join } from "node:path";
import { initBackend, tf } from "../../lib/tf.ts";
import { BACKEND_KERNELS, installBackend } from "../../lib/backend/install.ts";
import { stockGradients } from "../../lib/backend/gradients.ts";
import { fusedGradients } from "../../lib/backend/fused_gradients.ts";
import { ROOT } from "../../lib/util/paths.ts";

type Changes = { added: string[]; replaced: string[]; removed: string[] };
type Stage = { kernels: Changes; gradients: Changes; backendStarted: boolean };
type Probe = { modules: string[]; imports: Stage; init: Stage & { backend: string } };

/** Runs tests/backend/registry_probe.ts in a fresh process (tfjs's registries live per process). */
async function probe(backend: "wasm" | "cpu"): Promise<Probe> {
  const out = await new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", join(ROOT, "tests", "backend", "registry_probe.ts"), backend],
    cwd: ROOT,
    stdout: "piped",
    stderr: "piped",
  }).output();
  const err = new TextDecoder().decode(out.stderr);
  assert.equal(out.code, 0, `registry probe failed: ${err}`);
  return JSON.parse(new TextDecoder().decode(out.stdout));
}

const none: Changes = { added: [], replaced: [], removed: [] };
const gradientNames = [...stockGradients(tf), ...fusedGradients(tf)].map((g) => g.kernelName).sort();

for (const backend of ["wasm", "cpu"] as const) {
  Deno.test(`importing every lib module leaves tfjs as it was; initBackend("${backend}") installs the project's kernels and gradients`, async () => {
    const p = await probe(backend);
    assert.ok(p.modules.length > 50 && p.modules.includes("lib/bert/model.ts"), "the probe imported lib/");
    assert.deepEqual(p.imports, { kernels: none, gradients: none, backendStarted: false });

    assert.equal(p.init.backend, backend);
    assert.deepEqual(p.init.gradients, { ...none, added: gradientNames });
    for (const name of ["BatchMatMul", "GatherV2", "Add", "Softmax", "NormtuneDense", "NormtuneLayerNorm"]) {
      assert.ok(p.init.gradients.added.includes(name), `gradient of ${name}`);
    }
    const kit = BACKEND_KERNELS[backend](tf);
    assert.deepEqual(p.init.kernels, {
      added: kit.add.map((k) => `${backend}/${k.kernelName}`).sort(),
      replaced: kit.replace.map((r) => `${backend}/${r.kernelName}`).sort(),
      removed: [],
    });
    assert.ok(p.init.kernels.added.includes(`${backend}/NormtuneDense`));
    if (backend === "wasm") {
      assert.deepEqual(p.init.kernels.replaced, ["wasm/GatherV2", "wasm/Identity", "wasm/SplitV"]);
    }
  });
}

Deno.test("installBackend is idempotent and keeps the fast gradients across backend switches", async () => {
  await initBackend("cpu");
  const matMulGrad = tf.getGradient("BatchMatMul").gradFunc;
  const dense = tf.getKernel("NormtuneDense", "cpu")!.kernelFunc;
  installBackend(tf, "cpu");
  installBackend(tf, "cpu");
  await initBackend("wasm");
  const split = tf.getKernel("SplitV", "wasm")!.kernelFunc;
  installBackend(tf, "wasm");
  await initBackend("cpu");
  assert.equal(tf.getGradient("BatchMatMul").gradFunc, matMulGrad);
  assert.equal(tf.getKernel("NormtuneDense", "cpu")!.kernelFunc, dense);
  assert.equal(tf.getKernel("SplitV", "wasm")!.kernelFunc, split, "the wasm SplitV is wrapped once");
  for (
    const k of [
      "Add",
      "Multiply",
      "Sum",
      "Mean",
      "Reshape",
      "Transpose",
      "Softmax",
      "Concat",
      "SplitV",
      "Tanh",
    ]
  ) {
    assert.ok(tf.getGradient(k), `gradient for ${k} registered`);
  }
});

Deno.test("installBackend refuses a backend that is not the active one", async () => {
  await initBackend("cpu");
  assert.throws(() => installBackend(tf, "wasm"), /wasm is not the active backend \(cpu is\)/);
});
