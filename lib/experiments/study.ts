/**
 * The study's grids (arXiv 2403.20284), declared from a profile. Run order, and what each feeds:
 *
 * 1. `fisher`: per task, the pretrained model with a fresh head, Fisher of every parameter on N training
 *    examples (notebooks 2 and 6; the masks' scores).
 * 2. `main`: {full, bitfit, layernorm, layernorm-output} and the profile's controls (`CONTROLS`: head,
 *    head-pooler, full and LayerNorm from random init), each at every learning rate of its class
 *    (lib/experiments/profiles.ts), x tasks x seeds (notebook 3). Seed-major: a run stopped part-way has
 *    every task, method and rate with the first seed before the second starts. Full fine-tuning keeps its
 *    delta, which `change` reads.
 * 3. `change`: per task, base checkpoint vs the full fine-tuning of seed `changeSeed` at the full rate
 *    main chose for the task (notebook 1).
 * 4. `topk`: per task, LayerNorm masks of the top-k% elements by Fisher and random masks of the same size,
 *    each fine-tuned x seeds at the LayerNorm rate main chose for the task (notebook 4). Mask cells are
 *    dependencies, not grid cells.
 * 5. `crosstask`: per held-out task, the union of the other tasks' top-k% masks vs the task's own top-k%
 *    vs random of k%, fine-tuned x seeds at the same rate (notebook 5). Own and random are the same cells
 *    as in `topk` when k is one of its k values (same configuration, same id), so they are computed once.
 *
 * Chosen rates (`ChosenRates`, read from the store by lib/experiments/session.ts): a cell of change, topk
 * or crosstask is declared once main has finished every run that chooses its task's rate (every rate x
 * seed of that class, lib/experiments/rates.ts); until then it waits (`Grid.waiting`, with the reason),
 * and commands say so instead of running it at a default rate.
 *
 * Every cell's configuration holds the model's content identity, the data files' identities, the
 * backend (with the product where it is not the default: "wasm+openblas-t1"), every hyperparameter and its
 * kind's code version (`VERSIONS`): bump a version when a change in the code would change that kind's
 * results, and exactly those cells are recomputed.
 *
 * ```ts
 * const ctx = await studyContext(getProfile("smoke"));
 * const grids = studyGrids(ctx, { "SST-2": { layernorm: 1e-3, full: 1e-4 } });
 * grids.find((g) => g.name === "topk")!.waiting; // STS-B's cells: main has not chosen its rates
 * ```
 */
import { join } from "node:path";
import { getTask, type GlueTask, type TaskName } from "../glue/tasks.ts";
import { type GemmAsk, gemmDescription, type GemmName } from "../backend/gemm_choice.ts";
import { type BackendName, initCompute } from "../tf.ts";
import { glueDir as resolveGlueDir, modelDir as resolveModelDir } from "../util/paths.ts";
import { type Cell, type Grid, makeCell, type Waiting } from "./grid.ts";
import { type FileIdentity, fileIdentity, modelIdentity } from "./hash.ts";
import { rateText } from "./rates.ts";
import {
  type ChosenClass,
  type ControlName,
  CONTROLS,
  epochsFor,
  MAIN_MODES,
  maxTrainFor,
  type Profile,
  ratesFor,
  type SearchClass,
  type TrainClass,
} from "./profiles.ts";

export { GRID_NAMES, type GridName } from "./profiles.ts";

/** Code versions per kind: part of every cell's configuration. Bump when results would change. */
export const VERSIONS = { finetune: 1, fisher: 1, change: 1, mask: 1 } as const;

export interface DataFile extends FileIdentity {
  /** Examples in the file (lines, header excluded): for cost estimates. */
  examples: number;
  /** Estimated WordPiece tokens per example, specials included, before truncation: for cost estimates. */
  tokens: number;
}

export interface StudyContext {
  profile: Profile;
  /** The resolved model folder. */
  modelDir: string;
  model: FileIdentity;
  /**
   * What results are computed with, as every cell's configuration holds it: the resolved backend
   * ("wasm", "cpu", "tensorflow"), with OpenBLAS products "wasm+openblas-t1" (lib/backend/gemm_choice.ts).
   */
  backend: string;
  /**
   * How to compute that: the backend's name and product for the executors, and OpenBLAS's build and core
   * (described in the cells' `meta`, not hashed). Absent in contexts made by hand: the wasm product.
   */
  compute?: StudyCompute;
  glueDir: string;
  data: Partial<Record<TaskName, { train: DataFile; dev: DataFile }>>;
}

export interface StudyCompute {
  backend: string;
  gemm: GemmName;
  /** OpenBLAS's description (`gemmDescription`), with the openblas product. */
  openblas?: { threads: number; config: string; core: string };
}

export interface ContextOptions {
  backend?: BackendName;
  /** The wasm backend's product; default NORMTUNE_GEMM, else wasm. */
  gemm?: GemmAsk;
  glueDir?: string;
}

/**
 * OpenBLAS threads of the study's cells: one, whatever the machine or `--jobs`. The study spreads cells
 * over the cores as processes (`--jobs`), and the thread count changes bits, so it is part of every id:
 * one fixed count keeps the ids of a profile the same on every machine and for every `--jobs`.
 */
export const STUDY_BLAS_THREADS = 1;

async function dataFile(path: string, task: GlueTask): Promise<DataFile> {
  const id = await fileIdentity(path).catch((err) => {
    throw new Error(
      `${(err as Error).message}. Set GLUE_DIR (or --glue-dir) to a folder of GLUE tasks, or run ` +
        "`deno task normtune glue download`.",
    );
  });
  const count = new TokenEstimate(task);
  const decoder = new TextDecoder();
  let rest = "";
  const file = await Deno.open(path);
  for await (const chunk of file.readable) {
    const lines = (rest + decoder.decode(chunk, { stream: true })).split("\n");
    rest = lines.pop()!;
    for (const line of lines) count.add(line);
  }
  count.add(rest + decoder.decode());
  return { ...id, examples: count.rows, tokens: count.tokens() };
}

/**
 * Tokens per example from the text fields: characters / 4.2 (English WordPiece averages a little over
 * four characters per token, the space included) plus [CLS] and [SEP]s. Only cost estimates use it.
 */
export class TokenEstimate {
  rows = 0;
  private chars = 0;
  private a: number | undefined;
  private b: number | undefined;
  private task: GlueTask;

  constructor(task: GlueTask) {
    this.task = task;
    if (!task.header) {
      this.a = Number(task.textA);
      this.b = task.textB === undefined ? undefined : Number(task.textB);
    }
  }

  add(line: string): void {
    const text = line.replace(/^\uFEFF/, "").replace(/\r$/, "");
    if (text === "") return;
    const cols = text.split("\t");
    if (this.a === undefined) {
      // The header row names the columns.
      this.a = cols.indexOf(String(this.task.textA));
      this.b = this.task.textB === undefined ? undefined : cols.indexOf(String(this.task.textB));
      return;
    }
    this.rows++;
    this.chars += (cols[this.a] ?? "").length + (this.b === undefined ? 0 : (cols[this.b] ?? "").length);
  }

  tokens(): number {
    return Math.round(this.chars / Math.max(1, this.rows) / 4.2) + (this.task.textB === undefined ? 2 : 3);
  }
}

/** Resolves the model, backend and data of a profile and hashes their identities. */
export async function studyContext(profile: Profile, opts: ContextOptions = {}): Promise<StudyContext> {
  const modelDir = resolveModelDir(profile.model);
  const model = await modelIdentity(modelDir);
  const compute = await initCompute({
    backend: opts.backend,
    gemm: opts.gemm,
    gemmThreads: STUDY_BLAS_THREADS,
  });
  const described = gemmDescription(compute.gemm);
  const glueDir = resolveGlueDir(opts.glueDir);
  const data: StudyContext["data"] = {};
  for (const name of profile.tasks) {
    const task = getTask(name);
    const folder = join(glueDir, task.folder);
    data[name] = {
      train: await dataFile(join(folder, task.train), task),
      dev: await dataFile(join(folder, task.dev[task.mainSplit]), task),
    };
  }
  return {
    profile,
    modelDir,
    model,
    backend: compute.identity,
    compute: {
      backend: compute.backend,
      gemm: compute.gemm.name,
      ...(described
        ? { openblas: { threads: described.threads, config: described.config, core: described.core } }
        : {}),
    },
    glueDir,
    data,
  };
}

const id = (f: FileIdentity) => ({ sha256: f.sha256, bytes: f.bytes });

/** Everything of a model + backend that every cell shares. */
function base(ctx: StudyContext) {
  return { model: id(ctx.model), backend: ctx.backend };
}

/**
 * What a cell describes beside its configuration (not hashed): the model's name, and for the kinds whose
 * products run on OpenBLAS (fine-tuning, Fisher) its build and core, which differ between machines.
 */
function meta(ctx: StudyContext, products = false): Record<string, unknown> {
  const openblas = products ? ctx.compute?.openblas : undefined;
  return { model: ctx.profile.model, ...(openblas ? { openblas } : {}) };
}

function taskData(ctx: StudyContext, task: TaskName) {
  const d = ctx.data[task];
  if (!d) throw new Error(`task ${task} is not in profile ${ctx.profile.name}`);
  return d;
}

export interface MaskSpec {
  method: "fisher" | "random" | "union";
  pct: number;
  /** Random masks' seed. */
  seed?: number;
  /** Union masks: the tasks whose masks are joined. */
  tasks?: TaskName[];
}

/** Cost units of starting a fine-tuning cell: loading the model, reading and tokenizing the data (~1.5 s). */
export const CELL_OVERHEAD = 50;

/**
 * Cost units of a fine-tuning, a unit being about one bert-tiny training step of 32 short sentences (~33 ms
 * on one core): a step costs a fixed part plus a part per token (measured on bert-tiny with the wasm
 * backend: ~33 ms + 0.14 ms per token, so 1 + tokens / 256 units), evaluation (forward only, ~1/3 of a
 * training step's work per token) adds its tokens / 768 per epoch, and each cell `CELL_OVERHEAD`.
 */
export function trainingCost(
  t: { maxLen: number; batchSize: number; epochs: number },
  train: { examples: number; tokens: number },
  dev: { examples: number; tokens: number },
): number {
  const steps = Math.ceil(train.examples / t.batchSize);
  const trainTokens = train.examples * Math.min(train.tokens, t.maxLen);
  const devTokens = dev.examples * Math.min(dev.tokens, t.maxLen);
  return Math.round(CELL_OVERHEAD + t.epochs * (steps + trainTokens / 256 + devTokens / 768));
}

/**
 * The cost class of a fine-tuning mode: full fine-tuning; the sparse encoder methods (BitFit, LayerNorm);
 * the head controls (no backward pass through the encoder); masks. They differ per step (measured on the
 * cpu profile's records: full 91 ms per unit, BitFit/LayerNorm 46, masks 25), so one rate per class keeps
 * estimates honest.
 */
export function finetuneCostClass(mode: string): string {
  return mode === "full"
    ? "finetune/full"
    : mode === "mask"
    ? "finetune/mask"
    : mode === "head" || mode === "head-pooler"
    ? "finetune/head"
    : "finetune/sparse";
}

/**
 * The cost class of a finished cell's record, from its configuration (records written before the classes
 * were split hold "finetune/sparse" for masks too), for learning rates from the store.
 */
export function recordCostClass(
  rec: { kind: string; config: Record<string, unknown>; costClass?: string },
): string {
  return rec.kind === "finetune" ? finetuneCostClass(String(rec.config.mode)) : rec.costClass ?? rec.kind;
}

export interface FinetuneOptions {
  /** Mode `mask`: the mask's spec and its cell (a dependency). */
  mask?: { spec: MaskSpec; cell: Cell };
  /** `"random"` (a control) starts from random weights; in the config only then, so other ids stay. */
  init?: "pretrained" | "random";
}

/** A fine-tuning cell: a main mode or control at one of its class's rates, or mode `mask` at a given rate. */
export function finetuneCell(
  ctx: StudyContext,
  task: TaskName,
  mode: TrainClass,
  seed: number,
  lr: number,
  opts: FinetuneOptions = {},
): Cell {
  const { mask, init = "pretrained" } = opts;
  if (!(lr > 0) || !Number.isFinite(lr)) {
    throw new Error(
      `finetune ${task} ${mode} seed ${seed}: learning rate must be a positive number, got ${lr}`,
    );
  }
  const t = ctx.profile.train;
  const d = taskData(ctx, task);
  const maxTrain = maxTrainFor(t, task);
  const epochs = epochsFor(t, mode);
  const nTrain = Math.min(d.train.examples, maxTrain ?? Infinity);
  const nDev = Math.min(d.dev.examples, t.maxDev ?? Infinity);
  const cost = trainingCost(
    { maxLen: t.maxLen, batchSize: t.batchSize, epochs },
    { examples: nTrain, tokens: d.train.tokens },
    { examples: nDev, tokens: d.dev.tokens },
  );
  const config = {
    version: VERSIONS.finetune,
    ...base(ctx),
    task,
    data: { train: id(d.train), dev: id(d.dev) },
    mode,
    ...(mask ? { mask: mask.spec } : {}),
    ...(init === "random" ? { init } : {}),
    seed,
    lr,
    epochs,
    batchSize: t.batchSize,
    maxLen: t.maxLen,
    maxTrain: maxTrain ?? null,
    maxDev: t.maxDev ?? null,
    warmup: t.warmup,
    weightDecay: t.weightDecay,
    clip: t.clip,
    evalBatchSize: t.evalBatchSize,
  };
  const what = mask
    ? `mask ${mask.spec.method}${mask.spec.pct}%`
    : init === "random"
    ? `${mode}-random-init`
    : mode;
  return makeCell("finetune", config, {
    deps: mask ? { mask: mask.cell } : {},
    label: `finetune ${task} ${what} lr ${rateText(lr)} seed ${seed}`,
    cost,
    costClass: finetuneCostClass(mode),
    meta: meta(ctx, true),
  });
}

/** A control of the main grid (`CONTROLS`) at rate `lr`: its mode, from the checkpoint or random init. */
export function controlCell(
  ctx: StudyContext,
  task: TaskName,
  control: ControlName,
  seed: number,
  lr: number,
): Cell {
  const { mode, init } = CONTROLS[control];
  return finetuneCell(ctx, task, mode, seed, lr, { init });
}

/** The methods of the main grid: the main modes, then the profile's controls, each with its class. */
export function mainMethods(profile: Profile): { mode: SearchClass; init: "pretrained" | "random" }[] {
  return [
    ...MAIN_MODES.map((mode) => ({ mode, init: "pretrained" as const })),
    ...profile.controls.map((c) => ({ ...CONTROLS[c] })),
  ];
}

/**
 * The main grid's runs that choose a task's rate of a class (pretrained, every rate x seed): the runs
 * whose records lib/experiments/rates.ts chooses from, and that change, topk and crosstask wait on.
 */
export function selectionCells(ctx: StudyContext, task: TaskName, cls: ChosenClass): Cell[] {
  return ctx.profile.seeds.flatMap((seed) =>
    ratesFor(ctx.profile.train, cls).map((lr) => finetuneCell(ctx, task, cls, seed, lr))
  );
}

/**
 * The rate main chose per task and class (a number), or why there is none yet (a string); a missing
 * entry means main's records were not looked at.
 */
export type ChosenRates = Partial<Record<TaskName, Partial<Record<ChosenClass, number | string>>>>;

export function fisherCell(ctx: StudyContext, task: TaskName): Cell {
  const f = ctx.profile.fisher;
  const d = taskData(ctx, task);
  const examples = Math.min(f.examples, d.train.examples);
  return makeCell("fisher", {
    version: VERSIONS.fisher,
    ...base(ctx),
    task,
    data: { train: id(d.train) },
    state: "pretrained",
    examples,
    params: f.params,
    labels: f.labels,
    seed: f.seed,
    maxLen: f.maxLen,
  }, { label: `fisher ${task} N=${examples}`, cost: examples, meta: meta(ctx, true) });
}

/** Base vs the full fine-tuning of seed `changeSeed` at rate `lr` (the full rate main chose). */
export function changeCell(ctx: StudyContext, task: TaskName, lr: number): Cell {
  const tuned = finetuneCell(ctx, task, "full", ctx.profile.changeSeed, lr);
  return makeCell("change", { version: VERSIONS.change, ...base(ctx), task }, {
    deps: { tuned },
    label: `change ${task} (full, lr ${rateText(lr)}, seed ${ctx.profile.changeSeed})`,
    meta: meta(ctx),
  });
}

export function topMaskCell(ctx: StudyContext, task: TaskName, pct: number): Cell {
  return makeCell("mask", { version: VERSIONS.mask, method: "fisher", task, pct, per: ctx.profile.maskPer }, {
    deps: { fisher: fisherCell(ctx, task) },
    label: `mask ${task} fisher top ${pct}%`,
  });
}

/** A random LayerNorm mask of the same size as a top-k% one; it depends only on the model's shapes. */
export function randomMaskCell(ctx: StudyContext, pct: number, seed: number): Cell {
  return makeCell("mask", {
    version: VERSIONS.mask,
    method: "random",
    model: id(ctx.model),
    pct,
    seed,
    per: ctx.profile.maskPer,
  }, { label: `mask random ${pct}% seed ${seed}`, meta: meta(ctx) });
}

/** The union of the top-k% masks of every task but `heldOut`. */
export function unionMaskCell(ctx: StudyContext, heldOut: TaskName, pct: number): Cell {
  const others = ctx.profile.tasks.filter((t) => t !== heldOut);
  if (others.length === 0) {
    throw new Error(`cross-task masks need at least two tasks (profile ${ctx.profile.name})`);
  }
  const deps = Object.fromEntries(others.map((t) => [`mask:${t}`, topMaskCell(ctx, t, pct)]));
  return makeCell("mask", {
    version: VERSIONS.mask,
    method: "union",
    heldOut,
    tasks: others,
    pct,
    per: ctx.profile.maskPer,
  }, { deps, label: `mask union ${pct}% without ${heldOut}` });
}

/** A masked fine-tuning by method, at rate `lr` (the LayerNorm rate main chose). */
export function maskedCell(
  ctx: StudyContext,
  task: TaskName,
  spec: MaskSpec,
  seed: number,
  lr: number,
): Cell {
  const cell = spec.method === "fisher"
    ? topMaskCell(ctx, task, spec.pct)
    : spec.method === "random"
    ? randomMaskCell(ctx, spec.pct, spec.seed ?? seed)
    : unionMaskCell(ctx, task, spec.pct);
  const full: MaskSpec = spec.method === "random"
    ? { ...spec, seed: spec.seed ?? seed }
    : spec.method === "union"
    ? { ...spec, tasks: ctx.profile.tasks.filter((t) => t !== task) }
    : spec;
  return finetuneCell(ctx, task, "mask", seed, lr, { mask: { spec: full, cell } });
}

/**
 * Cells that train at a rate main chooses, in the given order: declared where `chosen` has the task's
 * rate, else stand-ins (at the class's first rate, for costs only) gathered per task with the reason.
 */
function atChosen(
  ctx: StudyContext,
  chosen: ChosenRates,
  cls: ChosenClass,
  slots: { task: TaskName; make: (lr: number) => Cell }[],
): { cells: Cell[]; waiting: Waiting[] } {
  const cells: Cell[] = [];
  const waiting = new Map<TaskName, Waiting>();
  for (const { task, make } of slots) {
    const lr = chosen[task]?.[cls];
    if (typeof lr === "number") {
      cells.push(make(lr));
      continue;
    }
    const w = waiting.get(task) ??
      {
        reason: `${task}: ${lr ?? "main's records not read"} (its ${cls} rate is not chosen yet)`,
        standIns: [],
      };
    w.standIns.push(make(ratesFor(ctx.profile.train, cls)[0]));
    waiting.set(task, w);
  }
  return { cells, waiting: [...waiting.values()] };
}

/**
 * The study's grids for a profile, in run order; change, topk and crosstask declare the cells whose rate
 * `chosen` holds (lib/experiments/session.ts reads it from main's records) and list the others as waiting.
 */
export function studyGrids(ctx: StudyContext, chosen: ChosenRates = {}): Grid[] {
  const p = ctx.profile;
  const perTask = <T>(f: (task: TaskName) => T[]) => p.tasks.flatMap(f);
  const k = p.crossTaskK;
  const methods = mainMethods(p);
  const rates = (cls: SearchClass) => ratesFor(p.train, cls).map(rateText).join(", ");
  return [
    {
      name: "fisher",
      about: "Fisher information of every parameter, pretrained model with a fresh head (notebooks 2, 6)",
      cells: perTask((task) => [fisherCell(ctx, task)]),
    },
    {
      name: "main",
      about: `${methods.length} methods (${[...MAIN_MODES, ...p.controls].join(", ")}) at every rate of ` +
        `their class (full {${rates("full")}}, sparse {${rates("layernorm")}}) x ${p.seeds.length} ` +
        "seed(s) (notebook 3)",
      // Seed-major: a run stopped part-way covers every task, method and rate with the first seeds.
      cells: p.seeds.flatMap((seed) =>
        perTask((task) =>
          methods.flatMap((m) =>
            ratesFor(p.train, m.mode).map((lr) => finetuneCell(ctx, task, m.mode, seed, lr, { init: m.init }))
          )
        )
      ),
    },
    {
      name: "change",
      about: `parameter change per component, base vs full fine-tuning (seed ${p.changeSeed}, the chosen ` +
        "full rate) (notebook 1)",
      ...atChosen(
        ctx,
        chosen,
        "full",
        p.tasks.map((task) => ({ task, make: (lr) => changeCell(ctx, task, lr) })),
      ),
    },
    {
      name: "topk",
      about:
        `top-k% LayerNorm by Fisher vs random, k in {${p.topk.join(", ")}}, at the chosen LayerNorm rate ` +
        "(notebook 4)",
      // Seed-major order: a run stopped part-way still covers every task and k with the first seeds.
      ...atChosen(
        ctx,
        chosen,
        "layernorm",
        p.seeds.flatMap((seed) =>
          p.topk.flatMap((pct) =>
            perTask((task) =>
              (["fisher", "random"] as const).map((method) => ({
                task,
                make: (lr: number) => maskedCell(ctx, task, { method, pct }, seed, lr),
              }))
            )
          )
        ),
      ),
    },
    {
      name: "crosstask",
      about: `union of the other tasks' top-${k}% masks vs own vs random, at the chosen LayerNorm rate ` +
        "(notebook 5)",
      ...atChosen(
        ctx,
        chosen,
        "layernorm",
        p.seeds.flatMap((seed) =>
          perTask((task) =>
            (["union", "fisher", "random"] as const).map((method) => ({
              task,
              make: (lr: number) => maskedCell(ctx, task, { method, pct: k }, seed, lr),
            }))
          )
        ),
      ),
    },
  ];
}

/** One grid by name, or an error listing the names. */
export function findGrid(grids: readonly Grid[], name: string): Grid {
  const g = grids.find((x) => x.name === name);
  if (!g) {
    throw new Error(`unknown grid "${name}"; the study's grids are ${grids.map((x) => x.name).join(", ")}`);
  }
  return g;
}
