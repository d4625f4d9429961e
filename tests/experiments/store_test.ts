import assert from "node:assert/strict";
import { join } from "node:path";
import { type CellRecord, resultsDir, ResultStore, runsDir } from "../../lib/experiments/store.ts";
import { tempDir } from "../env.ts";

function record(id: string, big = 0): CellRecord {
  return {
    id,
    kind: "fake",
    label: "fake",
    config: { n: 1 },
    deps: {},
    result: { values: Array.from({ length: big }, (_, i) => i / 7) },
    artefacts: ["out.bin"],
    cost: 1,
    timings: { startedAt: "2024-01-01T00:00:00.000Z", finishedAt: "2024-01-01T00:00:01.000Z", seconds: 1 },
    finishedAt: "2024-01-01T00:00:01.000Z",
    host: "test",
  };
}

Deno.test("records round-trip; list ignores other files; a misnamed record is an error", async () => {
  const [dir, cleanup] = await tempDir();
  try {
    const store = new ResultStore(join(dir, "results"), join(dir, "runs"));
    assert.deepEqual(await store.list(), []);
    assert.equal(await store.read("0123456789abcdef"), undefined);
    await store.write(record("0123456789abcdef"));
    await store.write(record("fedcba9876543210"));
    await Deno.writeTextFile(join(dir, "results", "notes.json"), "{}");
    assert.deepEqual((await store.list()).map((r) => r.id), ["0123456789abcdef", "fedcba9876543210"]);
    assert.deepEqual(await store.read("0123456789abcdef"), record("0123456789abcdef"));
    await Deno.copyFile(store.resultPath("0123456789abcdef"), store.resultPath("1111111111111111"));
    await assert.rejects(() => store.read("1111111111111111"), /holds the record of cell 0123456789abcdef/);
    // Artefacts: listed names must exist in the cell's runs folder.
    assert.equal(await store.artefactsPresent(record("0123456789abcdef")), false);
    await Deno.mkdir(store.runDir("0123456789abcdef"), { recursive: true });
    await Deno.writeTextFile(join(store.runDir("0123456789abcdef"), "out.bin"), "x");
    assert.equal(await store.artefactsPresent(record("0123456789abcdef")), true);
    await store.clearRun("0123456789abcdef");
    assert.equal(await store.artefactsPresent(record("0123456789abcdef")), false);
    await store.clearRun("0123456789abcdef"); // absent: no error
  } finally {
    await cleanup();
  }
});

Deno.test("folders come from the flag, then the environment, then results|runs/<profile>", () => {
  const saved = [Deno.env.get("NORMTUNE_RESULTS"), Deno.env.get("NORMTUNE_RUNS")];
  try {
    Deno.env.delete("NORMTUNE_RESULTS");
    Deno.env.delete("NORMTUNE_RUNS");
    assert.match(resultsDir("smoke"), /\/results\/smoke$/);
    assert.match(runsDir("smoke"), /\/runs\/smoke$/);
    Deno.env.set("NORMTUNE_RESULTS", "/tmp/r");
    Deno.env.set("NORMTUNE_RUNS", "/tmp/w");
    assert.equal(resultsDir("smoke"), "/tmp/r");
    assert.equal(runsDir("smoke"), "/tmp/w");
    assert.equal(resultsDir("smoke", "/x/y"), "/x/y");
    assert.equal(runsDir("smoke", "/x/z"), "/x/z");
  } finally {
    for (const [name, v] of [["NORMTUNE_RESULTS", saved[0]], ["NORMTUNE_RUNS", saved[1]]] as const) {
      if (v === undefined) Deno.env.delete(name);
      else Deno.env.set(name, v);
    }
  }
});

Deno.test("a reader never sees a partial record while it is rewritten", async () => {
  const [dir, cleanup] = await tempDir();
  try {
    const store = new ResultStore(join(dir, "results"), join(dir, "runs"));
    const id = "00000000000000aa";
    await store.write(record(id, 10));
    // A separate process reads the file in a tight loop while this one rewrites it with large records.
    const reader = new Deno.Command(Deno.execPath(), {
      args: [
        "eval",
        `const p = ${JSON.stringify(store.resultPath(id))}; let n = 0, bad = 0;
         const end = Date.now() + 1500;
         while (Date.now() < end) { try { JSON.parse(Deno.readTextFileSync(p)); n++; } catch { bad++; } }
         console.log(JSON.stringify({ n, bad }));`,
      ],
      stdout: "piped",
    }).spawn();
    let writes = 0;
    const end = Date.now() + 1500;
    while (Date.now() < end) await store.write(record(id, (writes++ % 2) ? 20_000 : 10));
    const { n, bad } = JSON.parse(new TextDecoder().decode((await reader.output()).stdout));
    assert.ok(writes > 10 && n > 10, `too few writes (${writes}) or reads (${n}) to mean anything`);
    assert.equal(bad, 0, `${bad} of ${n + bad} reads saw a partial file`);
    const left = [...Deno.readDirSync(join(dir, "results"))].map((e) => e.name);
    assert.deepEqual(left, [`${id}.json`], "no temporary files are left behind");
  } finally {
    await cleanup();
  }
});

Deno.test("a lock waits for its holder and takes over one whose process is gone", async () => {
  const [dir, cleanup] = await tempDir();
  try {
    const store = new ResultStore(join(dir, "results"), join(dir, "runs"));
    const id = "00000000000000bb";
    const first = await store.lock(id, { pollMs: 50 });
    let waitedFor = "";
    let got = false;
    const second = store.lock(id, { pollMs: 50, onWait: (h) => (waitedFor = h) }).then((l) => {
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
      store.lockPath(id),
      JSON.stringify({ host: (await import("node:os")).hostname(), pid: child.pid, since: "" }),
    );
    const t0 = performance.now();
    const taken = await store.lock(id, { pollMs: 50, staleMs: 60_000 });
    assert.ok(performance.now() - t0 < 2000, "a dead holder's lock is taken without waiting for staleness");
    await taken.release();
    await assert.rejects(() => Deno.stat(store.lockPath(id)), Deno.errors.NotFound);

    // A lock from another host is taken once it has not been refreshed for staleMs.
    await Deno.writeTextFile(store.lockPath(id), JSON.stringify({ host: "elsewhere", pid: 1, since: "" }));
    const old = new Date(Date.now() - 10_000);
    await Deno.utime(store.lockPath(id), old, old);
    const stolen = await store.lock(id, { pollMs: 50, staleMs: 5_000 });
    await stolen.release();
  } finally {
    await cleanup();
  }
});

Deno.test("a held lock stays fresh while this thread is busy in synchronous work", async () => {
  const [dir, cleanup] = await tempDir();
  try {
    const store = new ResultStore(join(dir, "results"), join(dir, "runs"));
    const id = "00000000000000cc";
    const lock = await store.lock(id, { pollMs: 100 });
    const old = new Date(Date.now() - 60_000);
    await Deno.utime(store.lockPath(id), old, old);
    // A training step holds the thread like this; timers on this thread could not run.
    const end = Date.now() + 1000;
    while (Date.now() < end) { /* busy */ }
    const age = Date.now() - (await Deno.stat(store.lockPath(id))).mtime!.getTime();
    assert.ok(age < 600, `lock mtime is ${age} ms old after a busy second`);
    await lock.release();
  } finally {
    await cleanup();
  }
});
