/**
 * What each of the six findings says, apart from the rule that judges it (lib/report/findings.ts): its
 * title, the paper's claim in our words, and the rule as the reports state it. Kept beside each other
 * so the text a reader sees can be checked against the code in one place.
 */
import type { THRESHOLDS } from "./findings.ts";

type Thresholds = typeof THRESHOLDS;

export interface FindingText {
  title: string;
  claim: string;
  rule: string;
}

/**
 * The texts, given the rules' thresholds (lib/report/findings.ts `THRESHOLDS`: the stated rules quote
 * them, so a changed threshold changes the text with it).
 */
export function findingTexts(t: Thresholds): Record<1 | 2 | 3 | 4 | 5 | 6, FindingText> {
  const THRESHOLDS = t;
  const { kTarget, kMin, kMax } = t;
  const lo = t.ratioTarget / t.ratioFactor, hi = t.ratioTarget * t.ratioFactor;
  return {
    1: {
      title: "Output LayerNorm changes most under full fine-tuning",
      claim:
        "After full fine-tuning, the output LayerNorm of the encoder layers changes more (mean absolute " +
        "change per parameter) than any other BERT component.",
      rule: "Per task: components ranked by mean |Δθ| per element (n-weighted over layers, classifier " +
        "excluded). Primary check: output LayerNorm is first. Supported if it is first on every task; partly " +
        "if on at least half.",
    },
    2: {
      title: "LayerNorm carries the most Fisher information per parameter",
      claim: "Ranked by Fisher information (mean over examples of the squared gradient of log p(y|x)), " +
        "LayerNorm carries the most information per parameter.",
      rule:
        "Per task: groups (embeddings, LayerNorm, attention, FFN, pooler; classifier excluded) ranked by " +
        "mean Fisher per element of the pretrained model with a fresh head. Primary check: LayerNorm is first.",
    },
    3: {
      title:
        "LayerNorm-only is close to full fine-tuning and BitFit with about a fifth of BitFit's parameters",
      claim: "Training only LayerNorm (plus the task head) scores close to full fine-tuning and to BitFit, " +
        "with about a fifth of BitFit's trainable parameters.",
      rule: `Per task, primary: LayerNorm-only close to full fine-tuning, and close to BitFit (at most ` +
        `max(${THRESHOLDS.closePoints} points, seed std) below). Secondary: trained encoder elements ` +
        `LayerNorm / BitFit in [${lo.toFixed(3)}, ${
          hi.toFixed(3)
        }] (1/5 within a factor ${THRESHOLDS.ratioFactor}).`,
    },
    4: {
      title: "Training only the top-k% of LayerNorm by Fisher loses little",
      claim:
        "Training only the top-k% of LayerNorm elements by Fisher information (k as small as about 10%) " +
        "loses little against training all of LayerNorm.",
      rule:
        `k = the profile's k closest to ${kTarget} within [${kMin}, ${kMax}]. Per task, primary: top-k% ` +
        `close to 100% of LayerNorm (the k = 100 mask run, else LayerNorm-only). Secondary: top-k% mean above ` +
        `random-k% mean.`,
    },
    5: {
      title: "A LayerNorm subset chosen on other tasks transfers",
      claim: "A LayerNorm subset chosen on other tasks (leave-one-task-out union of their top-k% masks) " +
        "trains a new task about as well as the task's own top-k% subset.",
      rule: "Per task, primary: the union of the other tasks' top-k% masks close to the own top-k% mask. " +
        "Secondary: union mean above random-k% mean.",
    },
    6: {
      title: "The most informative LayerNorm elements sit in the last layers and in beta",
      claim: "The LayerNorm elements with the highest Fisher information sit in the last layers and in the " +
        "bias (beta) terms.",
      rule:
        `Own-task top-k% masks, k closest to ${kTarget} within [${kMin}, ${kMax}]. Per task, two primary ` +
        `checks: the densest layer (selected / candidates, embeddings included) is in the last half of the ` +
        `encoder layers; more beta than gamma elements are selected.`,
    },
  };
}
