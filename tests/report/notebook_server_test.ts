/**
 * The interactive path against a real Jupyter server, not a stand-in: Debian's classic Notebook
 * (jupyter-notebook, installed by tools/setup.sh) serves the project with a base URL, as JupyterHub does
 * (/user/NAME/), and a trusted notebook holding two figure outputs; headless Chromium opens it and both
 * figures must be drawn with plotly.js fetched once through the server's own files/ route.
 */
import assert from "node:assert/strict";
import { join, relative } from "node:path";
import { figureBundle } from "../../lib/report/display.ts";
import { groupedBars, lineBands } from "../../lib/report/plot.ts";
import { ROOT } from "../../lib/util/paths.ts";
import { chromiumDom, countClass } from "./chromium.ts";

const decoder = new TextDecoder();

/** The interpreter Jupyter runs on (from `jupyter-notebook`'s `#!` line): it has nbformat for signing. */
function jupyterPython(): string[] {
  for (const dir of (Deno.env.get("PATH") ?? "").split(":")) {
    let text;
    try {
      text = Deno.readTextFileSync(join(dir, "jupyter-notebook"));
    } catch {
      continue;
    }
    const shebang = text.split("\n")[0];
    if (shebang.startsWith("#!")) return shebang.slice(2).trim().split(/\s+/);
  }
  throw new Error(
    "jupyter-notebook not found: install the classic Notebook (Debian: apt install jupyter-notebook)",
  );
}

async function run(cmd: string[], env: Record<string, string>): Promise<void> {
  const out = await new Deno.Command(cmd[0], { args: cmd.slice(1), env, stdout: "piped", stderr: "piped" })
    .output();
  if (!out.success) throw new Error(`${cmd.join(" ")} failed:\n${decoder.decode(out.stderr)}`);
}

function freePort(): number {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const port = (listener.addr as Deno.NetAddr).port;
  listener.close();
  return port;
}

Deno.test("the classic Jupyter Notebook behind a base URL draws a trusted notebook's figures", async () => {
  // Under the project (the server's root) so files/ reaches node_modules; runs/ is git-ignored, and the
  // name is not hidden (the server refuses hidden paths).
  await Deno.mkdir(join(ROOT, "runs"), { recursive: true });
  const dir = await Deno.makeTempDir({ dir: join(ROOT, "runs"), prefix: "notebook-server-test-" });
  // Jupyter's data, config and runtime folders of its own: the signature database and secret stay here.
  const env = {
    JUPYTER_DATA_DIR: join(dir, "data"),
    JUPYTER_CONFIG_DIR: join(dir, "config"),
    JUPYTER_RUNTIME_DIR: join(dir, "runtime"),
  };
  const figures = [
    lineBands([{ name: "s", x: [0.01, 0.1, 1], y: [1, 2, 3], error: [0.1, 0.1, 0.1] }], { xLog: true }),
    groupedBars(["a", "b"], [{ name: "s", values: [1, 2] }]),
  ];
  const notebook = {
    nbformat: 4,
    nbformat_minor: 5,
    metadata: {},
    cells: [{
      cell_type: "code",
      id: "figures",
      metadata: {},
      execution_count: 1,
      source: "// figures",
      outputs: figures.map((f) => ({
        output_type: "display_data",
        metadata: {},
        data: figureBundle(f, { notebookDir: dir }),
      })),
    }],
  };
  const path = join(dir, "figures.ipynb");
  await Deno.writeTextFile(path, JSON.stringify(notebook));
  // Untrusted outputs lose their scripts; an executed-and-saved notebook is trusted, as signing makes it.
  await run([...jupyterPython(), "-m", "nbformat.sign", path], env);

  const base = "/user/me/";
  const port = freePort();
  const server = new Deno.Command("jupyter-notebook", {
    args: [
      "--no-browser",
      "--allow-root",
      "--ip=127.0.0.1",
      `--port=${port}`,
      "--port-retries=0",
      `--NotebookApp.base_url=${base}`,
      "--NotebookApp.token=",
      "--NotebookApp.password=",
      `--notebook-dir=${ROOT}`,
    ],
    env,
    stdout: "null",
    stderr: "piped",
  }).spawn();
  let log = "";
  const logDone = server.stderr.pipeTo(new WritableStream({ write: (c) => void (log += decoder.decode(c)) }));
  try {
    const deadline = Date.now() + 60_000;
    for (;;) {
      const ok = await fetch(`http://127.0.0.1:${port}${base}api/status`).then((r) => {
        r.body?.cancel();
        return r.ok;
      }, () => false);
      if (ok) break;
      if (Date.now() > deadline) throw new Error(`the Notebook server did not start:\n${log}`);
      await new Promise((r) => setTimeout(r, 250));
    }
    const page = `${base}notebooks/${relative(ROOT, path).split("\\").join("/")}`;
    const dom = await chromiumDom(`http://127.0.0.1:${port}${page}`, { budgetMs: 20_000 });
    const fetched = [...log.matchAll(/GET (\S*plotly\.min\.js)/g)].map((m) => m[1]);
    assert.equal(countClass(dom, "js-plotly-plot"), 2, `both figures drawn; plotly.js requests: ${fetched}`);
    // Through the base URL, at the path relative to the notebook; the server logs only failed or slow
    // requests at its default level, so a 404 for another candidate would show here.
    for (const url of fetched) assert.ok(url.startsWith(`${base}files/`), url);
    assert.ok(!/404 GET \S*plotly/.test(log), `a plotly.js candidate was not found:\n${log}`);
  } finally {
    server.kill("SIGTERM");
    await server.status;
    await logDone.catch(() => {});
    await Deno.remove(dir, { recursive: true });
  }
});
