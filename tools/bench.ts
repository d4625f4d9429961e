/**
 * `deno task bench`: speed and memory of BERT training steps on this machine, beside PyTorch's.
 *
 * For BERT-tiny, -mini and -base shapes (vocab 30522) it times one training step per tuning mode
 * (full, bitfit, layernorm; AdamW included) in-process and on two data-parallel workers, an evaluation
 * pass and per-example LayerNorm Fisher scores; prints examples/s, step time (median after warm-up),
 * effective GFLOP/s, the fraction of the backend's own matMul rate, memory, and the ratio to the PyTorch
 * reference step run right after each case; and writes everything as JSON (atomically).
 *
 *   deno task bench                                  # everything (about 10 minutes)
 *   deno task bench --shapes tiny --modes layernorm  # one case
 *   deno task bench --quick --out /tmp/q.json        # the smoke test CI runs (tests/bench/bench_test.ts)
 *   deno task bench --job                            # whole fine-tuning jobs (below), reports/bench-job.json
 *
 * `--job` times whole fine-tuning jobs instead of steps (lib/bench/job.ts): the project's `finetune` on RTE,
 * 1 epoch of 640 training examples, batch 32, max length 128, length-bucketed batches, for tiny and mini
 * (`--shapes base` adds bert-base: batch 8, 64 examples), each mode, 1 and 2 workers, each beside PyTorch's
 * same job on the same batches (tools/torch_job.py).
 *
 * `--gemm wasm,openblas` runs every case (steps or jobs) on each product in turn (the wasm backend's
 * products: the project's wasm GEMM, or OpenBLAS, lib/backend/gemm_choice.ts), so their ratios, and each
 * one's to PyTorch, come from one run; the JSON names each case's product (`gemm`: "wasm",
 * "openblas-t1"). The per-shape table then also times the fused kernels' own products on each
 * (`kernelProducts`; OpenBLAS on 1 thread and on a process's default).
 *
 * Flags: --shapes tiny,mini,base  --modes full,bitfit,layernorm  --workers 1,2  --repeats N  --warmup N
 *        --batch N --seq N  --no-torch  --torch-steps N  --no-profile  --no-extras  --backend wasm|cpu|webgpu
 *        --gemm wasm,openblas (default NORMTUNE_GEMM, else auto as finetune: openblas where it loads)
 *        --micro-batch N (rows per pass, gradients accumulated; default 2 for bert-base full, else all)
 *        --out FILE (default reports/bench.json; with --job reports/bench-job.json)  --quick
 *        --job  --job-examples N (default 640, base 64; 64 with --quick)  --job-models tiny=DIR,mini=DIR,base=DIR
 *        (with --job, --batch and --seq are the job's batch size and max length, and --repeats N runs every
 *        job and PyTorch's N times, interleaved, reporting the median run)
 */
import { parseFlags, UsageError } from "../lib/cli/flags.ts";
import { formatMatMul } from "../lib/bench/matmul.ts";
import { formatCases, formatJobs } from "../lib/bench/report.ts";
import { DEFAULT_JOB_SHAPES, JOB_SHAPES } from "../lib/bench/job.ts";
import { type BenchOptions, QUICK, runBench } from "../lib/bench/run.ts";
import { BENCH_MODES, type BenchMode, getShape, SHAPE_NAMES, type ShapeName } from "../lib/bench/shapes.ts";
import { formatKernelTable } from "../lib/bench/profile.ts";
import { type GemmName, GEMMS } from "../lib/backend/gemm_choice.ts";
import { type BackendName, BACKENDS } from "../lib/tf.ts";
import { writeJsonAtomic } from "../lib/util/atomic.ts";
import { exitWhenDone } from "../lib/util/exit.ts";

function list(value: string | undefined, all: readonly string[], what: string): string[] | undefined {
  if (value === undefined) return undefined;
  const items = value.split(",").map((s) => s.trim()).filter(Boolean);
  for (const item of items) {
    if (!all.includes(item)) throw new UsageError(`--${what}: "${item}" is not one of ${all.join(", ")}`);
  }
  return items;
}

export async function main(args: string[]): Promise<number> {
  const f = parseFlags(args, {
    quick: "boolean",
    out: "string",
    shapes: "string",
    modes: "string",
    workers: "string",
    repeats: "number",
    warmup: "number",
    batch: "number",
    seq: "number",
    "no-torch": "boolean",
    "torch-steps": "number",
    "no-profile": "boolean",
    "no-extras": "boolean",
    backend: "string",
    gemm: "string",
    "micro-batch": "number",
    job: "boolean",
    "job-examples": "number",
    "job-models": "string",
    help: "boolean",
  });
  if (f.bool("help")) {
    console.log(
      "usage: deno task bench [--quick] [--shapes tiny,mini,base] [--modes full,bitfit,layernorm] " +
        "[--workers 1,2] [--repeats N] [--warmup N] [--batch N --seq N] [--no-torch] [--torch-steps N] " +
        "[--no-profile] [--no-extras] [--backend wasm|cpu|webgpu] [--gemm wasm,openblas] [--micro-batch N] " +
        "[--out FILE]\n" +
        "       deno task bench --job [--quick] [--shapes tiny,mini,base] [--modes ...] [--workers 1,2] " +
        "[--job-examples N] [--job-models tiny=DIR,mini=DIR,base=DIR] [--batch N --seq N] [--gemm wasm,openblas] " +
        "[--no-torch] [--out FILE]",
    );
    return 0;
  }
  const job = f.bool("job");
  const base: BenchOptions = f.bool("quick")
    ? { ...QUICK, ...(job ? { batch: undefined, seq: undefined } : {}) }
    : { shapes: [...(job ? DEFAULT_JOB_SHAPES : SHAPE_NAMES)], modes: [...BENCH_MODES] };
  const opts: BenchOptions = {
    ...base,
    shapes: (list(f.optionalString("shapes"), SHAPE_NAMES, "shapes") as ShapeName[]) ?? base.shapes,
    modes: (list(f.optionalString("modes"), BENCH_MODES, "modes") as BenchMode[]) ?? base.modes,
    gemms: list(f.optionalString("gemm"), GEMMS, "gemm") as GemmName[] | undefined,
    command: ["deno task bench", ...args].join(" "),
  };
  const workers = f.optionalString("workers");
  if (workers !== undefined) {
    opts.workers = workers.split(",").map((w) => {
      const n = Number(w);
      if (!Number.isInteger(n) || n < 1) throw new UsageError(`--workers: "${w}" is not a positive integer`);
      return n;
    });
  }
  for (const key of ["repeats", "warmup", "batch", "seq"] as const) {
    const v = f.optionalNumber(key);
    if (v !== undefined) {
      if (!Number.isInteger(v) || v < (key === "warmup" ? 0 : 1)) {
        throw new UsageError(`--${key} must be a positive integer`);
      }
      opts[key] = v;
    }
  }
  if (f.has("micro-batch")) {
    const mb = f.number("micro-batch");
    if (!Number.isInteger(mb) || mb < 0) throw new UsageError("--micro-batch must be an integer >= 0");
    opts.microBatch = mb;
  }
  if (f.bool("no-torch")) opts.torch = false;
  if (f.has("torch-steps")) opts.torchSteps = f.number("torch-steps");
  if (f.bool("no-profile")) opts.profile = false;
  if (f.bool("no-extras")) opts.extras = false;
  const backend = f.optionalString("backend");
  if (backend !== undefined) {
    if (!(BACKENDS as readonly string[]).includes(backend)) {
      throw new UsageError(`--backend: unknown "${backend}"`);
    }
    opts.backend = backend as BackendName;
  }
  for (const s of opts.shapes) getShape(s);
  if (job) {
    opts.job = true;
    for (const flag of ["warmup", "torch-steps", "no-profile", "no-extras", "micro-batch"]) {
      if (f.has(flag)) throw new UsageError(`--${flag} is for the step cases, not --job`);
    }
    const bad = opts.shapes.filter((s) => !JOB_SHAPES.includes(s));
    if (bad.length) throw new UsageError(`--job runs on ${JOB_SHAPES.join(", ")}, not ${bad.join(", ")}`);
    if (f.has("job-examples")) {
      const n = f.number("job-examples");
      if (!Number.isInteger(n) || n < 1) throw new UsageError("--job-examples must be a positive integer");
      opts.jobExamples = n;
    }
    const models = f.optionalString("job-models");
    if (models !== undefined) {
      opts.jobModels = {};
      for (const item of models.split(",").map((s) => s.trim()).filter(Boolean)) {
        const [shape, dir] = item.split("=");
        if (!dir || !JOB_SHAPES.includes(shape as ShapeName)) {
          throw new UsageError(
            `--job-models: "${item}" is not SHAPE=DIR with SHAPE one of ${JOB_SHAPES.join(", ")}`,
          );
        }
        opts.jobModels[shape as ShapeName] = dir;
      }
    }
  } else if (f.has("job-examples") || f.has("job-models")) {
    throw new UsageError("--job-examples and --job-models go with --job");
  }
  const out = f.string("out", job ? "reports/bench-job.json" : "reports/bench.json");

  const report = await runBench(opts);
  if (report.job) {
    const s = report.job.settings;
    console.log(
      `\nwhole jobs: ${s.task}, ${s.examples} train examples, ${s.epochs} epoch, batch ${s.batch}, ` +
        `max length ${s.maxLen}, lr ${s.lr.full} (full) / ${s.lr.sparse}; train s = finetune's epoch loop, ` +
        `whole s = the finetune call, ratio = train s / PyTorch's epoch loop on the same batches`,
    );
    for (const [shape, about] of Object.entries(report.job.models)) console.log(`${shape}: ${about}`);
    console.log(`\n${formatJobs(report.job.cases)}\n\n${report.torch.note}`);
    await writeJsonAtomic(out, report);
    console.log(`wrote ${out}`);
    return report.job.cases.some((c) => c.error) ? 1 : 0;
  }
  for (const s of report.shapes) {
    console.log(`\n${s.shape}: matMul forms on ${report.backend}\n${formatMatMul(s.matmulForms)}`);
    if (s.kernelProducts?.length) {
      console.log(`\n${s.shape}: the fused kernels' products\n${formatMatMul(s.kernelProducts)}`);
    }
  }
  console.log(`\n${formatCases(report.cases)}`);
  for (const c of report.cases) {
    if (c.kernels && c.kind !== "eval") {
      console.log(`\nprofile ${c.shape} ${c.kind} (cpu ms per kernel)\n${formatKernelTable(c.kernels, 10)}`);
    }
  }
  console.log(`\n${report.torch.note}`);
  await writeJsonAtomic(out, report);
  console.log(`wrote ${out}`);
  return report.cases.some((c) => c.error) ? 1 : 0;
}

if (import.meta.main) {
  try {
    exitWhenDone(await main(Deno.args));
  } catch (err) {
    console.error(`bench: ${err instanceof Error ? err.message : err}`);
    exitWhenDone(err instanceof UsageError ? 2 : 1);
  }
}
