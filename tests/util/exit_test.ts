import assert from "node:assert/strict";
import { join } from "node:path";
import { ROOT } from "../../lib/util/paths.ts";

const EXIT = join(ROOT, "lib", "util", "exit.ts");

async function run(code: string): Promise<{ code: number; ms: number }> {
  const t0 = performance.now();
  const r = await new Deno.Command(Deno.execPath(), {
    args: ["eval", `import { exitWhenDone } from ${JSON.stringify(EXIT)}; ${code}`],
    stdout: "null",
    stderr: "null",
  }).output();
  return { code: r.code, ms: performance.now() - t0 };
}

Deno.test("exitWhenDone: the code once the event loop is done; after the grace time if something lingers", async () => {
  const done = await run("exitWhenDone(3, 60_000);");
  assert.equal(done.code, 3);
  assert.ok(done.ms < 30_000, `took ${done.ms} ms: the grace timer kept the process alive`);
  const lingering = await run("setInterval(() => {}, 1000); exitWhenDone(4, 300);");
  assert.equal(lingering.code, 4);
});
