import assert from "node:assert/strict";
import { closure, gridSize, uniqueCells, waitingText } from "../../lib/experiments/grid.ts";
import { PROFILES, sparseEpochs } from "../../lib/experiments/profiles.ts";
import { rateText } from "../../lib/experiments/rates.ts";
import {
  CELL_OVERHEAD,
  type ChosenRates,
  controlCell,
  findGrid,
  finetuneCell,
  GRID_NAMES,
  mainMethods,
  recordCostClass,
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
import { fakeContext } from "./fake_context.ts";
import { chooseGemm } from "../../lib/backend/gemm_choice.ts";

/** Every task's full and LayerNorm rates chosen (the first of each class's list unless given). */
function allChosen(ctx: StudyContext, lr: Partial<Record<"full" | "layernorm", number>> = {}): ChosenRates {
  const t = ctx.profile.train;
  return Object.fromEntries(
    ctx.profile.tasks.map((
      task,
    ) => [task, { full: lr.full ?? t.lr.full[0], layernorm: lr.layernorm ?? t.lr.layernorm[0] }]),
  );
}

Deno.test("the cpu study's grids have the expected cells", () => {
  const ctx = fakeContext();
  const p = ctx.profile;
  const grids = studyGrids(ctx, allChosen(ctx));
  assert.deepEqual(grids.map((g) => g.name), [...GRID_NAMES]);
  const size = (name: string) => findGrid(grids, name).cells.length;
  const [tasks, seeds, ks] = [p.tasks.length, p.seeds.length, p.topk.length];
  // Every main method and control at every rate of its class.
  const perSeedTask = mainMethods(p).reduce((a, m) => a + p.train.lr[m.mode].length, 0);
  assert.equal(perSeedTask, 8 * 3, "8 methods x 3 rates");
  assert.equal(size("fisher"), tasks);
  assert.equal(size("main"), tasks * perSeedTask * seeds);
  assert.equal(size("change"), tasks);
  assert.equal(size("topk"), tasks * ks * 2 * seeds);
  assert.equal(size("crosstask"), tasks * 3 * seeds);
  for (const g of grids) {
    assert.equal(new Set(g.cells.map((c) => c.id)).size, g.cells.length, `${g.name}: ids unique`);
    assert.deepEqual(g.waiting ?? [], [], `${g.name}: every rate chosen, nothing waits`);
    assert.equal(gridSize(g), g.cells.length);
  }
  assert.throws(() => findGrid(grids, "nope"), /unknown grid "nope"; the study's grids are fisher, main/);
});

Deno.test("main: every method and control at every rate of its class, seed-major", () => {
  const ctx = fakeContext();
  const p = ctx.profile;
  const main = findGrid(studyGrids(ctx), "main").cells;
  // The first seed covers every task, method and rate before the second starts.
  const half = main.length / p.seeds.length;
  assert.deepEqual(new Set(main.slice(0, half).map((c) => c.config.seed)), new Set([0]));
  assert.deepEqual(new Set(main.slice(half).map((c) => c.config.seed)), new Set([1]));
  const of = (label: string) => main.find((c) => c.label === `finetune RTE ${label} seed 1`)!.config;
  for (const lr of p.train.lr.full) {
    assert.equal(of(`full lr ${rateText(lr)}`).lr, lr);
    const random = of(`full-random-init lr ${rateText(lr)}`);
    assert.deepEqual([random.mode, random.init, random.lr, random.epochs], [
      "full",
      "random",
      lr,
      p.train.epochs,
    ]);
  }
  for (const lr of p.train.lr.layernorm) {
    const ln = of(`layernorm lr ${rateText(lr)}`);
    assert.deepEqual([ln.lr, ln.epochs, ln.init], [lr, sparseEpochs(p.train.epochs), undefined]);
    assert.equal(of(`layernorm-random-init lr ${rateText(lr)}`).init, "random");
    assert.equal(of(`head lr ${rateText(lr)}`).mode, "head");
    assert.equal(of(`head-pooler lr ${rateText(lr)}`).mode, "head-pooler");
  }
  // Random init and the rate are part of the id.
  assert.notEqual(
    controlCell(ctx, "RTE", "full-random-init", 0, 1e-4).id,
    finetuneCell(ctx, "RTE", "full", 0, 1e-4).id,
  );
  assert.notEqual(finetuneCell(ctx, "RTE", "full", 0, 3e-4).id, finetuneCell(ctx, "RTE", "full", 0, 1e-4).id);
  // Controls only add cells: the main methods' cells are the same with or without them.
  const plain = fakeContext({ ...PROFILES.cpu, controls: [] });
  const without = findGrid(studyGrids(plain), "main").cells.map((c) => c.id);
  assert.deepEqual(main.map((c) => c.id).filter((id) => without.includes(id)), without);
  assert.throws(() => finetuneCell(ctx, "RTE", "full", 0, NaN), /finetune RTE full seed 0: learning rate/);
});

Deno.test("change, topk and crosstask wait on main's chosen rates, saying why", () => {
  const ctx = fakeContext();
  const full = studyGrids(ctx, allChosen(ctx));
  // Nothing chosen: no cell declared, every one waiting, counts unchanged.
  const none = studyGrids(ctx);
  for (const name of ["change", "topk", "crosstask"]) {
    const g = findGrid(none, name);
    assert.equal(g.cells.length, 0, name);
    assert.equal(gridSize(g), findGrid(full, name).cells.length, `${name}: the count does not wait`);
    assert.equal(g.waiting!.length, ctx.profile.tasks.length, `${name}: one reason per task`);
    assert.match(
      waitingText(g)!,
      new RegExp(`grid ${name}: \\d+ of \\d+ cells wait .*CoLA: main's records not read`),
    );
  }
  // One task chosen: its cells are declared at that rate, in the same order; the others say why not.
  const some: ChosenRates = {
    RTE: { full: 3e-4, layernorm: 1e-2 },
    CoLA: { full: "main has 2 of 6 full runs", layernorm: "main has 5 of 6 layernorm runs" },
  };
  const grids = studyGrids(ctx, some);
  const topk = findGrid(grids, "topk");
  assert.ok(topk.cells.length > 0);
  assert.ok(
    topk.cells.every((c) => c.config.task === "RTE" && c.config.lr === 1e-2 && c.config.mode === "mask"),
  );
  assert.deepEqual(
    topk.cells.map((c) => c.id),
    findGrid(studyGrids(ctx, allChosen(ctx, { layernorm: 1e-2 })), "topk").cells.filter((c) =>
      c.config.task === "RTE"
    )
      .map((c) => c.id),
  );
  assert.match(
    waitingText(topk)!,
    /CoLA: main has 5 of 6 layernorm runs \(its layernorm rate is not chosen yet\)/,
  );
  const change = findGrid(grids, "change");
  assert.deepEqual(change.cells.map((c) => c.deps.tuned.config.lr), [3e-4]);
  assert.match(waitingText(change)!, /CoLA: main has 2 of 6 full runs/);
  // Stand-ins cost what the cells will: the rate does not change the cost.
  const standIn = topk.waiting![0].standIns[0];
  assert.equal(standIn.cost, topk.cells[0].cost);
  assert.equal(waitingText(findGrid(full, "topk")), undefined);
});

Deno.test("dependencies: change reads main's full run, masks read Fisher, cross-task shares topk cells", () => {
  const ctx = fakeContext();
  const grids = studyGrids(ctx, allChosen(ctx, { full: 3e-4, layernorm: 3e-3 }));
  const main = new Set(findGrid(grids, "main").cells.map((c) => c.id));
  const topk = new Set(findGrid(grids, "topk").cells.map((c) => c.id));
  const fisher = new Set(findGrid(grids, "fisher").cells.map((c) => c.id));
  for (const c of findGrid(grids, "change").cells) {
    assert.ok(main.has(c.deps.tuned.id), "the change cell's run is the main grid's cell");
    assert.equal(c.deps.tuned.config.mode, "full");
    assert.equal(c.deps.tuned.config.lr, 3e-4, "at the chosen full rate");
    assert.equal(c.deps.tuned.config.seed, ctx.profile.changeSeed);
  }
  for (const c of findGrid(grids, "topk").cells) {
    const mask = c.deps.mask;
    assert.equal(c.config.mode, "mask");
    assert.equal(c.config.lr, 3e-3, "at the chosen LayerNorm rate");
    assert.equal(c.config.epochs, sparseEpochs(ctx.profile.train.epochs));
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
  const all = (c: StudyContext) => studyGrids(c, allChosen(c)).flatMap((g) => closure(g.cells));
  const ids = (c: StudyContext) => new Set(all(c).map((x) => x.id));
  const base = ids(ctx);
  const disjoint = (other: Set<string>, what: string) =>
    assert.equal([...other].filter((id) => base.has(id)).length, 0, `${what} must change every id`);
  // Random masks are plain JavaScript: the backend does not touch them (nor their id).
  const random = new Set(all(ctx).filter((c) => c.config.method === "random").map((c) => c.id));
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
  const rte = (task: TaskName, c: StudyContext) => finetuneCell(c, task, "layernorm", 0, 1e-3).id;
  assert.notEqual(rte("RTE", changed), rte("RTE", ctx));
  assert.equal(rte("CoLA", changed), rte("CoLA", ctx));
  // The chosen rate: the change cell follows its run; the LayerNorm rate moves topk, not change.
  const grid = (name: string, chosen: ChosenRates) =>
    findGrid(studyGrids(ctx, chosen), name).cells.map((c) => c.id);
  assert.notDeepEqual(grid("change", allChosen(ctx, { full: 1e-3 })), grid("change", allChosen(ctx)));
  assert.deepEqual(grid("change", allChosen(ctx, { layernorm: 1e-2 })), grid("change", allChosen(ctx)));
  assert.notDeepEqual(grid("topk", allChosen(ctx, { layernorm: 1e-2 })), grid("topk", allChosen(ctx)));
  // Labels are unique within a grid, so progress lines and listings are unambiguous.
  for (const g of studyGrids(ctx, allChosen(ctx))) {
    assert.equal(new Set(g.cells.map((c) => c.label)).size, g.cells.length, g.name);
  }
});

Deno.test("a committed cpu record keeps its id: the default (wasm) product adds nothing to a cell's config", () => {
  // results/cpu/05714629d1228e09.json, "finetune STS-B layernorm lr 3e-3 seed 0", computed on the wasm
  // product: its model and data identities, and the id its configuration hashes to.
  const file = (sha256: string, bytes: number) => ({ sha256, bytes, examples: 1, tokens: 1 });
  const ctx = fakeContext(PROFILES.cpu, {
    model: { sha256: "cb7e603b1b331b4f29eaa498086ac005522709bbd447798b3e4359a0e477d5a7", bytes: 17737792 },
    data: {
      "STS-B": {
        train: file("41c4d978b6162abdcada7e49a982211954cca5459c228db478af333124b257a2", 984099),
        dev: file("fe7dc0632a5033562f3cadff991f6e8d9b9b6311861660e78c3c82eb7db67f59", 276928),
      },
    },
  });
  assert.equal(finetuneCell(ctx, "STS-B", "layernorm", 0, 3e-3).id, "05714629d1228e09");
  // The same cell on OpenBLAS is another cell (other bits); the description is not hashed.
  const blas = { ...ctx, backend: "wasm+openblas-t1" };
  assert.notEqual(finetuneCell(blas, "STS-B", "layernorm", 0, 3e-3).id, "05714629d1228e09");
  const described = {
    ...blas,
    compute: { backend: "wasm", gemm: "openblas" as const, openblas: { threads: 1, config: "x", core: "y" } },
  };
  const cell = finetuneCell(described, "STS-B", "layernorm", 0, 3e-3);
  assert.equal(cell.id, finetuneCell(blas, "STS-B", "layernorm", 0, 3e-3).id);
  assert.deepEqual(cell.meta.openblas, { threads: 1, config: "x", core: "y" });
});

Deno.test("costs follow data size, tokens per example, batch and epochs", () => {
  const ctx = fakeContext(PROFILES.cpu);
  ctx.data.RTE = { train: { ...ctx.data.RTE!.train, tokens: 80 }, dev: { ...ctx.data.RTE!.dev, tokens: 80 } };
  ctx.data.CoLA = {
    train: { ...ctx.data.CoLA!.train, tokens: 12 },
    dev: { ...ctx.data.CoLA!.dev, tokens: 12 },
  };
  const rte = finetuneCell(ctx, "RTE", "layernorm", 0, 1e-3);
  // 3 epochs (sparse) x (32 steps of 32 + 1000 x 80 tokens / 256 + 200 x 80 / 768 for evaluation).
  assert.equal(rte.cost, Math.round(CELL_OVERHEAD + 3 * (32 + (1000 * 80) / 256 + (200 * 80) / 768)));
  const cola = finetuneCell(ctx, "CoLA", "layernorm", 0, 1e-3).cost;
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
  assert.equal(finetuneCell(ctx, "RTE", "full", 0, 1e-4).costClass, "finetune/full");
  assert.equal(controlCell(ctx, "RTE", "head-pooler", 0, 1e-3).costClass, "finetune/head");
  assert.equal(controlCell(ctx, "RTE", "layernorm-random-init", 0, 1e-3).costClass, "finetune/sparse");
  const masked = findGrid(studyGrids(ctx, allChosen(ctx)), "topk").cells[0];
  assert.equal(masked.costClass, "finetune/mask");
  // Records written before the split (masks under "finetune/sparse") are classed by their mode.
  const old = { kind: "finetune", config: masked.config, costClass: "finetune/sparse" };
  assert.equal(recordCostClass(old), "finetune/mask");
  assert.equal(recordCostClass({ kind: "fisher", config: {}, costClass: "fisher" }), "fisher");
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
  // The default product: the backend's name alone, as every committed record has it.
  const wasm = await studyContext(profile, { backend: "wasm", glueDir: sharedGlue() });
  assert.equal(wasm.backend, "wasm");
  assert.deepEqual(wasm.compute, { backend: "wasm", gemm: "wasm" });
  // OpenBLAS: one thread whatever the machine (ids must not depend on it), described in each cell's meta.
  const blas = await studyContext(profile, { backend: "wasm", gemm: "openblas", glueDir: sharedGlue() });
  try {
    assert.equal(blas.backend, "wasm+openblas-t1");
    assert.equal(blas.compute?.openblas?.threads, 1);
    assert.match(blas.compute?.openblas?.config ?? "", /OpenBLAS/);
    const cells = studyGrids(blas).flatMap((g) => g.cells);
    const computed = cells.filter((c) => c.kind === "finetune" || c.kind === "fisher");
    assert.ok(computed.length > 0 && computed.every((c) => c.config.backend === "wasm+openblas-t1"));
    assert.ok(
      cells.every((c) => (c.meta.openblas as { core: string }).core === blas.compute!.openblas!.core),
    );
    await assert.rejects(
      () => studyContext(profile, { backend: "cpu", gemm: "openblas", glueDir: sharedGlue() }),
      /is for the wasm backend/,
    );
  } finally {
    chooseGemm("wasm", { name: "wasm" });
  }
});
