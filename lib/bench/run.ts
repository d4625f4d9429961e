/**
 * Runs the benchmark: for each model shape, the matMul forms at the step's largest shape (the peak every
 * figure is compared with), then one training step per mode and worker count, each followed by the
 * PyTorch reference of the same step, then an evaluation pass and per-example LayerNorm Fisher scores.
 * With `job`, the whole fine-tuning jobs instead (lib/bench/job.ts: `finetune` on RTE beside PyTorch's same
 * job). `tools/bench.ts` is the command line; tests call `runBench` with `quick: true`.
 *
 * ```ts
 * const report = await runBench({ ...QUICK, out: "reports/bench-quick.json" });
 * ```
 */
import {
  blasThreads,
  chooseGemm,
  currentGemm,
  gemmDescription,
  gemmFromEnv,
  gemmLabel,
  type GemmName,
  type GemmSetting,
  resolveGemm,
  restoreGemm,
} from "../backend/gemm_choice.ts";
import { type BackendName, initBackend, webgpuAdapter } from "../tf.ts";
import { benchKernelProducts, benchMatMulForms, matMulPeakAsync, type MatMulRow } from "./matmul.ts";
import {
  type BenchReport,
  formatCases,
  type JobSettings,
  type ReportCase,
  type ShapeReport,
  toReportCase,
} from "./report.ts";
import { type BenchMode, type BenchShape, getShape, largestProduct, type ShapeName } from "./shapes.ts";
import { benchEval, benchFisherLayerNorm, benchTrainStep, type CaseResult } from "./cases.ts";
import { runTorchStep, torchJobScript, torchScript } from "./torch.ts";
import { QUICK_JOB, runJobs } from "./job.ts";

export interface BenchOptions {
  shapes: ShapeName[];
  modes: BenchMode[];
  /** Worker counts for the training steps; default [1, 2] for tiny and mini, [1] for base. */
  workers?: number[];
  /** Smoke mode: small batch, two steps, no timing claims. */
  quick?: boolean;
  /** Rows and length of the batch (default: the shape's). */
  batch?: number;
  seq?: number;
  warmup?: number;
  repeats?: number;
  /** Run the PyTorch reference beside each training step (default true, false when quick). */
  torch?: boolean;
  torchSteps?: number;
  /** Profile one step of each in-process case per kernel (default true). */
  profile?: boolean;
  /** Also time an evaluation pass and per-example LayerNorm Fisher (default true). */
  extras?: boolean;
  backend?: BackendName;
  /**
   * The products to run every case on (lib/backend/gemm_choice.ts; default NORMTUNE_GEMM's, else auto):
   * each case once per
   * product, in turn, so that their ratios (and each one's to PyTorch) come from the same run. OpenBLAS
   * runs `blasThreads(workers)` threads; the kernel-product table has it on 1 and on that many.
   */
  gemms?: GemmName[];
  /**
   * Rows per forward/backward pass (gradient accumulation) of the training steps; default 0 (the whole
   * batch) except bert-base full fine-tuning off the GPU, 2, whose whole-batch step does not fit the 4 GiB
   * wasm heap.
   */
  microBatch?: number;
  /**
   * Time whole fine-tuning jobs (`finetune` on RTE, lib/bench/job.ts) instead of steps: batch and seq
   * become the job's batch size and max length, workers default to 1 and 2.
   */
  job?: boolean;
  /** The job's training examples (default 640; 64 when quick). */
  jobExamples?: number;
  /** Model folder per shape for the jobs (default: bert-tiny-v2; a mini-shaped folder, else random). */
  jobModels?: Partial<Record<ShapeName, string>>;
  /** How the run was started, recorded in the report. */
  command?: string;
  /** Progress lines (default stderr). */
  log?: (line: string) => void;
}

/** The settings of `--quick`: tiny shape, batch 4 x 32, warm-up + 1 timed step, 1 and 2 workers. */
export const QUICK: BenchOptions = {
  shapes: ["tiny"],
  modes: ["full", "bitfit", "layernorm"],
  workers: [1, 2],
  quick: true,
  batch: 4,
  seq: 32,
  warmup: 1,
  repeats: 1,
  torch: false,
  profile: true,
  extras: true,
};

/**
 * Runs `fn` with product `name` on `threads` OpenBLAS threads chosen (`blasThreads(workers)` by default),
 * then puts the product that was chosen before back, so a bench leaves the process as it found it.
 */
export async function withGemm<T>(
  backend: string,
  name: GemmName,
  threads: number,
  fn: (s: GemmSetting) => T | Promise<T>,
): Promise<T> {
  const before = currentGemm();
  const s = chooseGemm(backend, { name, threads });
  try {
    return await fn(s);
  } finally {
    restoreGemm(before);
  }
}

function defaultWorkers(shape: BenchShape): number[] {
  return shape.name === "base" ? [1] : [1, 2];
}

/**
 * bert-base full at 8 x 128: ~4.3 GB at once (the wasm heap aborts); micro-batches of 2 peak at ~3.2 GB.
 * A GPU has no 4 GiB ceiling: the whole batch at once.
 */
function defaultMicroBatch(shape: BenchShape, mode: BenchMode, onGpu: boolean): number {
  return !onGpu && shape.name === "base" && mode === "full" ? 2 : 0;
}

function errorCase(
  shape: BenchShape,
  kind: ReportCase["kind"],
  workers: number,
  batch: number,
  seq: number,
  err: unknown,
  gemm = "wasm",
) {
  const message = err instanceof Error ? err.message : String(err);
  return {
    kind,
    shape: shape.name,
    workers,
    gemm,
    batch,
    seq,
    trainable: 0,
    examplesPerSecond: 0,
    flops: 0,
    gflops: 0,
    losses: [],
    memory: { tfBytes: 0, rssBytes: Deno.memoryUsage().rss },
    stepSeconds: NaN,
    minSeconds: NaN,
    cpuSeconds: NaN,
    runs: [],
    fractionOfPeak: 0,
    error: message.split("\n")[0],
  } satisfies ReportCase;
}

export async function runBench(o: BenchOptions): Promise<BenchReport> {
  const log = o.log ?? ((line: string) => console.error(line));
  const backend = await initBackend(o.backend ?? "wasm");
  const useTorch = o.torch ?? !o.quick;
  const script = o.job ? torchJobScript() : torchScript();
  const torchNote = !useTorch
    ? "PyTorch reference not run (--no-torch or --quick)"
    : script
    ? `PyTorch reference: ${script}`
    : o.job
    ? "no PyTorch job reference found (tools/torch_job.py, or NORMTUNE_TORCH_JOB): no ratios"
    : "no PyTorch reference found (set NORMTUNE_TORCH_STEP or place ../shared/bench/torch_step.py): no ratios";
  // On webgpu: the plain matMul timed asynchronously, in-process cases only (the data-parallel workers
  // are for CPUs), no per-kernel profile (kernels run on the GPU after tfjs has returned).
  const onGpu = backend === "webgpu";
  // Default: what `normtune finetune` runs (auto: OpenBLAS where it loads), unless NORMTUNE_GEMM says.
  const gemms = o.gemms ?? [resolveGemm(backend, { name: gemmFromEnv("auto") })];
  if (gemms.includes("openblas") && backend !== "wasm") {
    throw new Error(
      `--gemm openblas is for the wasm backend, whose products it replaces (backend: ${backend})`,
    );
  }
  log(`bench: backend ${backend}; products ${gemms.join(", ")}; ${torchNote}`);
  const report: BenchReport = {
    normtune: "bench",
    version: 1,
    date: new Date().toISOString(),
    backend,
    ...(onGpu ? { adapter: webgpuAdapter() } : {}),
    quick: o.quick ?? false,
    command: o.command ?? "",
    host: { cores: navigator.hardwareConcurrency, deno: Deno.version.deno, v8: Deno.version.v8 },
    torch: { available: useTorch && script !== undefined, note: torchNote },
    shapes: [],
    cases: [],
  };
  if (gemms.includes("openblas")) {
    // Loaded (or the error naming the paths tried) before any case runs.
    const d = await withGemm(backend, "openblas", 1, (s) => gemmDescription(s)!);
    report.openblas = { config: d.config, core: d.core };
  }
  if (o.job) {
    const settings: Partial<JobSettings> = {
      ...(o.quick ? QUICK_JOB : {}),
      ...(o.jobExamples ? { examples: o.jobExamples } : {}),
      ...(o.batch ? { batch: o.batch } : {}),
      ...(o.seq ? { maxLen: o.seq } : {}),
    };
    report.job = await runJobs({
      shapes: o.shapes,
      modes: o.modes,
      workers: o.workers,
      gemms,
      settings,
      models: o.jobModels,
      torch: useTorch && script !== undefined,
      backend: o.backend,
      repeats: o.repeats,
    }, log);
    return report;
  }
  const timed = { warmup: o.warmup, repeats: o.repeats };
  // Each case on each product in turn, OpenBLAS on the threads `finetune` would give it.
  const onEach = async (workers: number, fn: () => Promise<void>) => {
    for (const g of gemms) await withGemm(backend, g, blasThreads(workers), fn);
  };
  // A case's product, as its result names it (lib/bench/cases.ts).
  const label = () => backend === "wasm" ? gemmLabel() : backend;

  for (const name of o.shapes) {
    const shape = getShape(name);
    const batch = o.batch ?? shape.batch, seq = o.seq ?? shape.seq;
    const forms = onGpu
      ? [await matMulPeakAsync(largestProduct(shape, batch, seq), { repeats: o.quick ? 1 : 5 })]
      : benchMatMulForms(largestProduct(shape, batch, seq), {
        repeats: o.quick ? 1 : 5,
        batched: [batch * shape.heads, seq, shape.hidden / shape.heads],
      });
    const peak: MatMulRow = forms.find((f) => f.form === "plain")!;
    const shapeReport: ShapeReport = { shape: name, matmulPeak: peak, matmulForms: forms };
    if (!onGpu) {
      // The fused kernels' own products on each product; OpenBLAS on 1 thread and on a process's default.
      shapeReport.kernelProducts = [];
      for (const g of gemms) {
        const threads = g === "openblas" ? [...new Set([1, blasThreads(1)])] : [1];
        for (const t of threads) {
          shapeReport.kernelProducts.push(
            ...await withGemm(
              backend,
              g,
              t,
              () =>
                benchKernelProducts(largestProduct(shape, batch, seq), { batch, seq, heads: shape.heads }, {
                  repeats: o.quick ? 1 : 5,
                }),
            ),
          );
        }
      }
    }
    report.shapes.push(shapeReport);
    log(`bench ${name}: plain matMul ${peak.shape} at ${peak.gflops.toFixed(1)} GFLOP/s`);

    const add = (c: ReportCase) => {
      report.cases.push(c);
      log(formatCases([c]).split("\n")[1]);
    };
    for (const mode of o.modes) {
      const results: CaseResult[] = [];
      for (const workers of onGpu ? [1] : o.workers ?? defaultWorkers(shape)) {
        await onEach(workers, async () => {
          try {
            results.push(
              await benchTrainStep({
                shape,
                mode,
                workers,
                batch,
                seq,
                ...timed,
                profile: (o.profile ?? true) && workers === 1 && !onGpu,
                backend: o.backend ?? "wasm",
                microBatch: o.microBatch ?? defaultMicroBatch(shape, mode, onGpu),
              }),
            );
          } catch (err) {
            add(errorCase(shape, mode, workers, batch, seq, err, label()));
          }
        });
      }
      // The reference right after, so both see the same load on the machine.
      let torch;
      if (useTorch && script && !o.batch && !o.seq) {
        const t = await runTorchStep({ shape: name, mode, steps: o.torchSteps });
        if (t.available) torch = t.result;
        else log(`bench ${name} ${mode}: ${t.reason}`);
      }
      for (const r of results) add(toReportCase(r, peak, torch));
    }
    if (o.extras ?? true) {
      for (const [kind, fn] of [["eval", benchEval], ["fisher-layernorm", benchFisherLayerNorm]] as const) {
        await onEach(1, async () => {
          try {
            const profile = (o.profile ?? true) && !onGpu;
            add(toReportCase(await fn({ shape, batch, seq, ...timed, profile }), peak));
          } catch (err) {
            add(errorCase(shape, kind, 1, batch, seq, err, label()));
          }
        });
      }
    }
  }
  return report;
}
