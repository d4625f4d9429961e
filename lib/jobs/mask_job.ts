/**
 * The mask operation: a mask file (lib/tuning/mask_file.ts format) of LayerNorm elements, selected by one
 * of the rules in lib/analysis/mask_selection.ts:
 * - `fisher`: the top `pct`% of one Fisher map;
 * - `random`: as many elements per ranking group, drawn with `seed` (shapes from a Fisher map or given);
 * - `union` / `intersect`: of the Fisher maps' top-`pct`% masks (`trim` cuts the union back to exactly
 *   k% by summed normalised Fisher), or the union of existing mask files (the study's cross-task masks).
 *
 * `normtune mask` and the study's `mask` cells run it. The file's metadata holds the caller's `record`,
 * the counts and where the selected elements sit (`describeMask`).
 *
 * ```ts
 * const r = await runMask({ method: "fisher", pct: 10, fisher: ["rte.safetensors"], out: "rte-top10.safetensors" });
 * r.summary.selected;
 * ```
 */
import { readSafetensors, type TensorMap } from "../bert/safetensors.ts";
import {
  combineMasks,
  describeMask,
  type MaskDescription,
  type MaskGrouping,
  maskTarget,
  randomMask,
  topMask,
  unionOfTopMasks,
} from "../analysis/mask_selection.ts";
import { readMask, writeMask } from "../tuning/mask_file.ts";

export const MASK_METHODS = ["fisher", "random", "union", "intersect"] as const;
export type MaskMethod = typeof MASK_METHODS[number];
export const MASK_GROUPINGS: readonly MaskGrouping[] = ["global", "module", "layer"];

export interface MaskConfig {
  method: MaskMethod;
  /** Percentage of the candidates, in (0, 100]. */
  pct: number;
  /** Where the ranking happens; default "global". */
  per?: MaskGrouping;
  /** The random draw's seed (method `random`). */
  seed?: number;
  /** Cut a union of Fisher top masks back to exactly k%. */
  trim?: boolean;
  /** Fisher maps, as files or loaded. */
  fisher?: (string | TensorMap)[];
  /** Mask files whose union is wanted (method `union` without Fisher maps). */
  masks?: string[];
  /** Candidate shapes (LayerNorm tensors) when no Fisher map gives them. */
  shapes?: Map<string, number[]>;
  /** The mask file to write (nothing is written without it). */
  out?: string;
  /** What the file's metadata records besides the counts (how the mask was made). */
  record?: Record<string, unknown>;
}

/** Checks a mask configuration; errors name the setting. */
export function maskConfig(c: MaskConfig): MaskConfig & { per: MaskGrouping } {
  if (!MASK_METHODS.includes(c.method)) {
    throw new Error(`mask method must be one of ${MASK_METHODS.join(", ")}, got "${c.method}"`);
  }
  if (!(c.pct > 0 && c.pct <= 100)) throw new Error(`mask percentage must be in (0, 100], got ${c.pct}`);
  const per = c.per ?? "global";
  if (!MASK_GROUPINGS.includes(per)) throw new Error(`per must be global, module or layer, got "${per}"`);
  const fishers = c.fisher?.length ?? 0, masks = c.masks?.length ?? 0;
  if (c.method === "random") {
    if (!Number.isSafeInteger(c.seed) || c.seed! < 0) throw new Error(`a random mask needs a seed >= 0`);
    if (fishers === 0 && !c.shapes) throw new Error("a random mask needs candidate shapes or a Fisher map");
  } else if (c.method === "fisher") {
    if (fishers !== 1) throw new Error(`a Fisher mask needs one Fisher map, got ${fishers}`);
  } else if ((fishers === 0) === (masks === 0)) {
    throw new Error(`a ${c.method} needs Fisher maps or mask files (one kind)`);
  } else if (masks > 0 && c.method !== "union") {
    throw new Error("mask files can only be united");
  }
  if (c.trim && !(c.method === "union" && fishers > 0)) {
    throw new Error("trimming applies to a union of Fisher maps only");
  }
  return { ...c, per };
}

export interface MaskRun {
  mask: TensorMap;
  description: MaskDescription;
  /** The record, the counts and where the elements sit: what the file's metadata holds. */
  summary: Record<string, unknown> & {
    candidates: number;
    target: number;
    selected: number;
    share: number;
  };
}

/** Runs a mask configuration: selects the elements, describes them, writes the file. */
export async function runMask(config: MaskConfig): Promise<MaskRun> {
  const c = maskConfig(config);
  const opts = { per: c.per };
  const fishers: TensorMap[] = [];
  for (const f of c.fisher ?? []) fishers.push(typeof f === "string" ? await readSafetensors(f) : f);
  let mask: TensorMap;
  if (c.method === "random") mask = randomMask(c.shapes ?? fishers[0], c.pct, c.seed!, opts);
  else if (c.method === "fisher") mask = topMask(fishers[0], c.pct, opts);
  else if (c.masks?.length) {
    const parts: TensorMap[] = [];
    for (const path of c.masks) parts.push((await readMask(path)).masks);
    mask = combineMasks(parts, "union");
  } else if (c.method === "union") mask = unionOfTopMasks(fishers, c.pct, { ...opts, trim: c.trim });
  else mask = combineMasks(fishers.map((f) => topMask(f, c.pct, opts)), "intersect");

  const { candidates, target } = maskTarget(c.shapes ?? fishers[0], c.pct, opts);
  const d = describeMask(mask);
  const summary = {
    ...c.record,
    candidates,
    target,
    selected: d.selected,
    share: candidates ? d.selected / candidates : 0,
    byLayer: d.byLayer,
    byKind: d.byKind,
    byLnType: d.byLnType,
    byComponent: d.byComponent,
  };
  if (c.out) await writeMask(c.out, mask, summary);
  return { mask, description: d, summary };
}
