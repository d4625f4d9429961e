/**
 * The benchmark's report: the JSON written to disk and the text table printed.
 *
 * Every case carries its effective GFLOP/s and that rate as a fraction of what the backend's own plain
 * 2-D product reaches at the step's largest shape (times the worker count), and, when the PyTorch
 * reference ran, PyTorch's step time measured right after it and the ratio normtune / PyTorch.
 * With `--job`, the whole fine-tuning jobs (lib/bench/job.ts) instead: `job`, and their own table.
 */
import type { MatMulRow } from "./matmul.ts";
import type { KernelRow } from "./profile.ts";
import type { CaseResult } from "./cases.ts";
import type { TorchResult } from "./torch.ts";

export interface TorchFigures {
  stepSeconds: number;
  runtime: string;
  trainable: number;
}

export interface ReportCase extends Omit<CaseResult, "profile" | "timing"> {
  stepSeconds: number;
  minSeconds: number;
  /** Median CPU seconds of the process per step (all threads, workers included). */
  cpuSeconds: number;
  runs: number[];
  /** gflops / (plain matMul GFLOP/s at the step's largest shape x workers). */
  fractionOfPeak: number;
  torch?: TorchFigures;
  /** stepSeconds / PyTorch's step seconds (same shape, mode, batch; measured in this run). */
  torchRatio?: number;
  /** The per-kernel profile of one step, largest first (when profiled). */
  kernels?: KernelRow[];
  /** Set when the case could not run (e.g. out of memory): the reason. */
  error?: string;
}

export interface ShapeReport {
  shape: string;
  /** The plain product at the step's largest shape: the reference rate. */
  matmulPeak: MatMulRow;
  /** Every product form at that shape (plain, transposeA, transposeB, batched, explicit transpose). */
  matmulForms: MatMulRow[];
  /** The fused kernels' products (dense forward, attention scores) on each product run (wasm, cpu). */
  kernelProducts?: MatMulRow[];
}

export interface BenchReport {
  normtune: "bench";
  version: 1;
  date: string;
  backend: string;
  /** The WebGPU adapter's name, on webgpu. */
  adapter?: string;
  quick: boolean;
  command: string;
  host: { cores: number; deno: string; v8: string };
  torch: { available: boolean; note: string };
  /** OpenBLAS's build and core, when a product ran on it (`--gemm openblas`). */
  openblas?: { config: string; core: string };
  shapes: ShapeReport[];
  cases: ReportCase[];
  /** The whole-job cases (`--job`; then `shapes` and `cases` are empty). */
  job?: JobReport;
}

/** What every job of a `--job` run did (lib/bench/job.ts `JOB`). */
export interface JobSettings {
  task: string;
  /** Training examples: a fixed random subset of the train split (`--max-train`, subset seed 0). */
  examples: number;
  /** Dev examples evaluated at the epoch's end (null: the whole split). */
  devExamples: number | null;
  /** Epochs (1: PyTorch's reference trains the first epoch's batches). */
  epochs: number;
  batch: number;
  /** Max tokens per example; each batch is padded to its longest row. */
  maxLen: number;
  seed: number;
  /** Peak learning rates: full fine-tuning, and the sparse modes (bitfit, layernorm). */
  lr: { full: number; sparse: number };
  weightDecay: number;
  clip: number;
}

export interface JobTorchFigures {
  /** PyTorch's epoch loop on the same batches from the same weights (tools/torch_job.py). */
  trainSeconds: number;
  /** Its reading of the input and building of the model. */
  setupSeconds: number;
  /** The python process, start to exit (interpreter and torch import included). */
  wallSeconds: number;
  runtime: string;
  threads: number;
  trainable: number;
  steps: number;
  trainLoss: number;
  /** With `--repeats N`: every run's trainSeconds (the figures above are the median run's). */
  trainRuns?: number[];
}

/** One whole fine-tuning job: `finetune` for one shape, mode and worker count. */
export interface JobCase {
  shape: string;
  /** The model folder's name, or what stood in for it (a random initialisation of the shape). */
  model: string;
  mode: string;
  workers: number;
  /** The product the job ran on: "wasm", "openblas-t1" (off wasm: the backend's name). */
  gemm: string;
  examples: number;
  steps: number;
  batch: number;
  maxLen: number;
  /** Padded share of the epoch's tokens under the trainer's length bucketing. */
  paddingShare: number;
  trainable: number;
  /**
   * The epoch loop as `finetune` times it (its metrics' trainSeconds): first batch to last update, batches
   * made from the encoded rows included; no loading, tokenising, worker start, evaluation or saving.
   */
  trainSeconds: number;
  /** With `--repeats N`: every run's trainSeconds (the figures here are the median run's). */
  trainRuns?: number[];
  /** The epoch-end evaluation (its metrics' evalSeconds). */
  evalSeconds: number;
  devExamples: number;
  /**
   * The whole `finetune` call: checkpoint loading, reading and tokenising train and dev, starting the
   * workers, training, evaluation, and writing state, delta and metrics (the backend was already started).
   */
  wholeSeconds: number;
  /** CPU seconds of the process during the whole call (all threads, workers included). */
  cpuSeconds: number;
  examplesPerSecond: number;
  trainLoss: number;
  rssBytes: number;
  torch?: JobTorchFigures;
  /** trainSeconds / PyTorch's trainSeconds (same shape, mode and batches; measured in this run). */
  torchRatio?: number;
  /** Why there is no PyTorch figure, when the reference was asked for and could not run. */
  torchNote?: string;
  /** Set when the job could not run: the reason. */
  error?: string;
}

export interface JobReport {
  settings: JobSettings;
  /** Which model each shape used. */
  models: Record<string, string>;
  /** Whether an untimed one-batch job ran first (warming up the process). */
  warmup: boolean;
  cases: JobCase[];
}

export function toReportCase(r: CaseResult, peak: MatMulRow, torch?: TorchResult): ReportCase {
  const { profile, timing, ...rest } = r;
  const out: ReportCase = {
    ...rest,
    stepSeconds: timing.median,
    minSeconds: timing.min,
    cpuSeconds: timing.cpu,
    runs: timing.runs,
    fractionOfPeak: r.gflops / (peak.gflops * r.workers),
  };
  if (profile) out.kernels = profile.rows;
  if (torch) {
    out.torch = { stepSeconds: torch.step_s, runtime: torch.runtime, trainable: torch.trainable };
    out.torchRatio = timing.median / torch.step_s;
  }
  return out;
}

function fmt(x: number | undefined, digits = 3): string {
  if (x === undefined || !Number.isFinite(x)) return "-";
  if (Math.abs(x) >= 100) return x.toFixed(0);
  if (Math.abs(x) >= 10) return x.toFixed(1);
  return x.toFixed(digits);
}

function mib(bytes: number | undefined): string {
  return bytes === undefined ? "-" : `${Math.round(bytes / 2 ** 20)}`;
}

/**
 * The case's own memory peak: tensor bytes at the profiled step's peak as tfjs counts them (in-process;
 * tensors that share a buffer count once each, so an upper bound), else the largest worker heap
 * (data-parallel). The heap column is the main process's wasm heap, whose size is the high-water mark
 * of every case run before it (a wasm heap never shrinks).
 */
function peakOf(c: ReportCase): number | undefined {
  if (c.memory.tfPeakBytes !== undefined) return c.memory.tfPeakBytes;
  if (c.memory.workerHeapBytes?.length) return Math.max(...c.memory.workerHeapBytes);
  return undefined;
}

/** The results table: one line per case. */
export function formatCases(cases: ReportCase[]): string {
  const head = [
    "shape",
    "case",
    "gemm",
    "wk",
    "batch",
    "step s",
    "min s",
    "ex/s",
    "GFLOP/s",
    "of peak",
    "torch s",
    "ratio",
    "peak MiB",
    "heap MiB",
    "rss MiB",
  ];
  const rows = cases.map((c) =>
    c.error ? [c.shape, c.kind, c.gemm, String(c.workers), `${c.batch}x${c.seq}`, `error: ${c.error}`] : [
      c.shape,
      c.kind,
      c.gemm,
      String(c.workers),
      `${c.batch}x${c.seq}`,
      fmt(c.stepSeconds),
      fmt(c.minSeconds),
      fmt(c.examplesPerSecond, 1),
      fmt(c.gflops, 2),
      `${Math.round(100 * c.fractionOfPeak)}%`,
      fmt(c.torch?.stepSeconds),
      c.torchRatio === undefined ? "-" : `${c.torchRatio.toFixed(2)}x`,
      mib(peakOf(c)),
      mib(c.memory.wasmHeapBytes),
      mib(c.memory.rssBytes),
    ]
  );
  const widths = head.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? "").length)));
  const line = (cells: string[]) =>
    cells.map((
      c,
      i,
    ) => (i < 3
      ? c.padEnd(widths[i])
      : i === cells.length - 1 && cells.length < head.length
      ? c
      : c.padStart(widths[i]))
    )
      .join("  ");
  return [line(head), ...rows.map(line)].join("\n");
}

/** The whole-job table: one line per job. */
export function formatJobs(cases: JobCase[]): string {
  const head = [
    "shape",
    "mode",
    "gemm",
    "wk",
    "examples",
    "steps",
    "pad",
    "train s",
    "eval s",
    "whole s",
    "torch s",
    "ratio",
    "loss",
    "torch loss",
  ];
  const rows = cases.map((c) =>
    c.error ? [c.shape, c.mode, c.gemm, String(c.workers), String(c.examples), `error: ${c.error}`] : [
      c.shape,
      c.mode,
      c.gemm,
      String(c.workers),
      String(c.examples),
      String(c.steps),
      `${Math.round(100 * c.paddingShare)}%`,
      fmt(c.trainSeconds),
      fmt(c.evalSeconds),
      fmt(c.wholeSeconds),
      fmt(c.torch?.trainSeconds),
      c.torchRatio === undefined ? "-" : `${c.torchRatio.toFixed(2)}x`,
      fmt(c.trainLoss),
      fmt(c.torch?.trainLoss),
    ]
  );
  const widths = head.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? "").length)));
  const line = (cells: string[]) =>
    cells.map((c, i) =>
      i < 3
        ? c.padEnd(widths[i])
        : i === cells.length - 1 && cells.length < head.length
        ? c
        : c.padStart(widths[i])
    ).join("  ");
  return [line(head), ...rows.map(line)].join("\n");
}
