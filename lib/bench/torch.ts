/**
 * The PyTorch reference step (`../shared/bench/torch_step.py`, or the script NORMTUNE_TORCH_STEP
 * names), run with Debian's python3 and OpenBLAS as its docstring says, so that every normtune figure
 * can be put beside PyTorch's measured on the same machine in the same run.
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

export type TorchOutcome =
  | { available: true; script: string; result: TorchResult; wallSeconds: number }
  | { available: false; reason: string };

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
  const python = opts.python ?? "/usr/bin/python3";
  const args = [
    script,
    "--shape",
    opts.shape,
    "--mode",
    opts.mode,
    "--steps",
    String(opts.steps ?? 5),
    "--threads",
    String(opts.threads ?? 2),
  ];
  // As the script's docstring says: OpenBLAS's core overrides unset for this command only.
  const env = Deno.env.toObject();
  delete env.OPENBLAS_CORETYPE;
  delete env.OPENBLAS_L2_SIZE;
  const t0 = performance.now();
  let out: Deno.CommandOutput;
  try {
    const child = new Deno.Command(python, { args, env, clearEnv: true, stdout: "piped", stderr: "piped" })
      .spawn();
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
    const result = JSON.parse(line ?? "") as TorchResult;
    if (typeof result.step_s !== "number") throw new Error("no step_s");
    return { available: true, script, result, wallSeconds };
  } catch {
    return { available: false, reason: `${script} printed no result line: ${stdout.slice(-200)}` };
  }
}
