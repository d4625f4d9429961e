/**
 * Mask selection from Fisher scores: which LayerNorm elements to train. File I/O is lib/tuning/mask_file.ts
 * (one F32 0/1 tensor per selected parameter, HF names, absent = frozen); this module only decides.
 *
 * - `topMask`: the top-k% of candidate elements (LayerNorm γ/β by default) by Fisher, ranked globally,
 *   per module (each LayerNorm tensor keeps its own top-k%), or per layer (the embeddings LayerNorm
 *   counts as its own layer). k elements = round(pct/100 · candidates) per ranking group.
 * - `randomMask`: the same number of elements per group, drawn uniformly with a seeded RNG (the baseline).
 * - `combineMasks`: union or intersection across tasks.
 * - `crossTaskMask`: leave-one-task-out, the union of the other tasks' top-k% masks. The union is larger
 *   than k% (tasks disagree); `trim: true` re-trims it to exactly the k% count, keeping the union's
 *   elements with the largest summed normalised Fisher Σ_t F_t / ΣF_t (each task's scores divided by their
 *   total over the candidates, so no task dominates by scale).
 * - `describeMask`: counts per layer, per γ/β and per LayerNorm type (the paper's Finding 6).
 *
 * Ties are broken deterministically: equal scores go to the parameter that comes first in names.ts order
 * (then lower flat index), so the same Fisher file always gives the same mask.
 *
 * ```ts
 * const mask = topMask(fisher, 10);              // top 10% of LayerNorm elements
 * describeMask(mask).byLnType;                   // { embeddings: .., attention: .., output: .. }
 * ```
 */
import { isLayerNorm } from "../bert/names.ts";
import type { TensorMap } from "../bert/safetensors.ts";
import { mulberry32 } from "../util/random.ts";
import { compareComponents, componentOf, layerNormType } from "./components.ts";

export type MaskGrouping = "global" | "module" | "layer";

export interface SelectOptions {
  /** Where the ranking happens (default "global"). */
  per?: MaskGrouping;
  /** Which parameters are candidates (default LayerNorm γ/β). */
  candidates?: (name: string) => boolean;
}

/** Candidate tensor names of `scores` in names.ts order (the tie-break order). */
function candidateNames(scores: TensorMap, select: (name: string) => boolean): string[] {
  const names = [...scores.keys()].filter(select);
  if (names.length === 0) {
    throw new Error(
      "no candidate parameters in the Fisher scores (expected LayerNorm tensors such as " +
        "bert.encoder.layer.0.output.LayerNorm.weight); was the Fisher computed with --params all|layernorm?",
    );
  }
  return names.sort((a, b) => compareComponents(componentOf(a), componentOf(b)));
}

function groupOf(name: string, per: MaskGrouping): string {
  if (per === "module") return name;
  if (per === "layer") return String(componentOf(name).layer ?? "embeddings");
  return "all";
}

/** Candidates grouped for ranking, each group a list of names in tie-break order. */
function groups(scores: TensorMap, opts: SelectOptions): Map<string, string[]> {
  const per = opts.per ?? "global";
  const out = new Map<string, string[]>();
  for (const name of candidateNames(scores, opts.candidates ?? isLayerNorm)) {
    const g = groupOf(name, per);
    out.set(g, [...(out.get(g) ?? []), name]);
  }
  return out;
}

/** The number of elements k% of `total` keeps. */
export function countForPct(total: number, pct: number): number {
  if (!(pct >= 0 && pct <= 100)) throw new Error(`percentage must be in [0, 100], got ${pct}`);
  return Math.round((pct / 100) * total);
}

/** An all-zero mask shaped like `names` of `scores`. */
function emptyMask(scores: TensorMap, names: string[]): TensorMap {
  return new Map(
    names.map((
      n,
    ) => [n, { shape: [...scores.get(n)!.shape], data: new Float32Array(scores.get(n)!.data.length) }]),
  );
}

/** Drops tensors with no selected element (absent = frozen in the mask file format). */
function prune(mask: TensorMap): TensorMap {
  return new Map([...mask].filter(([, t]) => t.data.some((v) => v !== 0)));
}

/** Sets the `k` highest-scoring elements of `names` to 1 in `mask` (ties: earlier name, lower index). */
function selectTop(scores: TensorMap, names: string[], k: number, mask: TensorMap): void {
  const refs: { t: number; i: number; v: number }[] = [];
  names.forEach((name, t) => {
    const d = scores.get(name)!.data;
    for (let i = 0; i < d.length; i++) {
      if (Number.isNaN(d[i])) throw new Error(`Fisher score of "${name}" at flat index ${i} is NaN`);
      refs.push({ t, i, v: d[i] });
    }
  });
  refs.sort((a, b) => b.v - a.v || a.t - b.t || a.i - b.i);
  for (let j = 0; j < k; j++) mask.get(names[refs[j].t])!.data[refs[j].i] = 1;
}

/** Top-k% of the candidate elements by score. The result holds only tensors with a selected element. */
export function topMask(scores: TensorMap, pct: number, opts: SelectOptions = {}): TensorMap {
  const gs = groups(scores, opts);
  const mask = emptyMask(scores, [...gs.values()].flat());
  for (const names of gs.values()) {
    const total = names.reduce((s, n) => s + scores.get(n)!.data.length, 0);
    selectTop(scores, names, countForPct(total, pct), mask);
  }
  return prune(mask);
}

/**
 * A random mask with as many elements per ranking group as `topMask` would select, drawn with a seeded
 * partial Fisher-Yates shuffle. `shapes` gives the candidates (a Fisher map or a parameter-shape map).
 */
export function randomMask(
  shapes: TensorMap | Map<string, number[]>,
  pct: number,
  seed: number,
  opts: SelectOptions = {},
): TensorMap {
  const scores: TensorMap = new Map();
  for (const [name, v] of shapes) {
    const shape = Array.isArray(v) ? v : v.shape;
    scores.set(name, { shape, data: new Float32Array(shape.reduce((a, b) => a * b, 1)) });
  }
  const gs = groups(scores, opts);
  const mask = emptyMask(scores, [...gs.values()].flat());
  const rng = mulberry32(seed);
  for (const names of gs.values()) {
    const refs: [string, number][] = [];
    for (const name of names) for (let i = 0; i < scores.get(name)!.data.length; i++) refs.push([name, i]);
    const k = countForPct(refs.length, pct);
    for (let j = 0; j < k; j++) {
      const r = j + Math.floor(rng() * (refs.length - j));
      [refs[j], refs[r]] = [refs[r], refs[j]];
      mask.get(refs[j][0])!.data[refs[j][1]] = 1;
    }
  }
  return prune(mask);
}

/** Element-wise union or intersection of masks (a tensor absent from a mask counts as all zeros). */
export function combineMasks(masks: readonly TensorMap[], how: "union" | "intersect"): TensorMap {
  if (masks.length === 0) throw new Error("combineMasks needs at least one mask");
  const names = new Set(masks.flatMap((m) => [...m.keys()]));
  const out: TensorMap = new Map();
  for (const name of names) {
    const present = masks.map((m) => m.get(name));
    const first = present.find((t) => t)!;
    for (const t of present) {
      if (t && (t.shape.length !== first.shape.length || t.shape.some((d, i) => d !== first.shape[i]))) {
        throw new Error(
          `mask tensor "${name}" has shapes [${first.shape}] and [${t.shape}] in different masks`,
        );
      }
    }
    const data = new Float32Array(first.data.length);
    for (let i = 0; i < data.length; i++) {
      const ones = present.reduce((c, t) => c + (t && t.data[i] !== 0 ? 1 : 0), 0);
      data[i] = how === "union" ? (ones > 0 ? 1 : 0) : (ones === masks.length ? 1 : 0);
    }
    out.set(name, { shape: [...first.shape], data });
  }
  return prune(out);
}

/** Each task's candidate scores divided by their total, summed over tasks. */
export function summedNormalisedFisher(fishers: readonly TensorMap[], opts: SelectOptions = {}): TensorMap {
  const select = opts.candidates ?? isLayerNorm;
  const out: TensorMap = new Map();
  for (const f of fishers) {
    let total = 0;
    for (const [name, t] of f) if (select(name)) { for (const v of t.data) total += v; }
    if (!(total > 0)) throw new Error("a Fisher map sums to zero over the candidates: cannot normalise it");
    for (const [name, t] of f) {
      if (!select(name)) continue;
      const o = out.get(name) ?? { shape: [...t.shape], data: new Float32Array(t.data.length) };
      for (let i = 0; i < t.data.length; i++) o.data[i] += t.data[i] / total;
      out.set(name, o);
    }
  }
  return out;
}

export interface CrossTaskResult {
  mask: TensorMap;
  /** Selected elements. */
  size: number;
  /** Candidate elements (the k% base). */
  candidates: number;
  /** What k% of the candidates is: the size of one task's mask (and of the trimmed union). */
  target: number;
  /** The tasks whose masks were combined. */
  tasks: string[];
}

/**
 * How many candidate elements `shapes` holds and how many a top-`pct`% selection keeps: k% of each
 * ranking group, summed (what `topMask` and `randomMask` select).
 */
export function maskTarget(
  shapes: TensorMap | Map<string, number[]>,
  pct: number,
  opts: SelectOptions = {},
): { candidates: number; target: number } {
  const sizes: TensorMap = new Map();
  for (const [name, v] of shapes) {
    const shape = Array.isArray(v) ? v : v.shape;
    sizes.set(name, { shape, data: new Float32Array(0) });
  }
  let candidates = 0, target = 0;
  for (const names of groups(sizes, opts).values()) {
    const total = names.reduce((s, n) => s + sizes.get(n)!.shape.reduce((a, b) => a * b, 1), 0);
    candidates += total;
    target += countForPct(total, pct);
  }
  return { candidates, target };
}

/**
 * The union of each Fisher map's top-`pct`% mask. With `trim: true` the union is cut back to exactly the
 * k% count by summed normalised Fisher (elements outside the union score -1, below every normalised
 * Fisher), ranked within the same groups as `per` (ties as in `topMask`).
 */
export function unionOfTopMasks(
  fishers: readonly TensorMap[],
  pct: number,
  opts: SelectOptions & { trim?: boolean } = {},
): TensorMap {
  const union = combineMasks(fishers.map((f) => topMask(f, pct, opts)), "union");
  if (!opts.trim) return union;
  const summed = summedNormalisedFisher(fishers, opts);
  for (const [name, t] of summed) {
    const m = union.get(name);
    for (let i = 0; i < t.data.length; i++) if (!m || m.data[i] === 0) t.data[i] = -1;
  }
  return topMask(summed, pct, opts);
}

/**
 * Leave-one-task-out: the union of the top-`pct`% masks of every task except `heldOut`, optionally
 * trimmed to exactly k% (`unionOfTopMasks`).
 */
export function crossTaskMask(
  fishers: Map<string, TensorMap>,
  heldOut: string,
  pct: number,
  opts: SelectOptions & { trim?: boolean } = {},
): CrossTaskResult {
  if (!fishers.has(heldOut)) {
    throw new Error(`held-out task "${heldOut}" has no Fisher map (have: ${[...fishers.keys()].join(", ")})`);
  }
  const tasks = [...fishers.keys()].filter((t) => t !== heldOut);
  if (tasks.length === 0) throw new Error("crossTaskMask needs Fisher maps of at least one other task");
  const others = tasks.map((t) => fishers.get(t)!);
  const mask = unionOfTopMasks(others, pct, opts);
  let size = 0;
  for (const t of mask.values()) for (const v of t.data) size += v;
  return { mask, size, ...maskTarget(others[0], pct, opts), tasks };
}

export interface MaskDescription {
  /** Selected elements. */
  selected: number;
  /** Elements of the tensors present in the mask. */
  elementsInTensors: number;
  /** Selected per encoder layer ("embeddings" / "pooler" / "classifier" for the rest). */
  byLayer: Record<string, number>;
  /** γ (weight) vs β (bias). */
  byKind: { weight: number; bias: number };
  /** Per LayerNorm type (non-LayerNorm tensors count under "other"). */
  byLnType: { embeddings: number; attention: number; output: number; other: number };
  /** Per component name. */
  byComponent: Record<string, number>;
  /** Per tensor: selected of size, in names.ts order. */
  byTensor: { name: string; selected: number; size: number }[];
}

/** Where a mask's selected elements sit. */
export function describeMask(mask: TensorMap): MaskDescription {
  const d: MaskDescription = {
    selected: 0,
    elementsInTensors: 0,
    byLayer: {},
    byKind: { weight: 0, bias: 0 },
    byLnType: { embeddings: 0, attention: 0, output: 0, other: 0 },
    byComponent: {},
    byTensor: [],
  };
  const names = [...mask.keys()].sort((a, b) => compareComponents(componentOf(a), componentOf(b)));
  for (const name of names) {
    const t = mask.get(name)!;
    const info = componentOf(name);
    let ones = 0;
    for (const v of t.data) if (v !== 0) ones++;
    d.selected += ones;
    d.elementsInTensors += t.data.length;
    const layer = info.layer !== null
      ? String(info.layer)
      : info.component === "pooler" || info.component === "classifier"
      ? info.component
      : "embeddings";
    d.byLayer[layer] = (d.byLayer[layer] ?? 0) + ones;
    d.byKind[info.kind] += ones;
    d.byLnType[layerNormType(info.component) ?? "other"] += ones;
    d.byComponent[info.component] = (d.byComponent[info.component] ?? 0) + ones;
    d.byTensor.push({ name, selected: ones, size: t.data.length });
  }
  return d;
}
