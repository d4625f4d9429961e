/**
 * Test helper: synthetic result records (the shapes lib/experiments/cells.ts writes), so that the study
 * views and the findings' rules are tested on numbers chosen to sit on either side of each threshold.
 */
import type {
  ChangeCellRecord,
  FinetuneRecord,
  FisherCellRecord,
  MaskCellRecord,
} from "../../lib/experiments/load.ts";
import type { StudyData } from "../../lib/report/study_views.ts";
import type { Component, ComponentInfo, Kind } from "../../lib/analysis/components.ts";

let counter = 0;
/** A fresh 16-hex-digit cell id. */
export function nextId(): string {
  return (++counter).toString(16).padStart(16, "0");
}

const COMMON = {
  label: "synthetic",
  deps: {},
  artefacts: [],
  cost: 1,
  timings: { startedAt: "2024-01-01T00:00:00Z", finishedAt: "2024-01-01T00:00:01Z", seconds: 1 },
  finishedAt: "2024-01-01T00:00:01Z",
  host: "test",
  meta: { model: "bert-tiny-mlm" },
};

/** Trained encoder elements per main mode, as bert-tiny-mlm's shapes give them. */
export const TRAINABLE: Record<string, number> = {
  full: 4385920,
  bitfit: 3072,
  layernorm: 1280,
  "layernorm-output": 512,
  head: 0,
  "head-pooler": 16512,
};

export interface RunOptions {
  task?: string;
  seed?: number;
  metric?: string;
  mask?: { method: "fisher" | "random" | "union"; pct: number; share?: number };
  trainable?: number;
  /** Started from random weights (a control). */
  init?: "random";
  /** Learning rate (default 1e-3). */
  lr?: number;
  /** The run diverged: its record has no score (as lib/experiments/cells.ts writes it); `score` is ignored. */
  diverged?: boolean;
}

/** A fine-tuning record: a main mode, or mode `mask` when `mask` is given. */
export function run(mode: string, score: number, o: RunOptions = {}): FinetuneRecord {
  const task = o.task ?? "RTE", seed = o.seed ?? 0;
  const trainable = o.trainable ??
    (o.mask ? Math.round((1280 * o.mask.pct) / 100) : TRAINABLE[mode] ?? 0);
  return {
    ...COMMON,
    id: nextId(),
    kind: "finetune",
    config: {
      task,
      mode: o.mask ? "mask" : mode,
      seed,
      lr: o.lr ?? 1e-3,
      epochs: 2,
      maxTrain: null,
      maxDev: null,
      maxLen: 128,
      backend: "cpu",
      model: { sha256: "ab".repeat(32), bytes: 1 },
      ...(o.mask ? { mask: { method: o.mask.method, pct: o.mask.pct } } : {}),
      ...(o.init ? { init: o.init } : {}),
    },
    result: {
      task,
      mode: o.mask ? "mask" : mode,
      seed,
      metric: o.metric ?? "accuracy",
      score: o.diverged ? null : score,
      finalScore: o.diverged ? null : score,
      ...(o.diverged ? { diverged: { step: 3, epoch: 1, batch: 3, reason: "loss is NaN" } } : {}),
      best: { main: score },
      final: { main: score },
      bestEpoch: 1,
      epochs: [],
      steps: 10,
      trainSeconds: 1,
      trainExamples: 2490,
      devExamples: 277,
      trainable: {
        trainable: trainable + 258,
        encoderTrainable: trainable,
        encoderTotal: 4385920,
        encoderShare: trainable / 4385920,
        head: 258,
      } as FinetuneRecord["result"]["trainable"],
      ...(o.mask
        ? {
          mask: {
            method: o.mask.method,
            pct: o.mask.pct,
            selected: trainable,
            share: o.mask.share ?? o.mask.pct / 100,
          },
        }
        : {}),
    },
  };
}

/** Several seeds of one method: one record per score. */
export function seeds(mode: string, scores: number[], o: RunOptions = {}): FinetuneRecord[] {
  return scores.map((s, seed) => run(mode, s, { ...o, seed }));
}

type Row = ComponentInfo & { n: number };

/** Component rows of a 2-layer model, with a value per component (same for every layer and kind). */
export function componentRows<K extends string>(
  key: K,
  values: Record<string, number>,
): (Row & Record<K, number>)[] {
  const rows: (Row & Record<K, number>)[] = [];
  const add = (component: Component, layer: number | null, kind: Kind, n: number) => {
    if (values[component] === undefined) return;
    rows.push({ component, layer, kind, n, [key]: values[component] } as Row & Record<K, number>);
  };
  add("word_embeddings", null, "weight", 1000);
  add("embeddings_layernorm", null, "weight", 128);
  add("embeddings_layernorm", null, "bias", 128);
  for (const layer of [0, 1]) {
    const components: Component[] = [
      "query",
      "attention_output_layernorm",
      "intermediate_dense",
      "output_layernorm",
    ];
    for (const c of components) {
      add(c, layer, "weight", c.endsWith("layernorm") ? 128 : 512);
      add(c, layer, "bias", 128);
    }
  }
  add("pooler", null, "weight", 512);
  add("classifier", null, "weight", 256);
  return rows;
}

export function changeRecord(task: string, values: Record<string, number>): ChangeCellRecord {
  const records = componentRows("meanAbsChange", values).map((r) => ({
    ...r,
    meanAbsBase: 0.05,
    relativeChange: r.meanAbsChange / 0.05,
  }));
  return {
    ...COMMON,
    id: nextId(),
    kind: "change",
    config: { task, backend: "cpu", model: { sha256: "ab".repeat(32), bytes: 1 } },
    result: { task, records },
  };
}

export function fisherRecord(task: string, values: Record<string, number>): FisherCellRecord {
  const records = componentRows("mean", values).map((r) => ({ ...r, total: r.mean * r.n, max: r.mean * 2 }));
  return {
    ...COMMON,
    id: nextId(),
    kind: "fisher",
    config: { task, examples: 512, params: "all" },
    result: { task, N: 512, records },
  };
}

/**
 * An own-task top-k% mask record of a 2-layer, 128-hidden model: `selected[tensor]` elements chosen in
 * each LayerNorm tensor (keys like "emb.w", "0.attn.b", "1.out.w").
 */
export function maskRecord(task: string, pct: number, selected: Record<string, number>): MaskCellRecord {
  const names: [string, string][] = [
    ["emb.w", "bert.embeddings.LayerNorm.weight"],
    ["emb.b", "bert.embeddings.LayerNorm.bias"],
  ];
  for (const l of [0, 1]) {
    for (const [short, long] of [["attn", "attention.output"], ["out", "output"]]) {
      names.push([`${l}.${short}.w`, `bert.encoder.layer.${l}.${long}.LayerNorm.weight`]);
      names.push([`${l}.${short}.b`, `bert.encoder.layer.${l}.${long}.LayerNorm.bias`]);
    }
  }
  const byTensor = names.map(([short, name]) => ({ name, selected: selected[short] ?? 0, size: 128 }));
  const total = byTensor.reduce((a, t) => a + t.selected, 0);
  return {
    ...COMMON,
    meta: {},
    id: nextId(),
    kind: "mask",
    config: { method: "fisher", task, pct, per: "global" },
    result: {
      method: "fisher",
      pct,
      candidates: 1280,
      target: Math.round(12.8 * pct),
      selected: total,
      share: total / 1280,
      byLayer: {},
      byKind: { weight: 0, bias: 0 },
      byLnType: { embeddings: 0, attention: 0, output: 0, other: 0 },
      byComponent: {},
      byTensor,
    },
  };
}

export function study(parts: Partial<StudyData> = {}): StudyData {
  return {
    profile: "cpu",
    dir: "/tmp/normtune-synthetic-results",
    finetune: [],
    change: [],
    fisher: [],
    mask: [],
    ...parts,
  };
}
