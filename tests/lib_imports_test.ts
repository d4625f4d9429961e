/**
 * The import graph of lib/: no module imports itself through others (at run time), and only lib/tf.ts
 * imports TensorFlow.js. Edges come from Deno's own parser (`deno info --json`), so imports written in
 * comments or strings do not count and dynamic `import("./x.ts")` does. Type-only imports are left out
 * of the circle check: they are erased before run time, so they neither run a module nor order module
 * evaluation (lib/backend/ takes `tf` as an argument and imports only its types from lib/tf.ts).
 */
import assert from "node:assert/strict";
import { join, relative } from "node:path";
import { pathToFileURL } from "node:url";
import { ROOT } from "../lib/util/paths.ts";

interface Dependency {
  specifier: string;
  code?: { specifier: string };
  type?: { specifier: string };
  isDynamic?: boolean;
}

function libModules(dir: string): string[] {
  const out: string[] = [];
  for (const entry of Deno.readDirSync(dir)) {
    const path = join(dir, entry.name);
    if (entry.isDirectory) out.push(...libModules(path));
    else if (entry.name.endsWith(".ts")) out.push(path);
  }
  return out.sort();
}

/** Every lib module with its dependencies (specifier as written, resolved run-time target), by path. */
async function importGraph(): Promise<Map<string, Dependency[]>> {
  // One root that imports every module, so that one `deno info` call parses them all.
  const root = await Deno.makeTempFile({ suffix: ".ts" });
  try {
    const files = libModules(join(ROOT, "lib"));
    await Deno.writeTextFile(root, files.map((f) => `import "${pathToFileURL(f).href}";\n`).join(""));
    const out = await new Deno.Command(Deno.execPath(), {
      args: ["info", "--json", "--config", join(ROOT, "deno.json"), root],
      cwd: ROOT,
      stdout: "piped",
      stderr: "piped",
    }).output();
    assert.equal(out.code, 0, new TextDecoder().decode(out.stderr));
    const info = JSON.parse(new TextDecoder().decode(out.stdout)) as {
      modules: { specifier: string; dependencies?: Dependency[] }[];
    };
    const graph = new Map<string, Dependency[]>();
    const libUrl = pathToFileURL(join(ROOT, "lib")).href + "/";
    for (const m of info.modules) {
      if (m.specifier.startsWith(libUrl)) graph.set(m.specifier, m.dependencies ?? []);
    }
    assert.equal(graph.size, files.length, "deno info saw every lib module");
    return graph;
  } finally {
    await Deno.remove(root);
  }
}

/** One circle of `edges` as a list of nodes (first repeated at the end), or undefined if there is none. */
function findCycle(edges: Map<string, string[]>): string[] | undefined {
  const state = new Map<string, "open" | "done">();
  const path: string[] = [];
  const visit = (node: string): string[] | undefined => {
    if (state.get(node) === "done") return undefined;
    if (state.get(node) === "open") return [...path.slice(path.indexOf(node)), node];
    state.set(node, "open");
    path.push(node);
    for (const next of edges.get(node) ?? []) {
      const cycle = visit(next);
      if (cycle) return cycle;
    }
    path.pop();
    state.set(node, "done");
    return undefined;
  };
  for (const node of edges.keys()) {
    const cycle = visit(node);
    if (cycle) return cycle;
  }
  return undefined;
}

Deno.test("findCycle finds a circle, a self-import, and none in a tree", () => {
  assert.deepEqual(findCycle(new Map([["a", ["b"]], ["b", ["c"]], ["c", ["a"]]])), ["a", "b", "c", "a"]);
  assert.deepEqual(findCycle(new Map([["a", ["b", "c"]], ["b", ["c"]], ["c", []]])), undefined);
  assert.deepEqual(findCycle(new Map([["a", ["a"]]])), ["a", "a"]);
});

Deno.test("lib/ has no import circle, and only lib/tf.ts imports TensorFlow.js", async () => {
  const graph = await importGraph();
  const name = (url: string) => relative(ROOT, new URL(url).pathname);
  const edges = new Map<string, string[]>();
  const tfjsImporters: string[] = [];
  for (const [module, deps] of graph) {
    const targets = deps.flatMap((d) =>
      d.code && graph.has(d.code.specifier) ? [name(d.code.specifier)] : []
    );
    edges.set(name(module), targets);
    if (deps.some((d) => /tensorflow/.test(d.specifier))) tfjsImporters.push(name(module));
  }
  const cycle = findCycle(edges);
  assert.equal(cycle, undefined, `import circle: ${cycle?.join(" -> ")}`);
  assert.deepEqual(tfjsImporters, ["lib/tf.ts"]);
});
