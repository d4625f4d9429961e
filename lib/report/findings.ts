/**
 * The six findings of ValizadehAslani & Liang (arXiv 2403.20284), each judged from our own result records
 * by a rule fixed here before any result was seen. Their titles, claims and stated rules are in
 * lib/report/finding_texts.ts; lib/report/findings_markdown.ts renders the results (RESULTS.md included).
 *
 * How every verdict is reached (`judge`): a finding is broken into checks, one per task (and criterion);
 * each check is primary (the claim itself) or secondary (a control, such as "better than a random mask",
 * or the parameter ratio).
 * - "supported": every check holds, on every task with data;
 * - "partly supported": not all checks hold, but at least half (`THRESHOLDS.partlyShare`) of the primary
 *   ones do;
 * - "not supported": fewer than half of the primary checks hold;
 * - "not enough data": no task has what the finding needs (the message names the grid to run).
 *
 * Learning rates: the main methods and the controls are compared at the rate chosen per task and method
 * (lib/experiments/rates.ts `chooseRates`: the best mean dev score over seeds, what BitFit reports), via
 * study_views.ts `mainScores` / `controlScores`; masked runs train at the chosen LayerNorm rate. The
 * rules below are unchanged by the search; `rateNotes` only adds notes (a best rate at the edge of the
 * rates tried, an unfinished search).
 *
 * "Close" (findings 3, 4, 5): a method's mean main dev score is at most `tol` below the reference's
 * (better counts as close: the paper's "comparable, or in some cases better"), where
 * tol = max(2 points, std over seeds of either side); 1 point = 0.01 on the 0..1 score scale.
 *
 * The rules per finding:
 * 1. Change: per task, components ranked by mean |Δθ| per element after full fine-tuning (n-weighted over
 *    layers, classifier excluded: it starts from scratch). Primary check: output LayerNorm ranks first.
 * 2. Fisher: per task, coarse groups (embeddings, LayerNorm, attention, FFN, pooler; classifier excluded)
 *    ranked by mean Fisher per element. Primary check: LayerNorm ranks first.
 * 3. LayerNorm-only: per task, primary checks LN close to full fine-tuning and LN close to BitFit.
 *    Secondary (once): trained encoder elements LN / BitFit within a factor 1.5 of 1/5, i.e. in
 *    [0.133, 0.300], counted from the runs' own trainable counts (head excluded on both sides).
 * 4. Top-k%: k = the profile's k closest to 10 within [5, 25]. Per task, primary: top-k% by Fisher close
 *    to 100% of LayerNorm (the k = 100 mask run, else the LayerNorm-only run); secondary: top-k% mean above
 *    random-k% mean.
 * 5. Cross-task: per task, primary: the union of the other tasks' top-k% masks close to the task's own
 *    top-k%; secondary: union mean above random-k% mean.
 * 6. Where: own-task top-k% masks (k as in 4). Per task, two primary checks: the densest layer (selected /
 *    candidates; embeddings count as a layer) is in the last half of the encoder layers (strictly denser
 *    than every earlier one), and more beta than gamma elements are selected (strictly).
 *
 * Control checks (`evaluateControls`; written and tested on synthetic records before any control was
 * run, like the rules above). They read the controls of the main grid (lib/experiments/profiles.ts
 * `CONTROLS`) and say whether the main methods' scores mean anything beyond them. "Beats" (`beats`): the
 * method's mean main dev score is above the control's by more than the seed spread, i.e. by more than
 * `closeTolerance` (max(2 points, std over seeds of either side)): the margin within which two methods
 * count as close, so that a method never both "beats" and is "close to" the same control.
 * C1. LayerNorm-only beats head-only: per task, primary: LayerNorm beats head-only; secondary: LayerNorm
 *     beats pooler + head (the stand-ins' pooler was never pretrained, and LayerNorm-only leaves it frozen).
 * C2. Pretraining helps full fine-tuning: per task, primary: full fine-tuning from the checkpoint beats the
 *     same from random initialisation.
 * C3. Pretraining helps LayerNorm-only: per task, primary: LayerNorm-only from the checkpoint beats the same
 *     from random initialisation.
 * Verdicts as `judge` gives them; with no control records a check is "not enough data" and says that it
 * could not be judged (no verdict is invented).
 *
 * Diverged runs (a study fine-tuning whose training diverged has a record with no score,
 * lib/experiments/cells.ts): a group with one has a NaN mean, and lib/experiments/rates.ts's rule applies
 * to it here too: it ranks below every finite group. So a diverged group is never close to, above or
 * beating anything; a finite group is close to, above and beats a diverged one. For finite means every
 * rule above is unchanged. Each finding that compares scores lists its diverged groups in a note
 * (`divergedNotes`).
 *
 * Never tune a setting to make a finding hold: change the profile, rerun, and let these rules judge.
 *
 * ```ts
 * const findings = evaluateFindings(await loadResults());
 * findings.map((f) => `${f.id}: ${f.verdict}`);
 * ```
 */
import { BERT_BASE, parseConfig } from "../bert/config.ts";
import { isBias, isLayerNorm, parameterShapes } from "../bert/names.ts";
import { elementCount } from "../util/shape.ts";
import { PROFILES } from "../experiments/profiles.ts";
import { chosenDiverged, rateText } from "../experiments/rates.ts";
import {
  changeByTask,
  closestK,
  controlScores,
  findScore,
  fisherByTask,
  gridCommand,
  mainScores,
  maskPlacement,
  maskScores,
  METHOD_LABELS,
  modelCaveat,
  modelName,
  type Placement,
  pointsText,
  rankComponentRows,
  rateNote,
  type ScoreGroup,
  type StudyData,
  tasksOf,
  topMaskPcts,
  topMasks,
} from "./study_views.ts";
import { findingTexts } from "./finding_texts.ts";
import { type Row } from "./table.ts";

export type Verdict = "supported" | "partly supported" | "not supported" | "not enough data";

/** Every threshold the rules use (see the module doc). Fixed before results; do not tune. */
export const THRESHOLDS = {
  /** "Close" margin in points (x100 of the 0..1 score), unless the seed std is larger. */
  closePoints: 2,
  /** "partly supported" needs at least this share of the primary checks. */
  partlyShare: 0.5,
  /** Finding 3: the paper's LN / BitFit parameter ratio, and the tolerated factor either way. */
  ratioTarget: 1 / 5,
  ratioFactor: 1.5,
  /** Findings 4 and 6: "k about 10%": the available k closest to 10 within [5, 25]. */
  kTarget: 10,
  kMin: 5,
  kMax: 25,
} as const;

/** The findings' titles, claims and stated rules (lib/report/finding_texts.ts). */
const FINDING_TEXT = findingTexts(THRESHOLDS);

export interface Check {
  task: string;
  what: string;
  pass: boolean;
  primary: boolean;
  /** The numbers the check compared. */
  detail: string;
  /** Cell ids the numbers came from. */
  sources: string[];
}

export interface FindingResult {
  /** The paper's finding (1..6), or a control check ("C1", ...). */
  id: number | string;
  title: string;
  /** The paper's claim, in our words. */
  claim: string;
  /** The rule applied (as in the module doc). */
  rule: string;
  verdict: Verdict;
  /** One line: how many checks held, or what data is missing and the command that fills it. */
  summary: string;
  checks: Check[];
  /** Table rows: the numbers behind the verdict, each row with its `sources` (cell ids). */
  numbers: Row[];
  /** Every cell id used. */
  sources: string[];
  /** The model's known weakness, said beside the verdict. */
  caveat: string;
  notes: string[];
}

/** The verdict from a finding's checks (see the module doc). */
export function judge(checks: readonly Check[]): Verdict {
  const primary = checks.filter((c) => c.primary);
  if (primary.length === 0) return "not enough data";
  if (checks.every((c) => c.pass)) return "supported";
  const held = primary.filter((c) => c.pass).length;
  return held / primary.length >= THRESHOLDS.partlyShare ? "partly supported" : "not supported";
}

/** The "close" margin for comparing two score groups: max(2 points, either std over seeds). */
export function closeTolerance(a: Pick<ScoreGroup, "std" | "n">, b: Pick<ScoreGroup, "std" | "n">): number {
  const s = (g: Pick<ScoreGroup, "std" | "n">) => (g.n > 1 && Number.isFinite(g.std) ? g.std : 0);
  return Math.max(THRESHOLDS.closePoints / 100, s(a), s(b));
}

/**
 * A group's mean as the rules compare it: a mean that is not finite (a diverged run) ranks below every
 * finite one (lib/experiments/rates.ts's rule). Finite means are compared as they are.
 */
function ranked(g: Pick<ScoreGroup, "mean">): number {
  return Number.isFinite(g.mean) ? g.mean : -Infinity;
}

/**
 * True when `a` is at most the tolerance below `b` (better counts as close). A diverged `a` is close to
 * nothing; a finite `a` is close to (above) a diverged `b`.
 */
export function isClose(a: ScoreGroup, b: ScoreGroup): boolean {
  if (!Number.isFinite(a.mean)) return false;
  return ranked(a) >= ranked(b) - closeTolerance(a, b) - 1e-12;
}

/** `a`'s mean above `b`'s (a diverged group ranks below every finite one, and is above nothing). */
function above(a: Pick<ScoreGroup, "mean">, b: Pick<ScoreGroup, "mean">): boolean {
  return Number.isFinite(a.mean) && ranked(a) > ranked(b);
}

const pts = (x: number) => (100 * x).toFixed(2);
const signedPts = (x: number) =>
  Number.isFinite(x) ? `${x >= 0 ? "+" : ""}${(100 * x).toFixed(2)}` : "n/a (diverged)";
const sci = (x: number) => (x === 0 ? "0" : x.toExponential(2));

function summaryOf(checks: readonly Check[], verdict: Verdict): string {
  const primary = checks.filter((c) => c.primary), secondary = checks.filter((c) => !c.primary);
  const held = (cs: readonly Check[]) => `${cs.filter((c) => c.pass).length} of ${cs.length}`;
  const parts = [`${held(primary)} primary check(s) hold`];
  if (secondary.length) parts.push(`${held(secondary)} secondary`);
  return `${verdict}: ${parts.join(", ")}.`;
}

interface Draft {
  id: number | string;
  title: string;
  claim: string;
  rule: string;
  grid: string;
  checks: Check[];
  numbers: Row[];
  notes: string[];
  /** Set when the finding lacks data (the summary then names the command). */
  missing?: string;
  /** What fills the missing data, when not the grid's command (see `finish`). */
  fill?: string;
  /** Tasks whose compared runs look uninformative (see `chanceNotes`). */
  cautions?: Set<string>;
}

/** A finding's draft with no checks, numbers or notes yet. */
function draft(head: Pick<Draft, "title" | "claim" | "rule" | "grid"> & { id: number | string }): Draft {
  return { ...head, checks: [], numbers: [], notes: [] };
}

function finish(data: StudyData, d: Draft): FindingResult {
  const verdict = d.missing ? "not enough data" : judge(d.checks);
  const sources = [
    ...new Set([
      ...d.checks.flatMap((c) => c.sources),
      ...d.numbers.flatMap((r) => String(r.sources ?? "").split(/[ ,]+/).filter(Boolean)),
    ]),
  ];
  const summary = verdict === "not enough data"
    ? `not enough data: ${d.missing ?? "no task has the results this finding needs"}; ${
      d.fill ?? `run \`${gridCommand(d.grid, data.profile)}\``
    }.`
    : summaryOf(d.checks, verdict) +
      (d.cautions?.size
        ? ` Caution: on ${[...d.cautions].join(", ")} the compared runs look uninformative (see notes).`
        : "");
  return {
    id: d.id,
    title: d.title,
    claim: d.claim,
    rule: d.rule,
    verdict,
    summary,
    checks: d.checks,
    numbers: d.numbers,
    sources,
    caveat: modelCaveat(modelName(data), data.profile),
    notes: d.notes,
  };
}

const ids = (...gs: (ScoreGroup | undefined)[]) => gs.flatMap((g) => g?.ids ?? []).join(" ");

/** Metrics whose chance level is 0 (a constant or random predictor scores about 0). */
const ZERO_CHANCE = new Set(["mcc", "pearson", "spearman"]);

/**
 * Notes (not verdict changes) for comparisons that carry no information: every compared run has the same
 * mean (typically all predict one class), or a correlation metric at or below 0 (chance).
 */
export function chanceNotes(task: string, groups: readonly (ScoreGroup | undefined)[]): string[] {
  const gs = groups.filter((g): g is ScoreGroup => !!g);
  const notes: string[] = [];
  if (gs.length > 1 && Math.max(...gs.map((g) => g.mean)) - Math.min(...gs.map((g) => g.mean)) < 1e-9) {
    notes.push(
      `${task}: every compared run scores exactly ${pts(gs[0].mean)} (likely one constant prediction): ` +
        `"close" holds trivially and says nothing.`,
    );
  }
  const low = gs.filter((g) => ZERO_CHANCE.has(g.metric) && g.mean <= 0);
  if (low.length) {
    notes.push(
      `${task}: ${low.map(groupName).join(", ")} at or below chance (${low[0].metric} <= 0).`,
    );
  }
  return notes;
}

/** "LayerNorm", "top-10%", "random-10%", "union-10%". */
function groupName(g: ScoreGroup): string {
  if (g.pct === null) return METHOD_LABELS[g.method] ?? g.method;
  return `${g.method === "fisher" ? "top" : g.method}-${g.pct}%`;
}

function caution(d: Draft, task: string, groups: readonly (ScoreGroup | undefined)[]): void {
  const notes = chanceNotes(task, groups);
  if (!notes.length) return;
  d.notes.push(...notes);
  (d.cautions ??= new Set()).add(task);
}

/**
 * Notes on the learning-rate search behind the compared groups (never a verdict change): a chosen rate at
 * the edge of the rates tried (a wider search might do better), and searches whose rates were compared on
 * fewer seeds than were run (unfinished).
 */
export function rateNotes(groups: readonly (ScoreGroup | undefined)[]): string[] {
  const gs = [...new Set(groups)].filter((g): g is ScoreGroup => !!g?.choice && g.choice.rates.length > 1);
  const name = (g: ScoreGroup) => `${groupName(g)} on ${g.task}`;
  const notes: string[] = [];
  const edge = gs.filter((g) => g.choice!.atEdge);
  if (edge.length) {
    notes.push(
      `Best learning rate at the edge of the rates tried (a wider search might do better): ${
        edge.map((g) => `${name(g)} (${rateNote(g)})`).join("; ")
      }.`,
    );
  }
  const uneven = gs.filter((g) => g.choice!.uneven);
  if (uneven.length) {
    notes.push(
      `Learning-rate search unfinished (rates compared on the seeds all have): ${
        uneven.map((g) => `${name(g)} (seeds ${g.choice!.commonSeeds.join(", ") || "none in common"})`).join(
          "; ",
        )
      }.`,
    );
  }
  return notes;
}

/**
 * A note naming the compared groups with a diverged run (no score): their mean is NaN and ranks below
 * every finite one (see the module doc), so no check is skipped for them.
 */
export function divergedNotes(groups: readonly (ScoreGroup | undefined)[]): string[] {
  const gs = [...new Set(groups)].filter((g): g is ScoreGroup => !!g && g.diverged > 0);
  if (!gs.length) return [];
  return [
    `Diverged runs (training stopped on a non-finite update; no score, ranked below every finite score): ${
      gs.map((g) =>
        `${groupName(g)} on ${g.task} at lr ${rateText(g.lr)} (${g.diverged} of ${g.n} seed${
          g.n === 1 ? "" : "s"
        }${
          g.choice && g.choice.rates.length > 1 && chosenDiverged(g.choice)
            ? `; ${chosenDiverged(g.choice)}`
            : ""
        })`
      ).join("; ")
    }.`,
  ];
}

function seedNote(groups: readonly (ScoreGroup | undefined)[]): string[] {
  const ns = groups.filter((g): g is ScoreGroup => !!g).map((g) => g.n);
  if (ns.length && Math.min(...ns) < 2) {
    return [
      "Some compared groups have a single seed: no seed spread, so 'close' is the 2-point margin alone.",
    ];
  }
  return [];
}

// ---------------------------------------------------------------------------------------------------
// Finding 1: the output LayerNorm changes most

export function finding1(data: StudyData): FindingResult {
  const d = draft({
    id: 1,
    ...FINDING_TEXT[1],
    grid: "change",
  });
  const byTask = changeByTask(data);
  if (byTask.size === 0) return finish(data, { ...d, missing: "no change records" });
  for (const [task, rec] of byTask) {
    const rows = rec.result.records;
    const ranking = rankComponentRows(rows, "meanAbsChange");
    const rank = ranking.findIndex((r) => r.name === "output_layernorm");
    const oln = ranking[rank];
    const other = ranking.find((r) => r.name !== "output_layernorm");
    // Per layer, for the numbers: in how many layers does the output LayerNorm top its own layer?
    const layers = [...new Set(rows.filter((r) => r.layer !== null).map((r) => r.layer as number))];
    const tops = layers.filter((l) =>
      rankComponentRows(
        rows.filter((r) => r.layer === l),
        "meanAbsChange",
      )[0]?.name === "output_layernorm"
    ).length;
    d.checks.push({
      task,
      what: "output LayerNorm ranks first by mean |Δθ|",
      pass: rank === 0,
      primary: true,
      detail: `first: ${ranking[0]?.name} (${sci(ranking[0]?.value ?? NaN)}); output LayerNorm rank ${
        rank + 1
      } of ${ranking.length} (${sci(oln?.value ?? NaN)})`,
      sources: [rec.id],
    });
    d.numbers.push({
      task,
      "first component": ranking[0]?.name,
      "its mean |Δθ|": sci(ranking[0]?.value ?? NaN),
      "output LN rank": rank >= 0 ? `${rank + 1} of ${ranking.length}` : "absent",
      "output LN mean |Δθ|": sci(oln?.value ?? NaN),
      "output LN / best other": other && oln ? (oln.value / other.value).toFixed(2) : "",
      "layers where output LN tops its layer": `${tops} of ${layers.length}`,
      sources: rec.id,
    });
  }
  return finish(data, d);
}

// ---------------------------------------------------------------------------------------------------
// Finding 2: LayerNorm carries the most Fisher information per parameter

export function finding2(data: StudyData): FindingResult {
  const d = draft({
    id: 2,
    ...FINDING_TEXT[2],
    grid: "fisher",
  });
  const byTask = fisherByTask(data);
  if (byTask.size === 0) return finish(data, { ...d, missing: "no Fisher records" });
  for (const [task, rec] of byTask) {
    const rows = rec.result.records;
    const groups = rankComponentRows(rows, "mean", { by: "group" });
    const comps = rankComponentRows(rows, "mean");
    const rank = groups.findIndex((g) => g.name === "layernorm");
    d.checks.push({
      task,
      what: "LayerNorm group ranks first by mean Fisher per element",
      pass: rank === 0,
      primary: true,
      detail: groups.map((g) => `${g.name} ${sci(g.value)}`).join(" > "),
      sources: [rec.id],
    });
    d.numbers.push({
      task,
      N: rec.result.N,
      "group ranking (mean Fisher per element)": groups.map((g) => `${g.name} ${sci(g.value)}`).join(" > "),
      "LayerNorm rank": rank >= 0 ? `${rank + 1} of ${groups.length}` : "absent",
      "top component": `${comps[0]?.name} ${sci(comps[0]?.value ?? NaN)}`,
      sources: rec.id,
    });
  }
  return finish(data, d);
}

// ---------------------------------------------------------------------------------------------------
// Finding 3: LayerNorm-only is close to full fine-tuning and BitFit with about a fifth of BitFit's size

/** Encoder elements trained by LayerNorm-only, output-LayerNorm-only and BitFit, for a BERT shape. */
export function parameterCounts(config = parseConfig(BERT_BASE)): {
  layernorm: number;
  layernormOutput: number;
  bitfit: number;
} {
  let layernorm = 0, layernormOutput = 0, bitfit = 0;
  for (const [name, shape] of parameterShapes(config, 2)) {
    if (!name.startsWith("bert.")) continue;
    const n = elementCount(shape);
    if (isLayerNorm(name)) layernorm += n;
    if (/\.output\.LayerNorm\./.test(name) && !name.includes("attention")) layernormOutput += n;
    if (isBias(name)) bitfit += n;
  }
  return { layernorm, layernormOutput, bitfit };
}

export function finding3(data: StudyData): FindingResult {
  const lo = THRESHOLDS.ratioTarget / THRESHOLDS.ratioFactor,
    hi = THRESHOLDS.ratioTarget * THRESHOLDS.ratioFactor;
  const d = draft({
    id: 3,
    ...FINDING_TEXT[3],
    grid: "main",
  });
  const scores = mainScores(data);
  const all: (ScoreGroup | undefined)[] = [];
  let ratioDone = false;
  for (const task of tasksOf(scores)) {
    const full = findScore(scores, task, "full"), bitfit = findScore(scores, task, "bitfit");
    const ln = findScore(scores, task, "layernorm"), lno = findScore(scores, task, "layernorm-output");
    all.push(full, bitfit, ln);
    if (!ln || !full || !bitfit) {
      d.notes.push(
        `${task}: left out, missing ${
          [["full", full], ["bitfit", bitfit], ["layernorm", ln]].filter(([, g]) => !g).map(([m]) => m)
            .join(", ")
        }.`,
      );
      continue;
    }
    caution(d, task, [full, bitfit, ln]);
    const tolFull = closeTolerance(ln, full), tolBit = closeTolerance(ln, bitfit);
    d.checks.push({
      task,
      what: "LayerNorm close to full fine-tuning",
      pass: isClose(ln, full),
      primary: true,
      detail: `LN ${pointsText(ln)} vs full ${pointsText(full)}: ${signedPts(ln.mean - full.mean)} points, ` +
        `tolerance ${pts(tolFull)}`,
      sources: [...ln.ids, ...full.ids],
    });
    d.checks.push({
      task,
      what: "LayerNorm close to BitFit",
      pass: isClose(ln, bitfit),
      primary: true,
      detail: `LN ${pointsText(ln)} vs BitFit ${pointsText(bitfit)}: ${signedPts(ln.mean - bitfit.mean)} ` +
        `points, tolerance ${pts(tolBit)}`,
      sources: [...ln.ids, ...bitfit.ids],
    });
    d.numbers.push({
      task,
      metric: ln.metric,
      full: pointsText(full),
      BitFit: pointsText(bitfit),
      LayerNorm: pointsText(ln),
      "output LN": lno ? pointsText(lno) : "",
      "LN - full": signedPts(ln.mean - full.mean),
      "LN - BitFit": signedPts(ln.mean - bitfit.mean),
      "tolerance (full, BitFit)": `${pts(tolFull)}, ${pts(tolBit)}`,
      "best lr (full, BitFit, LN)": [full, bitfit, ln].map((g) => rateText(g.lr)).join(", "),
      sources: ids(full, bitfit, ln, lno),
    });
    if (!ratioDone) {
      ratioDone = true;
      const ratio = ln.trainable / bitfit.trainable;
      const outRatio = lno ? lno.trainable / bitfit.trainable : NaN;
      d.checks.push({
        task: "(all)",
        what: "LayerNorm / BitFit trained encoder elements near 1/5",
        pass: ratio >= lo - 1e-12 && ratio <= hi + 1e-12,
        primary: false,
        detail: `${ln.trainable} / ${bitfit.trainable} = ${ratio.toFixed(3)} (band [${lo.toFixed(3)}, ${
          hi.toFixed(3)
        }])`,
        sources: [ln.ids[0], bitfit.ids[0]],
      });
      d.numbers.push({
        task: "(parameters)",
        metric: "trained encoder elements",
        full: String(full.trainable),
        BitFit: String(bitfit.trainable),
        LayerNorm: String(ln.trainable),
        "output LN": lno ? String(lno.trainable) : "",
        "LN - full": "",
        "LN - BitFit": `LN/BitFit ${ratio.toFixed(3)}${
          lno ? `; output LN/BitFit ${outRatio.toFixed(3)}` : ""
        }`,
        "tolerance (full, BitFit)": "",
        "best lr (full, BitFit, LN)": "",
        sources: [ln.ids[0], bitfit.ids[0], ...(lno ? [lno.ids[0]] : [])].join(" "),
      });
      const base = parameterCounts();
      d.notes.push(
        `For reference, BERT-base's shapes give LayerNorm / BitFit = ${base.layernorm} / ${base.bitfit} = ${
          (base.layernorm / base.bitfit).toFixed(3)
        } and output LayerNorm / BitFit = ${base.layernormOutput} / ${base.bitfit} = ${
          (base.layernormOutput / base.bitfit).toFixed(3)
        } (lib/bert/names.ts): "a fifth" matches the output LayerNorm alone more closely than all LayerNorms.`,
      );
    }
  }
  if (d.checks.length === 0) {
    return finish(data, { ...d, missing: "no task has full, BitFit and LayerNorm-only results" });
  }
  d.notes.push(...seedNote(all), ...rateNotes(all), ...divergedNotes(all));
  return finish(data, d);
}

// ---------------------------------------------------------------------------------------------------
// Finding 4: top-k% of LayerNorm by Fisher loses little

export function finding4(data: StudyData): FindingResult {
  const { kTarget, kMin, kMax } = THRESHOLDS;
  const d = draft({
    id: 4,
    ...FINDING_TEXT[4],
    grid: "topk",
  });
  const ms = maskScores(data), main = mainScores(data);
  const pcts = [...new Set(ms.filter((g) => g.method === "fisher").map((g) => g.pct as number))];
  const k = closestK(pcts, kTarget, kMin, kMax);
  if (k === undefined) {
    return finish(data, {
      ...d,
      missing: `no top-k% runs with k in [${kMin}, ${kMax}] (have k: ${pcts.join(", ") || "none"})`,
    });
  }
  const all: (ScoreGroup | undefined)[] = [];
  for (const task of tasksOf(ms)) {
    const top = findScore(ms, task, "fisher", k), rnd = findScore(ms, task, "random", k);
    const ref = findScore(ms, task, "fisher", 100) ?? findScore(main, task, "layernorm");
    const full = findScore(main, task, "full");
    if (!top || !ref) {
      d.notes.push(`${task}: left out, missing ${!top ? `top-${k}%` : "a 100%-LayerNorm run"}.`);
      continue;
    }
    all.push(top, ref, rnd);
    caution(d, task, [top, ref, rnd]);
    const tol = closeTolerance(top, ref);
    const refName = ref.pct === 100 ? "100% mask" : "LayerNorm-only";
    d.checks.push({
      task,
      what: `top-${k}% close to ${refName}`,
      pass: isClose(top, ref),
      primary: true,
      detail: `top-${k}% ${pointsText(top)} vs ${refName} ${pointsText(ref)}: ${
        signedPts(top.mean - ref.mean)
      } points, tolerance ${pts(tol)}`,
      sources: [...top.ids, ...ref.ids],
    });
    if (rnd) {
      d.checks.push({
        task,
        what: `top-${k}% above random-${k}%`,
        pass: above(top, rnd),
        primary: false,
        detail: `top-${k}% ${pointsText(top)} vs random ${pointsText(rnd)}: ${
          signedPts(top.mean - rnd.mean)
        }`,
        sources: [...top.ids, ...rnd.ids],
      });
    } else d.notes.push(`${task}: no random-${k}% run, so no control.`);
    d.numbers.push({
      task,
      k,
      [`top-${k}%`]: pointsText(top),
      [`random-${k}%`]: rnd ? pointsText(rnd) : "",
      "100% LN": `${pointsText(ref)} (${refName})`,
      full: full ? pointsText(full) : "",
      "top - 100%": signedPts(top.mean - ref.mean),
      "top - random": rnd ? signedPts(top.mean - rnd.mean) : "",
      tolerance: pts(tol),
      sources: ids(top, rnd, ref, full),
    });
  }
  if (d.checks.length === 0) return finish(data, { ...d, missing: `no task has top-${k}% and 100% runs` });
  d.notes.push(...seedNote(all), ...divergedNotes(all));
  return finish(data, d);
}

// ---------------------------------------------------------------------------------------------------
// Finding 5: masks chosen on other tasks transfer

export function finding5(data: StudyData): FindingResult {
  const d = draft({
    id: 5,
    ...FINDING_TEXT[5],
    grid: "crosstask",
  });
  const ms = maskScores(data);
  const all: (ScoreGroup | undefined)[] = [];
  for (const union of ms.filter((g) => g.method === "union")) {
    const task = union.task, k = union.pct as number;
    const own = findScore(ms, task, "fisher", k), rnd = findScore(ms, task, "random", k);
    if (!own) {
      d.notes.push(`${task}: left out, no own top-${k}% run.`);
      continue;
    }
    all.push(union, own, rnd);
    caution(d, task, [union, own, rnd]);
    const tol = closeTolerance(union, own);
    d.checks.push({
      task,
      what: `union of other tasks' top-${k}% close to own top-${k}%`,
      pass: isClose(union, own),
      primary: true,
      detail: `union ${pointsText(union)} vs own ${pointsText(own)}: ${signedPts(union.mean - own.mean)} ` +
        `points, tolerance ${pts(tol)}`,
      sources: [...union.ids, ...own.ids],
    });
    if (rnd) {
      d.checks.push({
        task,
        what: `union above random-${k}%`,
        pass: above(union, rnd),
        primary: false,
        detail: `union ${pointsText(union)} vs random ${pointsText(rnd)}: ${
          signedPts(union.mean - rnd.mean)
        }`,
        sources: [...union.ids, ...rnd.ids],
      });
    }
    d.numbers.push({
      task,
      k,
      union: pointsText(union),
      own: pointsText(own),
      random: rnd ? pointsText(rnd) : "",
      "union - own": signedPts(union.mean - own.mean),
      "union - random": rnd ? signedPts(union.mean - rnd.mean) : "",
      "union mask share of LN (%)": Number.isFinite(union.maskShare ?? NaN)
        ? (100 * union.maskShare!).toFixed(1)
        : "",
      tolerance: pts(tol),
      sources: ids(union, own, rnd),
    });
  }
  if (d.checks.length === 0) {
    return finish(data, { ...d, missing: "no union-mask runs with an own-mask run" });
  }
  d.notes.push(
    "The union of several tasks' masks can hold more than k% of LayerNorm, so it is not size-matched to the " +
      "random control; its share is in the table.",
    ...seedNote(all),
    ...divergedNotes(all),
  );
  return finish(data, d);
}

// ---------------------------------------------------------------------------------------------------
// Finding 6: the top Fisher LayerNorm elements sit in the last layers and in beta

/** Whether the densest layer is in the last half of the encoder layers (strictly denser than the rest). */
export function lastLayersDensest(p: Placement): { pass: boolean; late: number; early: number } {
  const firstLate = Math.floor(p.layers / 2);
  let late = -Infinity, early = -Infinity;
  for (const part of p.byLayer) {
    const m = /^layer (\d+)$/.exec(part.label);
    const isLate = !!m && Number(m[1]) >= firstLate;
    if (isLate) late = Math.max(late, part.density);
    else early = Math.max(early, part.density);
  }
  return { pass: late > early, late, early };
}

export function finding6(data: StudyData): FindingResult {
  const { kTarget, kMin, kMax } = THRESHOLDS;
  const d = draft({
    id: 6,
    ...FINDING_TEXT[6],
    grid: "topk",
  });
  const k = closestK(topMaskPcts(data), kTarget, kMin, kMax);
  if (k === undefined) {
    return finish(data, {
      ...d,
      missing: `no own-task Fisher masks with k in [${kMin}, ${kMax}] (have k: ${
        topMaskPcts(data).join(", ") || "none"
      })`,
    });
  }
  for (const [task, rec] of topMasks(data, k)) {
    const p = maskPlacement(rec);
    const layer = lastLayersDensest(p);
    const gamma = p.byKind.find((x) => x.label === "gamma")?.selected ?? 0;
    const beta = p.byKind.find((x) => x.label === "beta")?.selected ?? 0;
    const dens = p.byLayer.map((x) => `${x.label} ${(100 * x.density).toFixed(1)}%`).join(", ");
    d.checks.push({
      task,
      what: "densest layer in the last half of the encoder",
      pass: layer.pass,
      primary: true,
      detail: `density by layer: ${dens}`,
      sources: [rec.id],
    });
    d.checks.push({
      task,
      what: "more beta than gamma selected",
      pass: beta > gamma,
      primary: true,
      detail: `beta ${beta}, gamma ${gamma} of ${p.selected}`,
      sources: [rec.id],
    });
    d.numbers.push({
      task,
      k,
      selected: p.selected,
      "density by layer": dens,
      "beta / gamma": `${beta} / ${gamma}`,
      "by LayerNorm type": p.byLnType.map((x) => `${x.label} ${x.selected}`).join(", "),
      sources: rec.id,
    });
  }
  if (d.checks.length === 0) return finish(data, { ...d, missing: `no own-task top-${k}% masks` });
  return finish(data, d);
}

/** All six findings, in order. */
export function evaluateFindings(data: StudyData): FindingResult[] {
  return [finding1, finding2, finding3, finding4, finding5, finding6].map((f) => f(data));
}

// ---------------------------------------------------------------------------------------------------
// Control checks: do the main methods beat the controls?

/**
 * The rule behind every control check: `a` beats `b` by more than `closeTolerance(a, b)`. A diverged `a`
 * beats nothing; a finite `a` beats a diverged `b` (`diff` is then NaN: no number to show).
 */
export function beats(
  a: Pick<ScoreGroup, "mean" | "std" | "n">,
  b: Pick<ScoreGroup, "mean" | "std" | "n">,
): { pass: boolean; diff: number; margin: number } {
  const margin = closeTolerance(a, b), diff = a.mean - b.mean;
  const pass = Number.isFinite(a.mean) && (Number.isFinite(b.mean) ? diff > margin + 1e-12 : true);
  return { pass, diff, margin };
}

/** The text of a `beats` comparison (kept apart from the rule). */
function beatsDetail(
  names: [string, string],
  a: ScoreGroup,
  b: ScoreGroup,
  r: ReturnType<typeof beats>,
): string {
  return `${names[0]} ${pointsText(a)} vs ${names[1]} ${pointsText(b)}: ${signedPts(r.diff)} points, ` +
    `needs more than ${pts(r.margin)}`;
}

/** One method-vs-control comparison on one task: the check and its table row. */
interface Comparison {
  /** Method key and control key (load.ts `methodOf`), and whether the check is primary. */
  method: string;
  control: string;
  primary: boolean;
}

interface ControlSpec {
  id: string;
  title: string;
  claim: string;
  rule: string;
  comparisons: Comparison[];
}

const label = (method: string) => METHOD_LABELS[method]?.replace(/ \(control\)$/, "") ?? method;

/** The control checks (see the module doc). Fixed before any control was run; do not tune. */
export const CONTROL_CHECKS: readonly ControlSpec[] = [
  {
    id: "C1",
    title: "LayerNorm-only beats head-only",
    claim: "Training LayerNorm (plus the head) does more than training the task head alone on the frozen " +
      "encoder.",
    rule:
      "Per task, primary: LayerNorm-only beats head-only (mean above by more than max(2 points, seed std " +
      "of either side)). Secondary: LayerNorm-only beats pooler + head.",
    comparisons: [
      { method: "layernorm", control: "head", primary: true },
      { method: "layernorm", control: "head-pooler", primary: false },
    ],
  },
  {
    id: "C2",
    title: "Pretraining helps full fine-tuning",
    claim:
      "Full fine-tuning from the pretrained checkpoint beats the same architecture trained from random " +
      "initialisation.",
    rule:
      "Per task, primary: full fine-tuning (pretrained) beats full fine-tuning from random init (mean above " +
      "by more than max(2 points, seed std of either side)).",
    comparisons: [{ method: "full", control: "full-random-init", primary: true }],
  },
  {
    id: "C3",
    title: "Pretraining helps LayerNorm-only",
    claim: "LayerNorm-only training of the pretrained checkpoint beats LayerNorm-only training of the same " +
      "architecture from random initialisation.",
    rule:
      "Per task, primary: LayerNorm-only (pretrained) beats LayerNorm-only from random init (mean above by " +
      "more than max(2 points, seed std of either side)).",
    comparisons: [{ method: "layernorm", control: "layernorm-random-init", primary: true }],
  },
];

/** Judges one control check from the main and control scores. */
export function controlCheck(data: StudyData, spec: ControlSpec): FindingResult {
  const d = draft({ ...spec, grid: "main" });
  const groups = [...mainScores(data), ...controlScores(data)];
  const primary = spec.comparisons.find((c) => c.primary)!;
  const all: (ScoreGroup | undefined)[] = [];
  const leftOut: string[] = [];
  for (const task of tasksOf(groups)) {
    const main = findScore(groups, task, primary.method), ctl = findScore(groups, task, primary.control);
    if (!main || !ctl) {
      if (main || ctl) {
        leftOut.push(`${task}: left out, no ${label(main ? primary.control : primary.method)} runs.`);
      }
      continue;
    }
    const row: Row = { task, metric: main.metric };
    const sources: (ScoreGroup | undefined)[] = [];
    for (const c of spec.comparisons) {
      const a = findScore(groups, task, c.method), b = findScore(groups, task, c.control);
      if (!a || !b) continue;
      const r = beats(a, b);
      const names: [string, string] = [label(c.method), label(c.control)];
      d.checks.push({
        task,
        what: `${names[0]} beats ${names[1]}`,
        pass: r.pass,
        primary: c.primary,
        detail: beatsDetail(names, a, b, r),
        sources: [...a.ids, ...b.ids],
      });
      row[names[0]] = pointsText(a);
      row[names[1]] = pointsText(b);
      row[`${names[0]} - ${names[1]}`] = signedPts(r.diff);
      row[`margin vs ${names[1]}`] = pts(r.margin);
      sources.push(a, b);
      all.push(a, b);
    }
    caution(d, task, sources);
    d.numbers.push({ ...row, sources: ids(...new Set(sources)) });
  }
  if (d.checks.length === 0) {
    const declared = (PROFILES as Record<string, { controls?: readonly string[] }>)[data.profile]?.controls;
    return finish(data, {
      ...d,
      missing:
        `could not be judged, no task has both ${label(primary.method)} and ${label(primary.control)} ` +
        "runs",
      fill: declared && !declared.includes(primary.control)
        ? `profile \`${data.profile}\` runs no \`${primary.control}\` control (lib/experiments/profiles.ts ` +
          "`controls`)"
        : undefined,
    });
  }
  // Per-task gaps only when some task was judged (else the summary says it all).
  d.notes.push(...leftOut, ...seedNote(all), ...rateNotes(all), ...divergedNotes(all));
  return finish(data, d);
}

/** Every control check, in order. */
export function evaluateControls(data: StudyData): FindingResult[] {
  return CONTROL_CHECKS.map((spec) => controlCheck(data, spec));
}
