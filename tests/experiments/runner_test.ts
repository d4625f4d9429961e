/**
 * The runner with fake executors: skip finished cells, --fresh, dependency order, artefacts repaired on
 * demand, resume after SIGKILL, and run-cell by index in separate processes.
 *
 * Run as a program (`deno run -A runner_test.ts grid|cell ...`) this file is the fake runner the
 * subprocess tests start.
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { type Cell, closure, type Grid, makeCell } from "../../lib/experiments/grid.ts";
import { type Executors, type RunEvent, runGridCell, Runner } from "../../lib/experiments/runner.ts";
import { type CellRecord, ResultStore } from "../../lib/experiments/store.ts";
import { sha256Hex } from "../../lib/experiments/hash.ts";
import { writeJsonAtomic } from "../../lib/util/atomic.ts";
import { tempDir } from "../env.ts";

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** a (artefact a.txt) <- b (artefact b.txt) <- c (resumable, 4 steps), for 3 tasks x 2 seeds of c. */
function fakeGrid(): Grid {
  const cells: Cell[] = [];
  for (const task of [0, 1, 2]) {
    const a = makeCell("a", { task }, { label: `a ${task}` });
    const b = makeCell("b", { task }, { deps: { a }, label: `b ${task}` });
    for (const seed of [0, 1]) {
      cells.push(makeCell("c", { task, seed }, { deps: { b }, label: `c ${task}/${seed}` }));
    }
  }
  return { name: "fake", about: "fake cells", cells };
}

/** Deterministic fake work; every start and end is appended to `log` (shared by processes). */
function fakeExecutors(log: string, delayMs: number): Executors {
  const note = (line: string) => Deno.writeTextFile(log, line + "\n", { append: true });
  return {
    a: {
      async run(ctx) {
        await note(`start ${ctx.cell.id}`);
        await sleep(delayMs);
        await Deno.writeTextFile(join(ctx.dir, "a.txt"), String(ctx.cell.config.task));
        await note(`end ${ctx.cell.id}`);
        return { result: { value: Number(ctx.cell.config.task) }, artefacts: ["a.txt"] };
      },
    },
    b: {
      async run(ctx) {
        await note(`start ${ctx.cell.id}`);
        // Reads its dependency's artefact: it must be there.
        const a = Number(await Deno.readTextFile(join(ctx.deps.a.dir, "a.txt")));
        await sleep(delayMs);
        await Deno.writeTextFile(join(ctx.dir, "b.txt"), String(a * 10));
        await note(`end ${ctx.cell.id}`);
        return { result: { value: a * 10 }, artefacts: ["b.txt"] };
      },
    },
    c: {
      // Like the trainer: keeps its progress in its runs folder and resumes from it.
      async run(ctx) {
        await note(`start ${ctx.cell.id}`);
        const statePath = join(ctx.dir, "state.json");
        const state = JSON.parse(await Deno.readTextFile(statePath).catch(() => '{"step":0}'));
        const resumedFrom = state.step;
        const b = Number(await Deno.readTextFile(join(ctx.deps.b.dir, "b.txt")));
        for (let step = state.step; step < 4; step++) {
          await sleep(delayMs / 4);
          await writeJsonAtomic(statePath, { step: step + 1 });
        }
        await note(`end ${ctx.cell.id}`);
        return { result: { value: b + Number(ctx.cell.config.seed), resumedFrom } };
      },
    },
  };
}

function starts(log: string): string[] {
  let text = "";
  try {
    text = Deno.readTextFileSync(log);
  } catch {
    return [];
  }
  return text.split("\n").filter((l) => l.startsWith("start ")).map((l) => l.slice(6));
}

/** Record contents that must not depend on how or when the cell ran. */
function stable(rec: CellRecord) {
  const { timings: _t, finishedAt: _f, host: _h, ...rest } = rec;
  return { ...rest, result: { ...rest.result, resumedFrom: undefined } };
}

async function setup() {
  const [dir, cleanup] = await tempDir();
  const store = new ResultStore(join(dir, "results"), join(dir, "runs"));
  const log = join(dir, "calls.log");
  return { dir, cleanup, store, log };
}

Deno.test("runs dependencies first, then skips every finished cell", async () => {
  const { cleanup, store, log } = await setup();
  try {
    const grid = fakeGrid();
    const events: RunEvent[] = [];
    const runner = new Runner({ store, executors: fakeExecutors(log, 0), onEvent: (e) => events.push(e) });
    const first = await runner.runAll(grid.cells);
    assert.equal(first.computed, 12);
    assert.equal(first.skipped, 0);
    assert.deepEqual(events[0], { type: "plan", total: 12, todo: 12, cost: 12 });
    // Every cell ended before any of its dependants started.
    const lines = Deno.readTextFileSync(log).trim().split("\n");
    for (const cell of closure(grid.cells)) {
      for (const dep of Object.values(cell.deps)) {
        assert.ok(
          lines.indexOf(`end ${dep.id}`) < lines.indexOf(`start ${cell.id}`),
          `${dep.label} before ${cell.label}`,
        );
      }
    }
    const c = await store.read(grid.cells[5].id);
    assert.deepEqual(c?.result, { value: 21, resumedFrom: 0 });
    assert.deepEqual(c?.deps, { b: grid.cells[5].deps.b.id });
    assert.deepEqual(c?.config, { task: 2, seed: 1 });

    const again = await new Runner({ store, executors: fakeExecutors(log, 0) }).runAll(grid.cells);
    assert.deepEqual([again.computed, again.skipped], [0, 12]);
    assert.equal(starts(log).length, 12, "nothing was started the second time");
  } finally {
    await cleanup();
  }
});

Deno.test("fresh recomputes the named cells once, clearing their runs folder, and nothing else", async () => {
  const { cleanup, store, log } = await setup();
  try {
    const grid = fakeGrid();
    await new Runner({ store, executors: fakeExecutors(log, 0) }).runAll(grid.cells);
    const before = await store.read(grid.cells[0].id);
    // A stale resume state must not survive a fresh run.
    await writeJsonAtomic(join(store.runDir(grid.cells[0].id), "state.json"), { step: 3 });
    await sleep(5);
    const fresh = new Runner({ store, executors: fakeExecutors(log, 0), fresh: grid.cells.map((c) => c.id) });
    const r = await fresh.runAll(grid.cells);
    assert.deepEqual([r.computed, r.skipped], [6, 6]);
    const after = await store.read(grid.cells[0].id);
    assert.notEqual(after?.finishedAt, before?.finishedAt);
    assert.equal(after?.result.resumedFrom, 0);
    // The same runner does not recompute them a second time.
    assert.equal((await fresh.runAll(grid.cells)).computed, 0);
    assert.equal(starts(log).length, 18);
  } finally {
    await cleanup();
  }
});

Deno.test("a missing artefact is recomputed only when a dependant needs it", async () => {
  const { cleanup, store, log } = await setup();
  try {
    const grid = fakeGrid();
    const run = () => new Runner({ store, executors: fakeExecutors(log, 0) }).runAll(grid.cells);
    await run();
    const [c00, c01] = grid.cells;
    const b0 = c00.deps.b, a0 = b0.deps.a;
    // Records committed, artefacts gone (a fresh clone): nothing to do.
    await store.clearRun(a0.id);
    await store.clearRun(b0.id);
    assert.equal((await run()).computed, 0);
    // c(0,0) must be redone: it needs b0's artefact, which needs a0's: all three run, in order.
    await Deno.remove(store.resultPath(c00.id));
    const n = starts(log).length;
    assert.equal((await run()).computed, 3);
    assert.deepEqual(starts(log).slice(n), [a0.id, b0.id, c00.id]);
    // Now b0's artefact is back: redoing c(0,1) needs nothing upstream.
    await Deno.remove(store.resultPath(c01.id));
    assert.equal((await run()).computed, 1);
    assert.deepEqual(starts(log).slice(n + 3), [c01.id]);
  } finally {
    await cleanup();
  }
});

Deno.test("an artefact that no longer matches its record's checksum is recomputed, saying why", async () => {
  const { cleanup, store, log } = await setup();
  try {
    const grid = fakeGrid();
    const events: RunEvent[] = [];
    const run = () =>
      new Runner({ store, executors: fakeExecutors(log, 0), onEvent: (e) => events.push(e) }).runAll(
        grid.cells,
      );
    await run();
    const [c00] = grid.cells;
    const b0 = c00.deps.b, a0 = b0.deps.a;
    const rec = await store.read(a0.id);
    assert.deepEqual(rec?.checksums, { "a.txt": { sha256: sha256Hex("0"), bytes: 1 } });
    const reasons = () => events.flatMap((e) => e.type === "start" ? [[e.cell.id, e.reason]] : []);

    // Same size, other content: found when a dependant is about to read it.
    await Deno.writeTextFile(join(store.runDir(a0.id), "a.txt"), "9");
    assert.equal((await run()).computed, 0, "nothing needs a0's artefact");
    await Deno.remove(store.resultPath(b0.id));
    events.length = 0;
    assert.equal((await run()).computed, 2);
    assert.deepEqual(reasons().map(([id]) => id), [a0.id, b0.id]);
    assert.match(reasons()[0][1], /a\.txt does not match the sha256 recorded when it was written/);
    assert.equal(await Deno.readTextFile(join(store.runDir(a0.id), "a.txt")), "0", "rewritten");

    // Truncated: noticed at once (a size check), even though nothing needs it.
    await Deno.writeTextFile(join(store.runDir(b0.id), "b.txt"), "");
    events.length = 0;
    assert.equal((await run()).computed, 1);
    assert.equal(reasons()[0][0], b0.id);
    assert.match(reasons()[0][1], /b\.txt has 0 bytes, 1 were written/);
    assert.equal(await Deno.readTextFile(join(store.runDir(b0.id), "b.txt")), "0");
  } finally {
    await cleanup();
  }
});

Deno.test("temporary files a killed write left in a cell's folder are removed when it runs", async () => {
  const { cleanup, store, log } = await setup();
  try {
    const grid = fakeGrid();
    const a0 = grid.cells[0].deps.b.deps.a;
    const stale = join(store.runDir(a0.id), "a.txt.tmp-99999999-0badf00d");
    await Deno.mkdir(store.runDir(a0.id), { recursive: true });
    await Deno.writeTextFile(stale, "half");
    await new Runner({ store, executors: fakeExecutors(log, 0) }).runAll([a0]);
    assert.deepEqual([...Deno.readDirSync(store.runDir(a0.id))].map((e) => e.name), ["a.txt"]);
  } finally {
    await cleanup();
  }
});

Deno.test("executor errors name the cell", async () => {
  const { cleanup, store, log } = await setup();
  try {
    const grid = fakeGrid();
    const { a: _a, ...noA } = fakeExecutors(log, 0);
    await assert.rejects(
      () => new Runner({ store, executors: noA }).runAll(grid.cells),
      /no executor for cells of kind "a"/,
    );
    const liar: Executors = {
      ...fakeExecutors(log, 0),
      a: { run: () => Promise.resolve({ result: {}, artefacts: ["x"] }) },
    };
    await assert.rejects(
      () => new Runner({ store, executors: liar }).runAll(grid.cells),
      /a\.txt|said it wrote .*x/,
    );
    assert.equal(await store.read(grid.cells[0].deps.b.deps.a.id), undefined, "no record for a failed cell");
    await assert.rejects(
      () => runGridCell(grid, 6, new Runner({ store, executors: liar })),
      /index 6 is out of range.*0\.\.5/,
    );
  } finally {
    await cleanup();
  }
});

Deno.test("a failing cell does not stop the others; it and its dependants are reported at the end", async () => {
  const { cleanup, store, log } = await setup();
  try {
    const grid = fakeGrid();
    const b1 = grid.cells[2].deps.b; // task 1's b: c(1,0) and c(1,1) depend on it
    const fake = fakeExecutors(log, 0);
    let attempts = 0;
    const executors: Executors = {
      ...fake,
      b: {
        run: (ctx) => {
          if (ctx.cell.id !== b1.id) return fake.b.run(ctx);
          attempts++;
          return Promise.reject(new Error("training diverged at step 3"));
        },
      },
    };
    const events: RunEvent[] = [];
    const err = await new Runner({ store, executors, onEvent: (e) => events.push(e) }).runAll(grid.cells)
      .then(
        () => undefined,
        (e: Error) => e,
      );
    assert.ok(err, "runAll must reject");
    assert.match(err.message, /^3 of 12 cells failed \(9 computed, 0 already finished\)/);
    assert.match(err.message, new RegExp(`b 1 \\(${b1.id}\\): training diverged at step 3`));
    assert.match(err.message, /c 1\/0 \(\w+\): its dependency b 1 \(\w+\) failed/);
    assert.equal(attempts, 1, "the failed cell is not retried by each dependant");
    assert.equal((await store.list()).length, 9);
    assert.equal(events.filter((e) => e.type === "fail").length, 3);
    // The next run retries only what failed.
    const r = await new Runner({ store, executors: fake }).runAll(grid.cells);
    assert.deepEqual([r.computed, r.skipped], [3, 9]);
  } finally {
    await cleanup();
  }
});

function spawnFake(mode: string[], dir: string, delayMs: number): Deno.ChildProcess {
  return new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", new URL(import.meta.url).pathname, ...mode, dir, String(delayMs)],
    stdout: "null",
    stderr: "piped",
  }).spawn();
}

function exists(path: string): boolean {
  try {
    Deno.statSync(path);
    return true;
  } catch {
    return false;
  }
}

async function waitFor(check: () => boolean, timeoutMs: number): Promise<void> {
  const end = Date.now() + timeoutMs;
  while (!check()) {
    if (Date.now() > end) throw new Error("timed out waiting");
    await sleep(20);
  }
}

Deno.test("a runner killed mid-grid resumes without redoing finished cells", async () => {
  const { dir, cleanup, store, log } = await setup();
  try {
    const grid = fakeGrid();
    const count = () => {
      try {
        return [...Deno.readDirSync(store.results)].filter((e) => e.name.endsWith(".json")).length;
      } catch {
        return 0;
      }
    };
    const child = spawnFake(["grid"], dir, 400);
    // Kill while the second c cell is between its steps (a0, b0, c00 finished), to exercise its resume.
    const state = join(store.runDir(grid.cells[1].id), "state.json");
    await waitFor(() => count() >= 3 && starts(log).length >= 4 && exists(state), 30_000);
    child.kill("SIGKILL");
    const status = await child.status;
    assert.equal(status.signal, "SIGKILL");
    const finished = new Set((await store.list()).map((r) => r.id));
    assert.ok(finished.size >= 3 && finished.size < 12, `killed with ${finished.size} of 12 finished`);
    // The state of an interrupted c cell, if it got that far.
    const partial = new Map<string, number>();
    for (const cell of grid.cells) {
      if (finished.has(cell.id)) continue;
      const text = await Deno.readTextFile(join(store.runDir(cell.id), "state.json")).catch(() => undefined);
      if (text) partial.set(cell.id, JSON.parse(text).step);
    }
    assert.ok(partial.size >= 1, "the interrupted cell left its state");
    const startsBefore = starts(log).length;
    await new Runner({ store, executors: fakeExecutors(log, 0), lock: { pollMs: 50 } }).runAll(grid.cells);
    const redone = starts(log).slice(startsBefore);
    assert.equal(redone.filter((id) => finished.has(id)).length, 0, "finished cells must not be redone");
    assert.equal(redone.length, 12 - finished.size);
    assert.equal((await store.list()).length, 12);
    for (const [id, step] of partial) {
      assert.equal(
        (await store.read(id))?.result.resumedFrom,
        step,
        "an interrupted cell resumes its own state",
      );
    }
  } finally {
    await cleanup();
  }
});

Deno.test("run-cell by index in separate processes gives the sequential run's result files", async () => {
  const { dir, cleanup, log } = await setup();
  const [seqDir, cleanupSeq] = await tempDir();
  try {
    const grid = fakeGrid();
    const seqStore = new ResultStore(join(seqDir, "results"), join(seqDir, "runs"));
    await new Runner({ store: seqStore, executors: fakeExecutors(join(seqDir, "calls.log"), 0) }).runAll(
      grid.cells,
    );

    // All six at once: they share a and b cells, which the locks let exactly one process compute.
    const children = grid.cells.map((_, i) => spawnFake(["cell", String(i)], dir, 50));
    for (const child of children) {
      const out = await child.output();
      assert.equal(out.code, 0, new TextDecoder().decode(out.stderr));
    }
    const store = new ResultStore(join(dir, "results"), join(dir, "runs"));
    const seq = await seqStore.list(), par = await store.list();
    assert.deepEqual(par.map((r) => r.id), seq.map((r) => r.id));
    assert.deepEqual(par.map(stable), seq.map(stable));
    const calls = starts(log);
    assert.equal(calls.length, 12, "each cell computed exactly once across the processes");
    assert.equal(new Set(calls).size, 12);
  } finally {
    await cleanup();
    await cleanupSeq();
  }
});

// The fake runner the subprocess tests start: `grid DIR DELAY` or `cell INDEX DIR DELAY`.
if (import.meta.main) {
  const [mode, ...rest] = Deno.args;
  const index = mode === "cell" ? Number(rest.shift()) : -1;
  const [dir, delay] = rest;
  const store = new ResultStore(join(dir, "results"), join(dir, "runs"));
  const runner = new Runner({
    store,
    executors: fakeExecutors(join(dir, "calls.log"), Number(delay)),
    lock: { pollMs: 50 },
  });
  if (mode === "cell") await runGridCell(fakeGrid(), index, runner);
  else await runner.runAll(fakeGrid().cells);
}
