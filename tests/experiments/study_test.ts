import assert from "node:assert/strict";
import { closure, uniqueCells } from "../../lib/experiments/grid.ts";
import { CONTROL_NAMES, PROFILES } from "../../lib/experiments/profiles.ts";
import {
  CELL_OVERHEAD,
  changeCell,
  controlCell,
  findGrid,
  finetuneCell,
  GRID_NAMES,
  type StudyContext,
  studyContext,
  studyGrids,
  TokenEstimate,
  trainingCost,
} from "../../lib/experiments/study.ts";
import { getTask } from "../../lib/glue/tasks.ts";
import { getProfile } from "../../lib/experiments/profiles.ts";
import type { TaskName } from "../../lib/glue/tasks.ts";
import { sharedGlue, sharedModel } from "../env.ts";

/** A context without files: identities made up, sizes as given. */
function fakeContext(profile = PROFILES.cpu, over: Partial<StudyContext> = {}): StudyContext {
  const file = (tag: string, examples: number) => ({
    sha256: tag.padEnd(64, "0"),
    bytes: 100,
    examples,
    tokens: 32,
  });
  const data: StudyContext["data"] = {};
  for (const t of profile.tasks) data[t] = { train: file(`${t}tr`, 1000), dev: file(`${t}dv`, 200) };
  return {
    profile,
    modelDir: "/models/x",
    model: { sha256: "ab".repeat(32), bytes: 1 },
    backend: "wasm",
    glueDir: "/glue",
    data,
    ...over,
  };
}

Deno.test("the cpu study's grids have the expected cells", () => {
  const ctx = fakeContext();
  const grids = studyGrids(ctx);
  assert.deepEqual(grids.map((g) => g.name), [...GRID_NAMES]);
  const size = (name: string) => findGrid(grids, name).cells.length;
  const [tasks, seeds, ks] = [5, 3, 6];
  assert.equal(size("fisher"), tasks);
  assert.equal(size("main"), tasks * 4 * seeds);
  assert.equal(size("change"), tasks);
  assert.equal(size("topk"), tasks * ks * 2 * seeds);
  assert.equal(size("crosstask"), tasks * 3 * seeds);
  for (const g of grids) {
    assert.equal(new Set(g.cells.map((c) => c.id)).size, g.cells.length, `${g.name}: ids unique`);
  }
  assert.throws(() => findGrid(grids, "nope"), /unknown grid "nope"; the study's grids are fisher, main/);
});

Deno.test("controls: appended to the main grid per task and seed; every other cell keeps its id", () => {
  const plain = fakeContext(PROFILES.cpu);
  const withControls = fakeContext({ ...PROFILES.cpu, controls: [...CONTROL_NAMES] });
  const [a, b] = [studyGrids(plain), studyGrids(withControls)];
  for (const name of GRID_NAMES) {
    const ids = (gs: typeof a) => findGrid(gs, name).cells.map((c) => c.id);
    if (name !== "main") assert.deepEqual(ids(b), ids(a), `${name} unchanged`);
  }
  const mainA = findGrid(a, "main").cells, mainB = findGrid(b, "main").cells;
  assert.equal(mainB.length, mainA.length + 5 * 4 * 3);
  const old = new Set(mainA.map((c) => c.id));
  assert.deepEqual(mainB.filter((c) => old.has(c.id)).map((c) => c.id), mainA.map((c) => c.id));
  const added = mainB.filter((c) => !old.has(c.id));
  // Per task: the main modes' cells, then each control x seeds.
  assert.deepEqual(
    mainB.slice(12, 24).map((c) => c.label),
    CONTROL_NAMES.flatMap((n) => [0, 1, 2].map((s) => `finetune CoLA ${n} seed ${s}`)),
  );
  const of = (label: string) => added.find((c) => c.label === `finetune RTE ${label} seed 1`)!.config;
  assert.equal(of("head").mode, "head");
  assert.equal(of("head").init, undefined);
  assert.equal(of("head-pooler").mode, "head-pooler");
  assert.deepEqual([of("full-random-init").mode, of("full-random-init").init], ["full", "random"]);
  assert.equal(of("full-random-init").lr, PROFILES.cpu.train.lr.full, "the pretrained counterpart's rate");
  assert.deepEqual([of("layernorm-random-init").mode, of("layernorm-random-init").init], [
    "layernorm",
    "random",
  ]);
  // Random init is part of the id: same mode and seed, other cell.
  assert.notEqual(
    controlCell(plain, "RTE", "full-random-init", 0).id,
    finetuneCell(plain, "RTE", "full", 0).id,
  );
  // The profiles: controls on smoke only, until the cpu profile is recomputed (issue 15).
  assert.deepEqual(PROFILES.smoke.controls, [...CONTROL_NAMES]);
  assert.deepEqual(PROFILES.cpu.controls, []);
});

Deno.test("dependencies: change reads main's full run, masks read Fisher, cross-task shares topk cells", () => {
  const ctx = fakeContext();
  const grids = studyGrids(ctx);
  const main = new Set(findGrid(grids, "main").cells.map((c) => c.id));
  const topk = new Set(findGrid(grids, "topk").cells.map((c) => c.id));
  const fisher = new Set(findGrid(grids, "fisher").cells.map((c) => c.id));
  for (const c of findGrid(grids, "change").cells) {
    assert.ok(main.has(c.deps.tuned.id), "the change cell's run is the main grid's cell");
    assert.equal(c.deps.tuned.config.mode, "full");
    assert.equal(c.deps.tuned.config.seed, ctx.profile.changeSeed);
  }
  for (const c of findGrid(grids, "topk").cells) {
    const mask = c.deps.mask;
    assert.equal(c.config.mode, "mask");
    assert.equal(mask.kind, "mask");
    if (mask.config.method === "fisher") assert.ok(fisher.has(mask.deps.fisher.id));
    else assert.deepEqual(Object.keys(mask.deps), [], "a random mask needs only the model's shapes");
  }
  const cross = findGrid(grids, "crosstask").cells;
  const shared = cross.filter((c) => topk.has(c.id));
  assert.equal(shared.length, (cross.length * 2) / 3, "own and random cross-task cells are topk cells");
  for (const c of cross.filter((c) => !topk.has(c.id))) {
    const union = c.deps.mask;
    assert.equal(union.config.method, "union");
    const others = ctx.profile.tasks.filter((t) => t !== c.config.task);
    assert.deepEqual(Object.keys(union.deps).sort(), others.map((t) => `mask:${t}`).sort());
    for (const dep of Object.values(union.deps)) assert.equal(dep.config.pct, ctx.profile.crossTaskK);
  }
  // Random masks are shared across tasks: one per (k, seed).
  const randoms = uniqueCells(closure(findGrid(grids, "topk").cells)).filter((c) =>
    c.config.method === "random"
  );
  assert.equal(randoms.length, ctx.profile.topk.length * ctx.profile.seeds.length);
});

Deno.test("every identity input reaches the ids, and only where it belongs", () => {
  const ctx = fakeContext();
  const ids = (c: StudyContext) => new Set(studyGrids(c).flatMap((g) => closure(g.cells)).map((x) => x.id));
  const base = ids(ctx);
  const disjoint = (other: Set<string>, what: string) =>
    assert.equal([...other].filter((id) => base.has(id)).length, 0, `${what} must change every id`);
  // Random masks are plain JavaScript: the backend does not touch them (nor their id).
  const cells = studyGrids(ctx).flatMap((g) => closure(g.cells));
  const random = new Set(cells.filter((c) => c.config.method === "random").map((c) => c.id));
  const other = ids(fakeContext(PROFILES.cpu, { backend: "cpu" }));
  assert.deepEqual(
    new Set([...other].filter((id) => base.has(id))),
    random,
    "the backend changes every other id",
  );
  disjoint(ids(fakeContext(PROFILES.cpu, { model: { sha256: "cd".repeat(32), bytes: 1 } })), "the model");
  // One task's data: that task's cells and their dependants change, the other tasks' fine-tunings do not.
  const changed = fakeContext();
  changed.data.RTE = { ...changed.data.RTE!, train: { ...changed.data.RTE!.train, sha256: "f".repeat(64) } };
  const rte = (task: TaskName, c: StudyContext) => finetuneCell(c, task, "layernorm", 0).id;
  assert.notEqual(rte("RTE", changed), rte("RTE", ctx));
  assert.equal(rte("CoLA", changed), rte("CoLA", ctx));
  // A hyperparameter of the profile.
  const lr = fakeContext({
    ...PROFILES.cpu,
    train: { ...PROFILES.cpu.train, lr: { ...PROFILES.cpu.train.lr, full: 5e-5 } },
  });
  assert.notEqual(changeCell(lr, "RTE").id, changeCell(ctx, "RTE").id, "the change cell follows its run");
  assert.equal(finetuneCell(lr, "RTE", "bitfit", 1).id, finetuneCell(ctx, "RTE", "bitfit", 1).id);
  // Labels are unique within a grid, so progress lines and listings are unambiguous.
  for (const g of studyGrids(ctx)) {
    assert.equal(new Set(g.cells.map((c) => c.label)).size, g.cells.length, g.name);
  }
});

Deno.test("costs follow data size, tokens per example, batch and epochs", () => {
  const ctx = fakeContext(PROFILES.cpu);
  ctx.data.RTE = { train: { ...ctx.data.RTE!.train, tokens: 80 }, dev: { ...ctx.data.RTE!.dev, tokens: 80 } };
  ctx.data.CoLA = {
    train: { ...ctx.data.CoLA!.train, tokens: 12 },
    dev: { ...ctx.data.CoLA!.dev, tokens: 12 },
  };
  const rte = finetuneCell(ctx, "RTE", "layernorm", 0);
  // 2 epochs x (32 steps of 32 + 1000 x 80 tokens / 256 + 200 x 80 / 768 for evaluation).
  assert.equal(rte.cost, Math.round(CELL_OVERHEAD + 2 * (32 + (1000 * 80) / 256 + (200 * 80) / 768)));
  const cola = finetuneCell(ctx, "CoLA", "layernorm", 0).cost;
  assert.ok(rte.cost - CELL_OVERHEAD > 4 * (cola - CELL_OVERHEAD), "long pairs cost more per example");
  // Truncation caps the tokens.
  assert.equal(
    trainingCost({ maxLen: 64, batchSize: 32, epochs: 1 }, { examples: 32, tokens: 500 }, {
      examples: 0,
      tokens: 1,
    }),
    CELL_OVERHEAD + 9,
  );
  assert.equal(rte.costClass, "finetune/sparse");
  assert.equal(finetuneCell(ctx, "RTE", "full", 0).costClass, "finetune/full");
});

Deno.test("token estimates read the text columns", () => {
  const rte = new TokenEstimate(getTask("RTE"));
  for (
    const line of [
      "index\tsentence1\tsentence2\tlabel",
      `0\t${"a".repeat(42)}\t${"b".repeat(84)}\tentailment`,
      "",
    ]
  ) {
    rte.add(line);
  }
  assert.equal(rte.rows, 1);
  assert.equal(rte.tokens(), 30 + 3);
  const cola = new TokenEstimate(getTask("CoLA"));
  cola.add(`gj04\t1\t\t${"c".repeat(84)}`);
  assert.equal(cola.tokens(), 20 + 2);
});

Deno.test("studyContext hashes the shared model and GLUE files", async () => {
  const profile = { ...getProfile("smoke", sharedModel()), tasks: ["RTE", "STS-B"] as TaskName[] };
  const ctx = await studyContext(profile, { backend: "cpu", glueDir: sharedGlue() });
  assert.equal(ctx.backend, "cpu");
  assert.equal(ctx.model.sha256.length, 64);
  assert.ok(ctx.data.RTE!.train.examples > 2000 && ctx.data.RTE!.dev.examples > 200);
  assert.notEqual(ctx.data.RTE!.train.sha256, ctx.data["STS-B"]!.train.sha256);
  await assert.rejects(() => studyContext(profile, { backend: "cpu", glueDir: "/nonexistent" }), /GLUE_DIR/);
});
