import assert from "node:assert/strict";
import { hostname } from "node:os";
import { join } from "node:path";
import { acquireLock } from "../../lib/util/lock.ts";
import { tempDir } from "../env.ts";

Deno.test("a lock waits for its holder and takes over one whose process is gone", async () => {
  const [dir, cleanup] = await tempDir();
  try {
    const path = join(dir, "locks", "x.lock");
    const first = await acquireLock(path, { pollMs: 50 });
    let waitedFor = "";
    let got = false;
    const second = acquireLock(path, { pollMs: 50, onWait: (h) => (waitedFor = h) }).then((l) => {
      got = true;
      return l;
    });
    await new Promise((r) => setTimeout(r, 300));
    assert.equal(got, false, "the second lock must wait");
    assert.match(waitedFor, new RegExp(`"pid":${Deno.pid}`));
    await first.release();
    await (await second).release();
    assert.equal(got, true);

    // A lock left by a process that no longer exists (SIGKILL) is taken at once.
    const child = new Deno.Command(Deno.execPath(), { args: ["eval", "1"] }).spawn();
    await child.status;
    await Deno.writeTextFile(
      path,
      JSON.stringify({ host: hostname(), pid: child.pid, since: "" }),
    );
    const t0 = performance.now();
    const taken = await acquireLock(path, { pollMs: 50, staleMs: 60_000 });
    assert.ok(performance.now() - t0 < 2000, "a dead holder's lock is taken without waiting for staleness");
    await taken.release();
    await assert.rejects(() => Deno.stat(path), Deno.errors.NotFound);

    // A lock from another host is taken once it has not been refreshed for staleMs.
    await Deno.writeTextFile(path, JSON.stringify({ host: "elsewhere", pid: 1, since: "" }));
    const old = new Date(Date.now() - 10_000);
    await Deno.utime(path, old, old);
    const stolen = await acquireLock(path, { pollMs: 50, staleMs: 5_000 });
    await stolen.release();
  } finally {
    await cleanup();
  }
});

Deno.test("a held lock stays fresh while this thread is busy in synchronous work", async () => {
  const [dir, cleanup] = await tempDir();
  try {
    const path = join(dir, "y.lock");
    const lock = await acquireLock(path, { pollMs: 100 });
    const old = new Date(Date.now() - 60_000);
    await Deno.utime(path, old, old);
    // A training step holds the thread like this; timers on this thread could not run.
    const end = Date.now() + 1000;
    while (Date.now() < end) { /* busy */ }
    const age = Date.now() - (await Deno.stat(path)).mtime!.getTime();
    assert.ok(age < 600, `lock mtime is ${age} ms old after a busy second`);
    await lock.release();
  } finally {
    await cleanup();
  }
});
