/**
 * Run by install_test.ts in a process of its own (tfjs's registries are per process): imports lib/tf.ts,
 * then every other module under lib/, then starts the backend named by the first argument with
 * `initBackend`, and prints as JSON what changed in tfjs's kernel and gradient registries at each stage.
 *
 *   deno run -A tests/backend/registry_probe.ts wasm
 */
import { relative } from "node:path";
import { pathToFileURL } from "node:url";
import { type BackendName, initBackend, tf } from "../../lib/tf.ts";
import { ROOT } from "../../lib/util/paths.ts";

/** Registry entry -> the function registered (kernels: "backend/kernel", gradients: kernel name). */
type Snapshot = { kernels: Map<string, unknown>; gradients: Map<string, unknown>; backendStarted: boolean };

function snapshot(): Snapshot {
  // tfjs-core keeps both registries in this global map (kernel_registry.ts, getGlobal).
  const globals = (globalThis as unknown as { _tfGlobals: Map<string, Map<string, unknown>> })._tfGlobals;
  const kernels = new Map<string, unknown>();
  for (const k of globals.get("kernelRegistry")!.values() as Iterable<tf.KernelConfig>) {
    kernels.set(`${k.backendName}/${k.kernelName}`, k.kernelFunc);
  }
  const gradients = new Map<string, unknown>();
  for (const g of globals.get("gradRegistry")!.values() as Iterable<tf.GradConfig>) {
    gradients.set(g.kernelName, g.gradFunc);
  }
  // A plain field: reading it does not start a backend (tf.getBackend() would).
  const backendStarted = (tf.engine() as unknown as { backendInstance: unknown }).backendInstance != null;
  return { kernels, gradients, backendStarted };
}

/** Entries added or replaced (another function) from `a` to `b`, and entries removed. */
function changes(a: Map<string, unknown>, b: Map<string, unknown>) {
  return {
    added: [...b.keys()].filter((k) => !a.has(k)).sort(),
    replaced: [...b.keys()].filter((k) => a.has(k) && a.get(k) !== b.get(k)).sort(),
    removed: [...a.keys()].filter((k) => !b.has(k)).sort(),
  };
}

function diff(a: Snapshot, b: Snapshot) {
  return {
    kernels: changes(a.kernels, b.kernels),
    gradients: changes(a.gradients, b.gradients),
    backendStarted: b.backendStarted,
  };
}

function libModules(dir: string): string[] {
  const out: string[] = [];
  for (const entry of Deno.readDirSync(dir)) {
    const path = `${dir}/${entry.name}`;
    if (entry.isDirectory) out.push(...libModules(path));
    else if (entry.name.endsWith(".ts")) out.push(path);
  }
  return out.sort();
}

const start = snapshot();
const modules = libModules(`${ROOT}/lib`);
for (const path of modules) await import(pathToFileURL(path).href);
const imported = snapshot();
const backend = await initBackend(Deno.args[0] as BackendName);
const started = snapshot();
console.log(JSON.stringify({
  modules: modules.map((m) => relative(ROOT, m)),
  imports: diff(start, imported),
  init: { backend, ...diff(imported, started) },
}));
