/**
 * Empirical Fisher information per parameter element: F = (1/N) Σ_n (∂ log p(y_n|x_n) / ∂θ)², from exact
 * per-example gradients (never squared batch means, which would be a different, smaller quantity).
 *
 * The log-likelihood:
 * - classification: log softmax(logits)[y], i.e. minus the cross-entropy;
 * - regression (numLabels 1, STS-B): a Gaussian with unit variance, log p(y|x) = -½(y - pred)² - ½ log 2π.
 *   The constant has no gradient, so the per-example gradient is (pred - y) · ∂pred/∂θ. (Note: the
 *   model's training loss is the MSE without the ½, whose gradient is twice this.)
 *
 * `labels: "true"` uses the dataset labels (the empirical Fisher, the paper's choice); `"sampled"` draws y
 * from the model's own predictive distribution (softmax, or N(pred, 1) for regression) with a seeded RNG,
 * which estimates the true Fisher.
 *
 * Two ways to get per-example gradients:
 * - batched (element-wise parameters: LayerNorm γ/β and all biases): each such parameter is tiled to
 *   [B, ...shape] and passed as a model override, so example b uses row b; the gradient of the SUM of the
 *   per-example losses w.r.t. the tiled tensor has row b = example b's own gradient. One backward pass per
 *   batch.
 * - loop (weight matrices, `params: "all"`): one example at a time, trimmed to its own length (padding
 *   cannot change an unpadded position's output), gradients w.r.t. every variable.
 *
 * ```ts
 * const fisher = await computeFisher(model, batches, { params: "layernorm", examples: 256, seed: 0 });
 * rankComponentsByFisher(aggregateFisher(fisher));
 * ```
 */
import { type Batch, sliceBatch, stackRows, usedLength } from "../bert/batch.ts";
import { tf } from "../tf.ts";
import type { BertClassifier } from "../bert/model.ts";
import { isBias, isLayerNorm } from "../bert/names.ts";
import type { TensorMap } from "../bert/safetensors.ts";
import { mulberry32, normal } from "../util/random.ts";
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

/**
 * Which parameters get a Fisher score: all of them, LayerNorm γ/β only, or every element-wise parameter
 * (LayerNorm and all biases: what the batched method covers).
 */
export type FisherParams = "all" | "layernorm" | "elementwise";

export interface FisherOptions {
  params: FisherParams;
  /** Number of examples N: the first N of `batches` are used (fewer available is an error). */
  examples: number;
  /** Seed of the label sampling (`labels: "sampled"`). */
  seed: number;
  /** Examples per backward pass in the batched method (the caller's batches are re-cut to this). Default 8. */
  batchSize?: number;
  /** True labels (empirical Fisher, default) or labels sampled from the model. */
  labels?: "true" | "sampled";
  /** "auto" (default): batched for layernorm/elementwise, loop for all. Tests force one or the other. */
  method?: "auto" | "batched" | "loop";
  /** Called after each pass with the number of examples done. */
  onProgress?: (done: number, total: number) => void;
}

export interface LabeledBatch {
  batch: Batch;
  /** Class indices, or targets for regression; one per example of `batch`. */
  labels: number[];
}

/** The names scored for `params`, in the model's order. */
export function fisherParamNames(model: BertClassifier, params: FisherParams): string[] {
  const names = [...model.params.keys()];
  if (params === "all") return names;
  if (params === "layernorm") return names.filter(isLayerNorm);
  if (params === "elementwise") return names.filter((n) => isLayerNorm(n) || isBias(n));
  throw new Error(`unknown Fisher params "${params}"; use all, layernorm or elementwise`);
}

/** Collects the first `n` examples of `batches` as single-row references. */
async function takeExamples(
  batches: Iterable<LabeledBatch> | AsyncIterable<LabeledBatch>,
  n: number,
): Promise<{ batch: Batch; row: number; label: number }[]> {
  const rows: { batch: Batch; row: number; label: number }[] = [];
  for await (const { batch, labels } of batches) {
    if (labels.length !== batch.batchSize) {
      throw new Error(`a batch has ${batch.batchSize} examples but ${labels.length} labels`);
    }
    for (let r = 0; r < batch.batchSize && rows.length < n; r++) {
      rows.push({ batch, row: r, label: labels[r] });
    }
    if (rows.length >= n) break;
  }
  if (rows.length < n) throw new Error(`Fisher wants ${n} examples but only ${rows.length} were given`);
  return rows;
}

/**
 * Labels sampled from the model (`draws`: one per example, drawn beforehand in example order so the result
 * does not depend on how examples are batched): for classes `draws[b]` is a uniform in [0, 1) fed to the
 * inverse CDF of softmax(logits[b]); for regression it is a standard normal ε and y = pred + ε. The labels
 * are constants of the gradient, so `logitsOf` runs as a forward pass of its own before it: the values
 * are read with `await` (webgpu cannot read synchronously), which a gradient function cannot do. It is
 * the same computation as the gradient pass's forward, so the logits, and the labels, are the same.
 */
async function sampleLabels(
  logitsOf: () => tf.Tensor,
  numLabels: number,
  draws: number[],
): Promise<number[]> {
  const logits = tf.tidy(logitsOf); // [batch, numLabels]
  let values: number[][];
  try {
    values = (await logits.array()) as number[][];
  } finally {
    logits.dispose();
  }
  if (numLabels === 1) return values.map((row, b) => row[0] + draws[b]);
  return values.map((row, b) => {
    // Inverse-CDF draw from softmax(row), computed in float64.
    const m = Math.max(...row);
    const e = row.map((v) => Math.exp(v - m));
    const z = e.reduce((a, x) => a + x, 0);
    let u = draws[b] * z, k = 0;
    while (k < e.length - 1 && u >= e[k]) u -= e[k++];
    return k;
  });
}

/**
 * Σ_b -log p(y_b | x_b) for a batch: cross-entropy summed (not averaged, so that per-example gradients
 * come out unscaled), or ½ Σ (pred - y)² for regression (`labels` are then the targets).
 */
function negLogLikelihoodSum(
  logits: tf.Tensor2D, // [batch, numLabels]
  labels: number[],
  numLabels: number,
): tf.Scalar {
  if (numLabels === 1) {
    const diff = tf.sub(tf.reshape(logits, [-1]), tf.tensor1d(labels, "float32"));
    return tf.mul(0.5, tf.sum(tf.square(diff)));
  }
  for (const y of labels) {
    if (!Number.isInteger(y) || y < 0 || y >= numLabels) {
      throw new Error(`label ${y} is not a class index in [0, ${numLabels})`);
    }
  }
  const onehot = tf.oneHot(tf.tensor1d(labels, "int32"), numLabels); // [batch, numLabels]
  return tf.neg(tf.sum(tf.mul(onehot, tf.logSoftmax(logits))));
}

/**
 * The Fisher of each scored parameter (HF names, parameter shapes), averaged over `opts.examples`
 * examples taken in order from `batches`. The model runs in eval mode (no dropout).
 */
export async function computeFisher(
  model: BertClassifier,
  batches: Iterable<LabeledBatch> | AsyncIterable<LabeledBatch>,
  opts: FisherOptions,
): Promise<TensorMap> {
  const n = opts.examples;
  if (!Number.isInteger(n) || n < 1) throw new Error(`Fisher examples must be a positive integer, got ${n}`);
  const names = fisherParamNames(model, opts.params);
  const method = opts.method && opts.method !== "auto"
    ? opts.method
    : opts.params === "all"
    ? "loop"
    : "batched";
  if (method === "batched") {
    const bad = names.filter((name) => !isLayerNorm(name) && !isBias(name));
    if (bad.length) {
      throw new Error(
        `the batched Fisher handles only element-wise parameters (LayerNorm, biases), not ${bad[0]}; ` +
          `use method "loop" or params "layernorm"/"elementwise"`,
      );
    }
  }
  const rows = await takeExamples(batches, n);
  // [numLabels]: the head says how many outputs the model has (1 = regression).
  const numLabels = model.params.get("classifier.bias")!.shape[0];
  let draws: number[] | undefined;
  if (opts.labels === "sampled") {
    const rng = mulberry32(opts.seed);
    draws = rows.map(() => (numLabels === 1 ? normal(rng) : rng()));
  }
  const acc = new Map<string, tf.Tensor>(
    names.map((name) => [name, tf.zeros(model.params.get(name)!.shape)]),
  );
  const addSquares = (name: string, g: tf.Tensor, batched: boolean) => {
    const old = acc.get(name)!;
    // [B, ...shape] -> Σ_b g_b² ; or [...shape] -> g²
    acc.set(name, tf.tidy(() => tf.add(old, batched ? tf.sum(tf.square(g), 0) : tf.square(g))));
    old.dispose();
  };

  if (method === "batched") {
    const bs = opts.batchSize ?? 8;
    // Examples of similar length share a pass (less padding); the sum does not depend on the order.
    const lengths = rows.map(({ batch, row }) => usedLength(batch, row, row + 1));
    const order = rows.map((_, i) => i).sort((a, b) => lengths[a] - lengths[b] || a - b);
    for (let start = 0; start < n; start += bs) {
      const idx = order.slice(start, start + bs);
      const chunk = idx.map((i) => rows[i]);
      const len = Math.max(...idx.map((i) => lengths[i]));
      const batch = stackRows(chunk, len);
      const labels = chunk.map((r) => r.label);
      const chunkDraws = draws && idx.map((i) => draws![i]);
      const tiled = tf.tidy(() =>
        names.map((name) => {
          const p = model.params.get(name)!; // [...shape]
          return tf.tile(tf.expandDims(p, 0), [chunk.length, ...p.shape.map(() => 1)]); // [B, ...shape]
        })
      );
      try {
        const logitsOf = (xs: tf.Tensor[]) =>
          model.logits(batch, { training: false, overrides: new Map(names.map((name, i) => [name, xs[i]])) });
        const ys = chunkDraws ? await sampleLabels(() => logitsOf(tiled), numLabels, chunkDraws) : labels;
        const grads = tf.tidy(() =>
          tf.grads((...xs: tf.Tensor[]) => negLogLikelihoodSum(logitsOf(xs), ys, numLabels))(tiled)
        );
        names.forEach((name, i) => addSquares(name, grads[i], true));
        tf.dispose(grads);
      } finally {
        tf.dispose(tiled);
      }
      opts.onProgress?.(Math.min(start + bs, n), n);
      await Promise.resolve(); // let timers and signals run between passes
    }
  } else {
    const vars = names.map((name) => model.params.get(name)!);
    const byVarName = new Map(names.map((name, i) => [vars[i].name, name]));
    for (let i = 0; i < n; i++) {
      const { batch: src, row, label } = rows[i];
      const batch = sliceBatch(src, row, row + 1, usedLength(src, row, row + 1));
      const logitsOf = () => model.logits(batch, { training: false });
      const ys = draws ? await sampleLabels(logitsOf, numLabels, [draws[i]]) : [label];
      const { value, grads } = tf.variableGrads(() => negLogLikelihoodSum(logitsOf(), ys, numLabels), vars);
      value.dispose();
      for (const [varName, g] of Object.entries(grads)) addSquares(byVarName.get(varName)!, g, false);
      tf.dispose(Object.values(grads));
      if ((i + 1) % 16 === 0 || i + 1 === n) {
        opts.onProgress?.(i + 1, n);
        await Promise.resolve();
      }
    }
  }

  const out: TensorMap = new Map();
  for (const name of names) {
    const t = acc.get(name)!;
    const data = (await t.data()) as Float32Array;
    for (let i = 0; i < data.length; i++) data[i] /= n;
    out.set(name, { shape: [...t.shape], data });
    t.dispose();
  }
  return out;
}

export interface FisherRecord extends ComponentInfo {
  n: number;
  /** Mean Fisher per element. */
  mean: number;
  /** Sum over the elements. */
  total: number;
  max: number;
}

/** One record per component x layer x kind, in names.ts order. */
export function aggregateFisher(fisher: TensorMap): FisherRecord[] {
  const acc = new Map<string, FisherRecord>();
  for (const [name, t] of fisher) {
    const info = componentOf(name);
    let total = 0, max = -Infinity;
    for (let i = 0; i < t.data.length; i++) {
      total += t.data[i];
      if (t.data[i] > max) max = t.data[i];
    }
    const key = componentKey(info);
    const r = acc.get(key) ?? { ...info, n: 0, mean: 0, total: 0, max: -Infinity };
    r.n += t.data.length;
    r.total += total;
    r.max = Math.max(r.max, max);
    r.mean = r.n ? r.total / r.n : 0;
    acc.set(key, r);
  }
  return [...acc.values()].sort(compareComponents);
}

export interface FisherRankOptions {
  by?: "component" | "component+kind" | "group";
  /** Sort by mean Fisher per element (default) or by the total. */
  sortBy?: "mean" | "total";
  /** Left out (default the classifier: it is always trained, so it is no candidate for selection). */
  exclude?: Component[];
}

export interface FisherRank {
  component: Component | ComponentGroup;
  group: ComponentGroup;
  kind: Kind | "all";
  n: number;
  mean: number;
  total: number;
  max: number;
}

/** Aggregates over layers (mean = total / n) and sorts descending, ties by name. */
export function rankComponentsByFisher(
  records: readonly FisherRecord[],
  opts: FisherRankOptions = {},
): FisherRank[] {
  const by = opts.by ?? "component", sortBy = opts.sortBy ?? "mean";
  const exclude = new Set<Component>(opts.exclude ?? ["classifier"]);
  const acc = new Map<string, FisherRank>();
  for (const r of records) {
    if (exclude.has(r.component)) continue;
    const group = componentGroup(r.component);
    const component = by === "group" ? group : r.component;
    const kind = by === "component+kind" ? r.kind : "all";
    const key = `${component}|${kind}`;
    const a = acc.get(key) ?? { component, group, kind, n: 0, mean: 0, total: 0, max: -Infinity };
    a.n += r.n;
    a.total += r.total;
    a.max = Math.max(a.max, r.max);
    a.mean = a.total / a.n;
    acc.set(key, a);
  }
  return [...acc.values()].sort((a, b) =>
    b[sortBy] - a[sortBy] || a.component.localeCompare(b.component) || a.kind.localeCompare(b.kind)
  );
}
