/**
 * Tuning modes: which parameters a fine-tuning run trains. As in Hugging Face PEFT, a mode is a small
 * config plus a rule over parameter names (lib/bert/names.ts):
 *
 * - `full`: everything.
 * - `bitfit`: every bias, LayerNorm beta and the pooler's bias included (Ben Zaken et al., 2022).
 * - `layernorm`: gamma and beta of every LayerNorm, the embeddings' included (the paper's LayerNorm-only).
 * - `layernorm-output`: only the output LayerNorm of each encoder layer
 *   (`bert.encoder.layer.N.output.LayerNorm.*`).
 * - `mask`: an element-wise 0/1 mask per parameter, read from a file (lib/tuning/mask_file.ts).
 * - `head`: nothing but the task head: a control, what the frozen encoder's features give alone.
 * - `head-pooler`: the head and the pooler: a control for models whose pooler was never pretrained (the
 *   stand-ins), where a method that freezes the pooler passes the features through random weights.
 *
 * The task head (`classifier.*`) is always trained in full; the pooler follows the mode like any other
 * parameter. Where the weights start (the checkpoint, or BERT's random initialisation: `--init random`,
 * lib/bert/init.ts) is independent of the mode.
 *
 * ```ts
 * const sel = selectTrainable("layernorm", parameterShapes(config, 2).keys());
 * sel.get("bert.embeddings.LayerNorm.weight"); // "all"
 * ```
 */
import { isBias, isHead, isLayerNorm } from "../bert/names.ts";
import { elementCount } from "../util/shape.ts";
import type { TensorMap } from "../bert/safetensors.ts";

export type ModeName = "full" | "bitfit" | "layernorm" | "layernorm-output" | "mask" | "head" | "head-pooler";

export interface TuningMode {
  name: ModeName;
  about: string;
  /** Whether a parameter trains in full (ignored for `mask`, whose rule is the file). */
  selects(name: string): boolean;
  /** True when the mode needs `--mask FILE`. */
  needsMask: boolean;
  /**
   * A starting learning rate for bert-tiny-sized models, not a tuned value: few trained parameters
   * need a larger step (the paper tunes the rate per mode; so should an experiment). On bert-tiny-mlm,
   * SST-2 (2,000 examples, 3 epochs): full at 1e-3 reached 0.69 dev accuracy, LayerNorm at 1e-2 0.59,
   * while 1e-4 / 1e-3 barely left the majority class in one epoch.
   */
  defaultLr: number;
}

const OUTPUT_LAYER_NORM = /^bert\.encoder\.layer\.\d+\.output\.LayerNorm\.(weight|bias)$/;
const POOLER_PARAM = /^bert\.pooler\.dense\.(weight|bias)$/;

export const MODES: Readonly<Record<ModeName, TuningMode>> = {
  full: { name: "full", about: "every parameter", selects: () => true, needsMask: false, defaultLr: 5e-4 },
  bitfit: {
    name: "bitfit",
    about: "every bias (LayerNorm beta and pooler bias included) + head",
    selects: isBias,
    needsMask: false,
    defaultLr: 1e-2,
  },
  layernorm: {
    name: "layernorm",
    about: "gamma and beta of every LayerNorm (embeddings' included) + head",
    selects: isLayerNorm,
    needsMask: false,
    defaultLr: 1e-2,
  },
  "layernorm-output": {
    name: "layernorm-output",
    about: "the output LayerNorm of each encoder layer + head",
    selects: (name) => OUTPUT_LAYER_NORM.test(name),
    needsMask: false,
    defaultLr: 1e-2,
  },
  mask: {
    name: "mask",
    about: "an element-wise 0/1 mask per parameter from --mask FILE + head",
    selects: () => false,
    needsMask: true,
    defaultLr: 1e-2,
  },
  head: {
    name: "head",
    about: "only the task head (a control: the frozen encoder's features alone)",
    selects: () => false,
    needsMask: false,
    defaultLr: 1e-2,
  },
  "head-pooler": {
    name: "head-pooler",
    about: "the pooler + head (a control: the stand-ins' pooler was never pretrained)",
    selects: (name) => POOLER_PARAM.test(name),
    needsMask: false,
    defaultLr: 1e-2,
  },
};

export const MODE_NAMES = Object.keys(MODES) as ModeName[];

/** The mode of that name; an unknown name is an error that lists the known ones. */
export function getMode(name: string): TuningMode {
  const mode = (MODES as Record<string, TuningMode>)[name];
  if (!mode) throw new Error(`unknown tuning mode "${name}": use one of ${MODE_NAMES.join(", ")}`);
  return mode;
}

/** A starting learning rate for the mode (see `TuningMode.defaultLr`). */
export function defaultLr(mode: ModeName | string): number {
  return getMode(mode).defaultLr;
}

/**
 * What trains: parameter name -> `"all"` (every element) or a 0/1 mask of the parameter's size.
 * Parameters absent from the map are frozen (no gradient is computed for them).
 */
export type Selection = Map<string, Float32Array | "all">;

/**
 * Applies a mode to the model's parameter names. For `mask`, `masks` (already validated, see masks.ts)
 * gives the elements; a mask of all ones becomes `"all"` and one of all zeros freezes the parameter, so
 * the trainer never carries a mask it does not need. The head is always `"all"`.
 */
export function selectTrainable(
  mode: ModeName | TuningMode,
  names: Iterable<string>,
  masks?: TensorMap,
): Selection {
  const m = typeof mode === "string" ? getMode(mode) : mode;
  if (m.needsMask && !masks) throw new Error(`mode "${m.name}" needs a mask file (--mask FILE)`);
  const out: Selection = new Map();
  for (const name of names) {
    if (isHead(name)) {
      out.set(name, "all");
    } else if (m.needsMask) {
      const t = masks!.get(name);
      if (!t) continue;
      const ones = countOnes(t.data);
      if (ones === t.data.length) out.set(name, "all");
      else if (ones > 0) out.set(name, t.data);
    } else if (m.selects(name)) {
      out.set(name, "all");
    }
  }
  return out;
}

function countOnes(data: Float32Array): number {
  let n = 0;
  for (let i = 0; i < data.length; i++) if (data[i] !== 0) n++;
  return n;
}

export interface TrainableCounts {
  /** Trained elements, head included. */
  trainable: number;
  /** Trained elements of the encoder (every `bert.*` parameter). */
  encoderTrainable: number;
  /** All elements of the encoder (every `bert.*` parameter). */
  encoderTotal: number;
  /** Trained elements of the head (`classifier.*`). */
  head: number;
  /** encoderTrainable / encoderTotal. */
  encoderShare: number;
  /** Number of parameter tensors with at least one trained element. */
  tensors: number;
}

/**
 * Counts trained elements. "Encoder" means every `bert.*` parameter (embeddings and pooler included),
 * so the share is comparable to the papers' "% of BERT's parameters".
 */
export function countTrainable(selection: Selection, shapes: Map<string, number[]>): TrainableCounts {
  let encoderTotal = 0, encoderTrainable = 0, head = 0;
  for (const [name, shape] of shapes) {
    const sel = selection.get(name);
    const n = sel === undefined ? 0 : sel === "all" ? elementCount(shape) : countOnes(sel);
    if (isHead(name)) head += n;
    else if (name.startsWith("bert.")) {
      encoderTotal += elementCount(shape);
      encoderTrainable += n;
    }
  }
  return {
    trainable: encoderTrainable + head,
    encoderTrainable,
    encoderTotal,
    head,
    encoderShare: encoderTotal > 0 ? encoderTrainable / encoderTotal : 0,
    tensors: [...selection.keys()].filter((n) => shapes.has(n)).length,
  };
}

/** One line for logs: `trainable 33,410 = 4,098 encoder (0.093% of 4,385,920) + 258 head`. */
export function describeCounts(c: TrainableCounts): string {
  const f = (n: number) => n.toLocaleString("en-US");
  const pct = (c.encoderShare * 100).toPrecision(3);
  return `trainable ${f(c.trainable)} = ${f(c.encoderTrainable)} encoder (${pct}% of ${
    f(c.encoderTotal)
  }) + ${f(c.head)} head`;
}
