/**
 * How much fine-tuning moved each component: mean |θ_tuned - θ_0| per parameter element, for every
 * component x layer x kind, and relative to the pretrained magnitude (mean |Δ| / mean |θ_0|). The paper's
 * Finding 1 is that the output LayerNorm changes most; `rankComponents` gives that ranking.
 *
 * ```ts
 * const records = computeChange(pretrained, tuned);
 * rankComponents(records); // [{ component: "output_layernorm", meanAbsChange: ..., ... }, ...]
 * ```
 */
import type { TensorMap } from "../bert/safetensors.ts";
import {
  compareComponents,
  type Component,
  type ComponentGroup,
  componentGroup,
  type ComponentInfo,
  componentKey,
  componentOf,
  type Kind,
} from "./components.ts";

export interface ChangeRecord extends ComponentInfo {
  /** Number of parameter elements. */
  n: number;
  meanAbsChange: number;
  meanAbsBase: number;
  /** meanAbsChange / meanAbsBase; null when the base is all zeros or absent. */
  relativeChange: number | null;
  /** True when the base had no such tensor (a freshly added head): the change is measured from zero. */
  baseMissing?: boolean;
}

/**
 * One record per component x layer x kind, in names.ts order. Every tensor of `tuned` must have a
 * taxonomy name; `base` may hold more (an MLM head) and may lack the classifier or pooler (created fresh:
 * counted from zero, flagged `baseMissing`). Any other missing tensor or shape mismatch is an error.
 */
export function computeChange(base: TensorMap, tuned: TensorMap): ChangeRecord[] {
  const acc = new Map<
    string,
    { info: ComponentInfo; n: number; change: number; base: number; missing: boolean }
  >();
  for (const [name, t] of tuned) {
    const info = componentOf(name);
    const b = base.get(name);
    // Only the head and the pooler can be created fresh by loadCheckpoint; any other gap is a mismatch.
    if (!b && info.component !== "classifier" && info.component !== "pooler") {
      throw new Error(`parameter "${name}" is in the fine-tuned model but not in the base checkpoint`);
    }
    if (b && (b.shape.length !== t.shape.length || b.shape.some((d, i) => d !== t.shape[i]))) {
      throw new Error(
        `parameter "${name}": base shape [${b.shape}] differs from fine-tuned shape [${t.shape}]`,
      );
    }
    // Sums in float64: millions of small terms lose precision in float32.
    let change = 0, abs = 0;
    const td = t.data, bd = b?.data;
    for (let i = 0; i < td.length; i++) {
      const b0 = bd ? bd[i] : 0;
      change += Math.abs(td[i] - b0);
      abs += Math.abs(b0);
    }
    const key = componentKey(info);
    const a = acc.get(key) ?? { info, n: 0, change: 0, base: 0, missing: false };
    a.n += td.length;
    a.change += change;
    a.base += abs;
    a.missing ||= !b;
    acc.set(key, a);
  }
  return [...acc.values()]
    .sort((x, y) => compareComponents(x.info, y.info))
    .map(({ info, n, change, base: abs, missing }) => ({
      ...info,
      n,
      meanAbsChange: n ? change / n : 0,
      meanAbsBase: n ? abs / n : 0,
      relativeChange: abs > 0 ? change / abs : null,
      ...(missing ? { baseMissing: true } : {}),
    }));
}

export interface RankOptions {
  /** Aggregate per component (default), per component and kind, or per coarse group. */
  by?: "component" | "component+kind" | "group";
  /** Sort key (default meanAbsChange). */
  sortBy?: "meanAbsChange" | "relativeChange";
  /** Components left out (default the classifier: it is trained from scratch, so its change means nothing). */
  exclude?: Component[];
}

export interface ChangeRank {
  /** The component, or the group name when `by: "group"`. */
  component: Component | ComponentGroup;
  group: ComponentGroup;
  kind: Kind | "all";
  n: number;
  meanAbsChange: number;
  meanAbsBase: number;
  relativeChange: number | null;
}

/**
 * Aggregates records over layers (n-weighted: total |Δ| / total n) and sorts descending, ties by name.
 * Records flagged `baseMissing` are left out: a change from zero is not comparable.
 */
export function rankComponents(records: readonly ChangeRecord[], opts: RankOptions = {}): ChangeRank[] {
  const by = opts.by ?? "component", sortBy = opts.sortBy ?? "meanAbsChange";
  const exclude = new Set<Component>(opts.exclude ?? ["classifier"]);
  const acc = new Map<string, ChangeRank & { change: number; base: number }>();
  for (const r of records) {
    if (exclude.has(r.component) || r.baseMissing) continue;
    const group = componentGroup(r.component);
    const component = by === "group" ? group : r.component;
    const kind = by === "component+kind" ? r.kind : "all";
    const key = `${component}|${kind}`;
    const a = acc.get(key) ??
      {
        component,
        group,
        kind,
        n: 0,
        change: 0,
        base: 0,
        meanAbsChange: 0,
        meanAbsBase: 0,
        relativeChange: null,
      };
    a.n += r.n;
    a.change += r.meanAbsChange * r.n;
    a.base += r.meanAbsBase * r.n;
    acc.set(key, a);
  }
  const out: ChangeRank[] = [...acc.values()].map(({ component, group, kind, n, change, base }) => ({
    component,
    group,
    kind,
    n,
    meanAbsChange: n ? change / n : 0,
    meanAbsBase: n ? base / n : 0,
    relativeChange: base > 0 ? change / base : null,
  }));
  const val = (r: ChangeRank) => r[sortBy] ?? -Infinity;
  return out.sort((a, b) =>
    val(b) - val(a) || a.component.localeCompare(b.component) || a.kind.localeCompare(b.kind)
  );
}
