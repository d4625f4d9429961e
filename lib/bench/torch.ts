/**
 * The PyTorch reference step (`../shared/bench/torch_step.py`, or the script NORMTUNE_TORCH_STEP
 * names), run with Debian's python3 and OpenBLAS as its docstring says, so that every normtune figure
 * can be put beside PyTorch's measured on the same machine in the same run; and the whole-job reference
 * (`tools/torch_job.py`, or NORMTUNE_TORCH_JOB), run the same way on the batches `finetune` trained on.
 *
 * ```ts
 * const ref = await runTorchStep({ shape: "tiny", mode: "full" });
 * if (ref.available) ref.result.step_s;
 * ```
 */
import { existsSync } from "node:fs";
import { join } from "node:path";
import { ROOT } from "../util/paths.ts";
import type { BenchMode, ShapeName } from "./shapes.ts";

export interface TorchResult {
  runtime: string;
  shape: string;
  mode: string;
  batch: number;
  seq: number;
  trainable: number;
  step_s: number;
  examples_per_s: number;
}

/** A reference run's result, or why there is none (a missing script, interpreter or torch). */
export type ReferenceOutcome<R> =
  | { available: true; script: string; result: R; wallSeconds: number }
  | { available: false; reason: string };

export type TorchOutcome = ReferenceOutcome<TorchResult>;

export interface TorchOptions {
  shape: ShapeName;
  mode: BenchMode;
  /** Timed steps after one warm-up (default 5). */
  steps?: number;
  /** torch.set_num_threads (default 2: this machine's cores). */
  threads?: number;
  /** Give up after this many seconds (default 600). */
  timeoutSeconds?: number;
  python?: string;
}

/** Where the reference script is: NORMTUNE_TORCH_STEP, else ../shared/bench/torch_step.py beside the repo. */
export function torchScript(): string | undefined {
  const fromEnv = Deno.env.get("NORMTUNE_TORCH_STEP");
  if (fromEnv) return existsSync(fromEnv) ? fromEnv : undefined;
  const path = join(ROOT, "..", "shared", "bench", "torch_step.py");
  return existsSync(path) ? path : undefined;
}

/** Runs one reference measurement; a missing script, interpreter or torch is an outcome, not an error. */
export async function runTorchStep(opts: TorchOptions): Promise<TorchOutcome> {
  const script = torchScript();
  if (!script) {
    return {
      available: false,
      reason: "no PyTorch reference: set NORMTUNE_TORCH_STEP or place ../shared/bench/torch_step.py",
    };
  }
  const args = [
    "--shape",
    opts.shape,
    "--mode",
    opts.mode,
    "--steps",
    String(opts.steps ?? 5),
    "--threads",
    String(opts.threads ?? 2),
  ];
  const r = await runPython<TorchResult>(script, args, "step_s", opts);
  return r.available ? { ...r, script } : r;
}

/** What `tools/torch_job.py` prints: one epoch of the job's batches in PyTorch. */
export interface TorchJobResult {
  runtime: string;
  threads: number;
  examples: number;
  steps: number;
  trainable: number;
  /** The epoch loop, first batch's tensors to the last update. */
  train_s: number;
  /** Reading the input and building the model. */
  setup_s: number;
  /** Mean batch loss of the epoch. */
  train_loss: number;
  examples_per_s: number;
}

export type TorchJobOutcome = ReferenceOutcome<TorchJobResult>;

/** The whole-job reference: NORMTUNE_TORCH_JOB, else the project's tools/torch_job.py. */
export function torchJobScript(): string | undefined {
  const path = Deno.env.get("NORMTUNE_TORCH_JOB") || join(ROOT, "tools", "torch_job.py");
  return existsSync(path) ? path : undefined;
}

/**
 * Runs the whole-job reference on the input lib/bench/job.ts `writeJobInput` wrote; like `runTorchStep`, a
 * missing interpreter or torch is an outcome with its reason.
 */
export async function runTorchJob(
  input: string,
  opts: Omit<TorchOptions, "shape" | "mode" | "steps"> = {},
): Promise<TorchJobOutcome> {
  const script = torchJobScript();
  if (!script) return { available: false, reason: "no PyTorch job reference: tools/torch_job.py is missing" };
  const r = await runPython<TorchJobResult>(
    script,
    [input, "--threads", String(opts.threads ?? 2)],
    "train_s",
    opts,
  );
  return r.available ? { ...r, script } : r;
}

/**
 * Runs `script` with Debian's python3 (or `opts.python`), OpenBLAS's core overrides unset for this command
 * only (as torch_step.py's docstring says), and reads its last JSON line, which must hold `key` as a number.
 */
async function runPython<T>(
  script: string,
  scriptArgs: string[],
  key: string,
  opts: { python?: string; timeoutSeconds?: number },
): Promise<{ available: true; result: T; wallSeconds: number } | { available: false; reason: string }> {
  const python = opts.python ?? "/usr/bin/python3";
  const env = Deno.env.toObject();
  delete env.OPENBLAS_CORETYPE;
  delete env.OPENBLAS_L2_SIZE;
  const t0 = performance.now();
  let out: Deno.CommandOutput;
  try {
    const child = new Deno.Command(python, {
      args: [script, ...scriptArgs],
      env,
      clearEnv: true,
      stdout: "piped",
      stderr: "piped",
    }).spawn();
    const timer = setTimeout(() => {
      try {
        child.kill("SIGKILL");
      } catch {
        // already done
      }
    }, 1000 * (opts.timeoutSeconds ?? 600));
    out = await child.output();
    clearTimeout(timer);
  } catch (err) {
    return { available: false, reason: `cannot run ${python}: ${(err as Error).message}` };
  }
  const wallSeconds = (performance.now() - t0) / 1000;
  const stdout = new TextDecoder().decode(out.stdout).trim();
  if (!out.success) {
    const stderr = new TextDecoder().decode(out.stderr).trim().split("\n").slice(-3).join(" | ");
    return { available: false, reason: `${script} failed (exit ${out.code}): ${stderr}` };
  }
  const line = stdout.split("\n").filter((l) => l.startsWith("{")).at(-1);
  try {
    const result = JSON.parse(line ?? "") as Record<string, unknown>;
    if (typeof result[key] !== "number") throw new Error(`no ${key}`);
    return { available: true, result: result as T, wallSeconds };
  } catch {
    return { available: false, reason: `${script} printed no result line: ${stdout.slice(-200)}` };
  }
}
