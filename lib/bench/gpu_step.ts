/**
 * Benchmark cases for webgpu. The wasm/cpu cases (cases.ts, matmul.ts) read results with `dataSync()`,
 * which webgpu cannot do under Deno, and time synchronously, which on a GPU measures only the recording
 * of the work. The trainer's StepRunner (what cases.ts times) reads synchronously too (gradient norm,
 * non-finite check), so these run their own step (no clipping) and time it up to an `await` of its
 * loss, which returns once the GPU has run everything queued before it (the update included).
 *
 * ```ts
 * const peak = await matMulPeakAsync([4096, 768, 3072]);
 * const r = await benchTrainStepAsync({ shape: getShape("base"), mode: "layernorm", batch: 32 });
 * ```
 */
import { BertClassifier } from "../bert/model.ts";
import { elementCount } from "../util/shape.ts";
import { tf } from "../tf.ts";
import { selectTrainable } from "../tuning/modes.ts";
import { AdamW } from "../tuning/optimizer.ts";
import { randomBatch, randomTensors } from "./inputs.ts";
import type { MatMulRow } from "./matmul.ts";
import { type BenchMode, NUM_LABELS, shapeConfig, stepFlops } from "./shapes.ts";
import { type CaseOptions, type CaseResult, caseResult } from "./cases.ts";
import { measureAsync } from "./timing.ts";

const LR = 1e-4;

/** The plain product y[m, n] = a[m, k] b[k, n], timed until one element of y is read back. */
export async function matMulPeakAsync(
  [m, k, n]: [number, number, number],
  opts: { warmup?: number; repeats?: number } = {},
): Promise<MatMulRow> {
  const a = tf.randomUniform([m, k], -1, 1, "float32", 1), b = tf.randomUniform([k, n], -1, 1, "float32", 2);
  const flops = 2 * m * k * n;
  try {
    const timing = await measureAsync(async () => {
      const y = tf.matMul(a, b);
      const corner = tf.slice(y, [0, 0], [1, 1]); // reading all of y would time the copy, not the product
      await corner.data();
      tf.dispose([y, corner]);
    }, { warmup: opts.warmup ?? 1, repeats: opts.repeats ?? 5 });
    const shape = `[${m},${k}] x [${k},${n}]`;
    return {
      form: "plain",
      shape,
      flops,
      seconds: timing.median,
      gflops: flops / timing.median / 1e9,
      timing,
    };
  } finally {
    tf.dispose([a, b]);
  }
}

/** One in-process training step (forward, backward of the trained parameters, AdamW) per repeat. */
export async function benchTrainStepAsync(o: CaseOptions & { mode: BenchMode }): Promise<CaseResult> {
  const config = shapeConfig(o.shape);
  const batchSize = o.batch ?? o.shape.batch, seq = o.seq ?? o.shape.seq;
  const model = new BertClassifier(
    config,
    NUM_LABELS,
    o.tensors ?? randomTensors(config, NUM_LABELS, o.seed ?? 0),
  );
  const { batch, labels } = randomBatch(batchSize, seq, o.seed ?? 0);
  const opt = new AdamW(model.params, selectTrainable(o.mode, model.params.keys()));
  const nameOf = new Map([...model.params].map(([name, v]) => [v.name, name]));
  const losses: number[] = [];
  let t = 0;
  const step = async () => {
    const { value, grads } = tf.variableGrads(
      () => model.loss(model.logits(batch, { training: true, seed: t++ }), labels),
      opt.variables(),
    );
    opt.apply(new Map(Object.entries(grads).map(([k, g]) => [nameOf.get(k)!, g])), LR);
    losses.push((await value.data())[0]);
    tf.dispose([value, ...Object.values(grads)]);
  };
  try {
    const timed = { warmup: o.warmup ?? 1, repeats: o.repeats ?? 3 };
    const timing = await measureAsync(step, timed);
    const flops = stepFlops(o.shape, o.mode, batchSize, seq).step;
    const trainable = opt.names.reduce((n, name) => n + elementCount(model.params.get(name)!.shape), 0);
    const memory = { tfBytes: tf.memory().numBytes, rssBytes: Deno.memoryUsage().rss };
    return caseResult(o, o.mode, 1, trainable, timing, flops, losses.slice(-timed.repeats), memory);
  } finally {
    opt.dispose();
    model.dispose();
  }
}
