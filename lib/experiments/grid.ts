/**
 * Cells and grids. A cell is one run (a fine-tuning, a Fisher computation, a mask, a change table) with a
 * `kind` and the full configuration that determines its result; its id is the hash of that configuration
 * together with the ids of the cells it depends on, so a dependant's id changes whenever anything upstream
 * does. A grid is a named list of cells declared in code (lib/experiments/study.ts); its dependencies are
 * found through the cells, not listed.
 *
 * ```ts
 * const fisher = makeCell("fisher", { task: "RTE", examples: 256 });
 * const mask = makeCell("mask", { task: "RTE", k: 10 }, { deps: { fisher } });
 * mask.config.deps; // undefined: dependency ids live in `depIds`, hashed beside the config
 * closure([mask]).map((c) => c.kind); // ["fisher", "mask"]
 * ```
 */
import { hashId } from "./hash.ts";

export type CellConfig = Record<string, unknown>;

export interface Cell {
  /** `ID_LENGTH` hex characters: hash of `{kind, config, deps: depIds}`. */
  id: string;
  kind: string;
  /** Everything that determines the result (model and data identity, backend, hyperparameters, version). */
  config: CellConfig;
  /** Role -> the cell this one reads (its result record and artefacts). */
  deps: Record<string, Cell>;
  /** Role -> dependency id: what is hashed and what the result record stores. */
  depIds: Record<string, string>;
  /** A short human name for progress lines and listings, e.g. "finetune RTE layernorm seed 1". */
  label: string;
  /** Estimated work in the kind's units (training steps, Fisher examples), for cost estimates and the ETA. */
  cost: number;
  /** Cells of one class share a time per cost unit (e.g. "finetune/full"); default the kind. */
  costClass: string;
  /** Descriptive, not hashed: what a reader wants beside the config (model name, ...). */
  meta: Record<string, unknown>;
}

export interface CellOptions {
  deps?: Record<string, Cell>;
  label?: string;
  cost?: number;
  costClass?: string;
  meta?: Record<string, unknown>;
}

export function makeCell(kind: string, config: CellConfig, opts: CellOptions = {}): Cell {
  const deps = opts.deps ?? {};
  const depIds = Object.fromEntries(Object.entries(deps).map(([role, cell]) => [role, cell.id]));
  return {
    id: hashId({ kind, config, deps: depIds }),
    kind,
    config,
    deps,
    depIds,
    label: opts.label ?? kind,
    cost: opts.cost ?? 1,
    costClass: opts.costClass ?? kind,
    meta: opts.meta ?? {},
  };
}

export interface Grid {
  name: string;
  about: string;
  /** The grid's own cells, in the order `run-cell --index` numbers them (dependencies not included). */
  cells: Cell[];
  /**
   * Cells that cannot be declared yet, because part of their configuration comes from another grid's
   * results (topk trains at the LayerNorm rate main chose); empty when every cell is declared.
   */
  waiting?: Waiting[];
}

/** Cells a grid cannot declare yet, and why. */
export interface Waiting {
  /** What they wait on, e.g. "CoLA: main has 3 of 6 layernorm runs". */
  reason: string;
  /**
   * Cells of the same cost with a placeholder for what is not known yet: for cost estimates and counts
   * only, never to be run.
   */
  standIns: Cell[];
}

/** How many cells a grid will have once declared: its cells and those still waiting. */
export function gridSize(grid: Grid): number {
  return grid.cells.length + (grid.waiting ?? []).reduce((a, w) => a + w.standIns.length, 0);
}

/** One line on what a grid's waiting cells wait on, or undefined when none wait. */
export function waitingText(grid: Grid): string | undefined {
  const waiting = grid.waiting ?? [];
  if (waiting.length === 0) return undefined;
  const n = gridSize(grid) - grid.cells.length;
  return `grid ${grid.name}: ${n} of ${gridSize(grid)} cells wait on other grids' results and are not ` +
    `declared yet (${waiting.map((w) => w.reason).join("; ")})`;
}

/**
 * The cells and everything they depend on, each once (by id), every dependency before its dependants,
 * otherwise in the given order. Ids hash their dependencies' ids, so a cycle cannot be built; one is
 * still reported rather than looped on.
 */
export function closure(cells: readonly Cell[]): Cell[] {
  const out: Cell[] = [];
  const state = new Map<string, "visiting" | "done">();
  const visit = (cell: Cell, path: string[]) => {
    const s = state.get(cell.id);
    if (s === "done") return;
    if (s === "visiting") throw new Error(`dependency cycle: ${[...path, cell.label].join(" -> ")}`);
    state.set(cell.id, "visiting");
    for (const dep of Object.values(cell.deps)) visit(dep, [...path, cell.label]);
    state.set(cell.id, "done");
    out.push(cell);
  };
  for (const cell of cells) visit(cell, []);
  return out;
}

/** The cells of several grids, deduplicated by id, first occurrence kept. */
export function uniqueCells(cells: readonly Cell[]): Cell[] {
  const seen = new Set<string>();
  return cells.filter((c) => !seen.has(c.id) && seen.add(c.id));
}
