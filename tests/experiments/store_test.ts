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
    // Artefacts: listed names must exist in the cell's runs folder when needed (a record without
    // checksums, as written before they were kept, is checked for presence only).
    const old = record("0123456789abcdef");
    const artefact = join(store.runDir(old.id), "out.bin");
    assert.match((await store.artefactProblem(old, true))!, /out\.bin is missing/);
    assert.equal(await store.artefactProblem(old, false), undefined, "not needed: missing is fine");
    await Deno.mkdir(store.runDir(old.id), { recursive: true });
    await Deno.writeTextFile(artefact, "x");
    assert.equal(await store.artefactProblem(old, true), undefined);
    await store.clearRun(old.id);
    assert.match((await store.artefactProblem(old, true))!, /is missing/);
    await store.clearRun(old.id); // absent: no error
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
