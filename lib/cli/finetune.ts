/**
 * `normtune finetune`: fine-tune a model on a GLUE task, training only what `--mode` selects. Thin: the
 * work is `finetune()` in lib/tuning/trainer.ts; this parses flags and prints the result.
 *
 * ```sh
 * deno task normtune finetune --model bert-tiny-mlm --task RTE --mode layernorm --epochs 1 \
 *   --max-train 500 --out runs/rte-ln
 * ```
 *
 * `--init random` trains the same architecture from BERT's random initialisation (seeded by `--seed`)
 * instead of the checkpoint's weights: the control for what pretraining gives (with any mode).
 *
 * `--workers N` computes each batch's gradients in N data-parallel Workers (one core each). Unset, it is 2
 * on a machine with two or more cores when the batch has at least 32 rows (measured 1.3-2.0x faster at
 * 32 x 128 on an idle 2-core machine), else 1; but 1 for full fine-tuning on OpenBLAS, whose products
 * already use both cores and whose workers would exchange every weight each step (`autoWorkers` in
 * lib/tuning/hyperparameters.ts); `--workers 1` keeps one. A run folder started earlier keeps the count it
 * was started with. Results repeat bitwise for a given worker count; dropout draws depend on it. On a
 * machine other work keeps busy, two workers can be slower than one: pass `--workers 1` there.
 *
 * Products (`--gemm`, or NORMTUNE_GEMM; docs/openblas.md): on the wasm backend the default, `auto`, runs
 * the products on OpenBLAS where it loads (`openblas`: 3-4x the wasm GEMM's speed), else on the project's
 * wasm GEMM (`wasm`), saying so; a run folder started earlier keeps the product it was started with. The
 * products give other bits, so another run identity (backend "wasm+openblas-tN", N OpenBLAS threads: 1
 * with several workers, else up to 2).
 *
 * Run again with the same arguments, it resumes from the last saved state (or, once finished, prints the
 * saved result); `--fresh` starts over.
 */
import { INIT_NAMES } from "../bert/init.ts";
import {
  HYPERPARAMETER_NAMES,
  type HyperparameterOptions,
  HYPERPARAMETERS,
} from "../tuning/hyperparameters.ts";
import { describeCounts, MODE_NAMES } from "../tuning/modes.ts";
import { finetune, type RunConfig, runPaths, type RunResult } from "../tuning/trainer.ts";
import { modelDir } from "../util/paths.ts";
import {
  backendFlag,
  type Flags,
  type FlagSpec,
  maxLenFlag,
  parseFlags,
  runGemm,
  UsageError,
} from "./flags.ts";

const SPEC = {
  model: "string",
  task: "string",
  mode: "string",
  mask: "string",
  // Every hyperparameter's flag (lib/tuning/hyperparameters.ts lists them).
  ...Object.fromEntries(
    HYPERPARAMETER_NAMES.map((name) => [HYPERPARAMETERS[name].flag, HYPERPARAMETERS[name].kind]),
  ),
  out: "string",
  "save-every": "number",
  "save-model": "boolean",
  fresh: "boolean",
  backend: "string",
  gemm: "string",
  "glue-dir": "string",
  quiet: "boolean",
} as FlagSpec;

/** The hyperparameters given as flags (unset ones are left to the trainer's defaults). */
function hyperparameterFlags(f: Flags): HyperparameterOptions {
  const out: Record<string, unknown> = {};
  for (const name of HYPERPARAMETER_NAMES) {
    const { flag, kind } = HYPERPARAMETERS[name];
    out[name] = kind === "number" ? f.optionalNumber(flag) : f.optionalString(flag);
  }
  return out as HyperparameterOptions;
}

/** The identity of the run OUT holds, unless `--fresh` discards it. */
async function savedIdentity(f: Flags): Promise<RunConfig["identity"] | undefined> {
  if (f.bool("fresh")) return undefined;
  const saved = await Deno.readTextFile(runPaths(f.string("out")).config).then(
    (text) => JSON.parse(text) as Partial<RunConfig>,
    () => undefined,
  );
  return saved?.identity;
}

/**
 * `--workers`, else the count the run in OUT was started with (so that it resumes), else
 * "auto" (`autoWorkers`: the default for the batch size, mode and product on wasm and cpu, one process on webgpu
 * and tensorflow).
 */
export async function workersFlag(
  f: Flags,
  saved: Promise<RunConfig["identity"] | undefined> = savedIdentity(f),
): Promise<number | "auto"> {
  const given = f.optionalNumber("workers");
  if (given !== undefined) return given;
  const identity = await saved;
  return identity ? identity.workers ?? 1 : "auto";
}

export async function run(args: string[]): Promise<void> {
  const f = parseFlags(args, SPEC, ["model", "task", "mode", "out"]);
  const mode = f.string("mode");
  if (!(MODE_NAMES as readonly string[]).includes(mode)) {
    throw new UsageError(`--mode ${mode} is not a tuning mode; use one of ${MODE_NAMES.join(", ")}`);
  }
  const init = f.optionalString("init");
  if (init !== undefined && !(INIT_NAMES as readonly string[]).includes(init)) {
    throw new UsageError(`--init ${init} is not an initialisation; use one of ${INIT_NAMES.join(", ")}`);
  }
  // Read once: the worker count and the product of a run that resumes both come from it.
  const saved = savedIdentity(f);
  const maxLen = f.has("max-len") ? await maxLenFlag(f, modelDir(f.string("model"))) : undefined;
  const result = await finetune({
    ...hyperparameterFlags(f),
    maxLen,
    workers: await workersFlag(f, saved),
    model: f.string("model"),
    task: f.string("task"),
    mode,
    mask: f.optionalString("mask"),
    out: f.string("out"),
    saveEvery: f.optionalNumber("save-every"),
    saveModel: f.bool("save-model"),
    fresh: f.bool("fresh"),
    backend: backendFlag(f.optionalString("backend")),
    gemm: runGemm(f.optionalString("gemm"), (await saved)?.backend),
    glueDir: f.optionalString("glue-dir"),
    quiet: f.bool("quiet"),
  });
  if (result.alreadyDone) {
    console.log(
      `${result.out}: this run is already finished; nothing to do (--fresh redoes it). Saved result:`,
    );
  }
  console.log(summary(result));
}

const fmt = (m: Record<string, number>) =>
  Object.entries(m).filter(([k]) => k !== "main").map(([k, v]) => `${k} ${v.toFixed(4)}`).join(", ");

/** The lines printed after a run. */
export function summary(r: RunResult): string {
  const m = r.metrics, id = r.config.identity;
  const last = m.epochs.at(-1);
  return [
    `${id.task} ${id.mode}${
      id.init === "random" ? " from random init" : ""
    } (lr ${id.lr}, seed ${id.seed}, ${m.steps} steps, backend ${id.backend})`,
    `  best epoch ${m.bestEpoch}/${m.epochs.length}: ${fmt(m.best)}`,
    `  final: ${fmt(m.final)}; train loss ${last ? last.trainLoss.toFixed(4) : "-"}`,
    `  ${describeCounts(m.trainable)}`,
    `  time: train ${m.trainSeconds.toFixed(1)} s, eval ${m.evalSeconds.toFixed(1)} s` +
    (m.resumedAt.length > 0 ? `; resumed at step ${m.resumedAt.join(", ")}` : ""),
    `  wrote ${r.deltaPath}${r.modelPath ? ` and ${r.modelPath}` : ""}`,
  ].join("\n");
}
