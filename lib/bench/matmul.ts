/**
 * Micro-benchmarks of every matrix-product form a BERT step uses, on the current backend, so that a
 * TensorFlow.js upgrade (or a backend change) that slows one of them shows up as a number, and so that
 * every step figure can be reported as a fraction of what the backend's own plain product reaches.
 *
 * On wasm only the plain 2-D product without transpose flags runs on XNNPACK; every other form runs a
 * naive loop. The model therefore never uses the slow forms (lib/bert/ops.ts); this table says how much
 * that is worth today.
 *
 * What the model does run, the fused kernels' products (lib/backend/kernel_io.ts `Io.product`), are timed
 * by `benchKernelProducts` on the product chosen now (the wasm GEMM, or OpenBLAS: lib/backend/
 * gemm_choice.ts): a dense layer's forward x W^T + b, and attention's per-head scores Q K^T.
 *
 * ```ts
 * const rows = benchMatMulForms([4096, 128, 512], { repeats: 5 });
 * rows.find((r) => r.form === "plain")!.gflops;
 * const gpu = await matMulPeakAsync([4096, 768, 3072]); // on webgpu
 * benchKernelProducts([4096, 128, 512], { batch: 32, seq: 128, heads: 2 }); // on wasm or cpu
 * ```
 */
import { gemmLabel } from "../backend/gemm_choice.ts";
import { attentionScores, denseFast, type HeadShape } from "../bert/fused_ops.ts";
import { tf } from "../tf.ts";
import { measure, measureAsync, type Timing } from "./timing.ts";

export type MatMulForm =
  | "plain"
  | "transposeA"
  | "transposeB"
  | "batched3d"
  | "explicitTranspose"
  | "transpose2d"
  | KernelForm;

/** The fused kernels' products: a dense layer's forward (+ bias), attention's per-head scores. */
export type KernelForm = "kernelDense" | "kernelScores";
export const KERNEL_FORMS: readonly KernelForm[] = ["kernelDense", "kernelScores"];

export const MATMUL_FORMS: readonly MatMulForm[] = [
  "plain",
  "transposeA",
  "transposeB",
  "batched3d",
  "explicitTranspose",
  "transpose2d",
];

export interface MatMulRow {
  form: MatMulForm;
  /** What was multiplied, e.g. `[4096,128] x [128,512]`. */
  shape: string;
  flops: number;
  seconds: number;
  /** FLOP/s / 1e9 (for `transpose2d`, a copy with no arithmetic: GB/s moved instead). */
  gflops: number;
  timing: Timing;
  /** The product the kernel forms ran on ("wasm", "openblas-t1"). */
  gemm?: string;
}

export interface MatMulOptions {
  warmup?: number;
  repeats?: number;
  /** Attention's batched product: [n, s, d] x [n, d, s]; default 64 x 128 x 64. */
  batched?: [number, number, number];
  forms?: readonly MatMulForm[];
}

/** Uniform random values from a fixed seed (values do not matter for speed). */
function rand(shape: number[], seed: number): tf.Tensor {
  return tf.randomUniform(shape, -1, 1, "float32", seed);
}

/** Backends whose kernels finish before they return. */
const SYNCHRONOUS = new Set(["wasm", "cpu"]);

/**
 * Waits for `y` on an asynchronous backend. Not by reading it back on wasm/cpu: copying a large result
 * out of the heap into a fresh JavaScript buffer costs more than the product (page faults). The read is
 * synchronous because these forms run only where that works (tensorflow); webgpu has `matMulPeakAsync`.
 */
function settle(y: tf.Tensor): void {
  if (!SYNCHRONOUS.has(tf.getBackend())) y.dataSync();
}

/**
 * Times y[m, n] = a[m, k] b[k, n] in each form (transposed operands are prepared outside the timing,
 * except for `explicitTranspose`, which times transpose + plain product as the model runs them).
 */
export function benchMatMulForms([m, k, n]: [number, number, number], opts: MatMulOptions = {}): MatMulRow[] {
  const forms = opts.forms ?? MATMUL_FORMS;
  const [bn, bs, bd] = opts.batched ?? [64, 128, 64];
  const mo = { warmup: opts.warmup ?? 1, repeats: opts.repeats ?? 5 };
  const a = rand([m, k], 1), b = rand([k, n], 2);
  const at = tf.transpose(a), bt = tf.transpose(b);
  const q = rand([bn, bs, bd], 3), kt = rand([bn, bd, bs], 4);
  const g = rand([m, n], 5); // an output-sized operand (a gradient)
  const rows: MatMulRow[] = [];
  const time = (form: MatMulForm, shape: string, flops: number, f: () => tf.Tensor) => {
    const timing = measure(() => {
      const y = f();
      settle(y);
      y.dispose();
    }, mo);
    rows.push({ form, shape, flops, seconds: timing.median, gflops: flops / timing.median / 1e9, timing });
  };
  const flops = 2 * m * k * n;
  try {
    for (const form of forms) {
      switch (form) {
        case "plain":
          time(form, `[${m},${k}] x [${k},${n}]`, flops, () => tf.matMul(a, b));
          break;
        case "transposeA":
          time(form, `[${k},${m}]^T x [${k},${n}]`, flops, () => tf.matMul(at, b, true, false));
          break;
        case "transposeB":
          time(form, `[${m},${k}] x [${n},${k}]^T`, flops, () => tf.matMul(a, bt, false, true));
          break;
        case "batched3d":
          time(
            form,
            `[${bn},${bs},${bd}] x [${bn},${bd},${bs}]`,
            2 * bn * bs * bd * bs,
            () => tf.matMul(q, kt),
          );
          break;
        case "explicitTranspose":
          // The weight gradient's form: transpose the [m, k] activation, then a plain product.
          time(form, `transpose([${m},${k}]) x [${m},${n}]`, flops, () => {
            const a2 = tf.transpose(a); // [k, m]
            const y = tf.matMul(a2, g);
            a2.dispose();
            return y;
          });
          break;
        case "transpose2d":
          // Bytes read + written, reported as "GB/s" in the gflops column.
          time(form, `transpose [${m},${n}]`, 8 * m * n, () => tf.transpose(g));
          break;
      }
    }
  } finally {
    tf.dispose([a, b, at, bt, q, kt, g]);
  }
  return rows;
}

/** The plain product's rate at this shape: the peak every step figure is compared with. */
export function matMulPeak(shape: [number, number, number], opts: MatMulOptions = {}): MatMulRow {
  return benchMatMulForms(shape, { ...opts, forms: ["plain"] })[0];
}

/**
 * The plain product's rate timed asynchronously, for webgpu: `benchMatMulForms` times synchronously, which
 * on a GPU measures only the recording of the work, and webgpu cannot read synchronously under Deno. Each
 * run waits for one element of y to come back (reading all of y would time the copy, not the product).
 */
export async function matMulPeakAsync(
  [m, k, n]: [number, number, number],
  opts: { warmup?: number; repeats?: number } = {},
): Promise<MatMulRow> {
  const a = rand([m, k], 1), b = rand([k, n], 2);
  const flops = 2 * m * k * n;
  try {
    const timing = await measureAsync(async () => {
      const y = tf.matMul(a, b);
      const corner = tf.slice(y, [0, 0], [1, 1]);
      try {
        await corner.data();
      } finally {
        tf.dispose([y, corner]);
      }
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

/**
 * Times the fused kernels' products on the product chosen now: y = x W^T + b with x [m, k], W [n, k] (a
 * dense layer's forward), and per-head Q K^T of `heads` heads over [batch * seq, k] (attention's scores,
 * read in place from the token-order tensors). Only where the fused kernels run (wasm, cpu).
 */
export function benchKernelProducts(
  [m, k, n]: [number, number, number],
  heads: HeadShape,
  opts: { warmup?: number; repeats?: number } = {},
): MatMulRow[] {
  const mo = { warmup: opts.warmup ?? 1, repeats: opts.repeats ?? 5 };
  const tokens = heads.batch * heads.seq, d = k / heads.heads;
  const x = rand([m, k], 1), w = rand([n, k], 2), b = rand([n], 3);
  const q = rand([tokens, k], 4), kk = rand([tokens, k], 5);
  const gemm = gemmLabel();
  const rows: MatMulRow[] = [];
  const time = (form: KernelForm, shape: string, flops: number, f: () => tf.Tensor) => {
    const timing = measure(() => f().dispose(), mo);
    rows.push({
      form,
      shape,
      flops,
      seconds: timing.median,
      gflops: flops / timing.median / 1e9,
      timing,
      gemm,
    });
  };
  try {
    time("kernelDense", `[${m},${k}] x [${n},${k}]^T + b`, 2 * m * k * n, () => denseFast(x, w, b));
    time(
      "kernelScores",
      `${heads.batch * heads.heads} x [${heads.seq},${d}] x K^T`,
      2 * heads.batch * heads.heads * heads.seq * heads.seq * d,
      () => attentionScores(q, kk, heads, 1 / Math.sqrt(d)),
    );
  } finally {
    tf.dispose([x, w, b, q, kk]);
  }
  return rows;
}

export function formatMatMul(rows: MatMulRow[]): string {
  const lines = ["form                shape                                   ms    GFLOP/s"];
  for (const r of rows) {
    const unit = r.form === "transpose2d" ? " GB/s" : "";
    lines.push(
      `${r.form.padEnd(19)} ${r.shape.padEnd(36)} ${(r.seconds * 1e3).toFixed(1).padStart(7)} ${
        r.gflops.toFixed(2).padStart(9)
      }${unit}${r.gemm ? `  ${r.gemm}` : ""}`,
    );
  }
  return lines.join("\n");
}
