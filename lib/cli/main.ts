/**
 * `deno task normtune <command> [flags]`: one thin file per command under `lib/cli/`, each exporting
 * `run(args)`. Errors go to stderr with a non-zero exit; results are written atomically by the commands.
 */
import { describeFlags, HelpRequest, UsageError } from "./flags.ts";
import { exitWhenDone } from "../util/exit.ts";

/** `file` is the command's module in this folder; its top doc comment is its `--help` text. */
type Command = { about: string; file: string };

async function load(command: Command): Promise<{ run(args: string[]): Promise<void> }> {
  return await import(new URL(command.file, import.meta.url).href);
}

/** The command's own documentation: the first block comment of its module, without the stars. */
export async function help(command: Command): Promise<string> {
  const source = await Deno.readTextFile(new URL(command.file, import.meta.url));
  const doc = source.match(/\/\*\*([\s\S]*?)\*\//)?.[1] ?? command.about;
  return doc.split("\n").map((line) => line.replace(/^\s*\* ?/, "")).join("\n").trim();
}

export const COMMANDS: Record<string, Command> = {
  tokenize: {
    about: "JSON strings on stdin -> WordPiece ids (no special tokens)",
    file: "tokenize.ts",
  },
  encode: { about: "JSON {text_a, text_b} lines -> model inputs", file: "encode.ts" },
  forward: { about: "logits, loss and gradients for encoded inputs", file: "forward.ts" },
  download: { about: "fetch a model from the Hugging Face hub", file: "download.ts" },
  glue: { about: "GLUE data: `glue download [TASK...]`", file: "glue.ts" },
  report: { about: "notebooks -> HTML reports (`report [--execute]`)", file: "report.ts" },
  finetune: { about: "fine-tune what --mode selects on a GLUE task", file: "finetune.ts" },
  evaluate: { about: "score a model (or base + --delta) on GLUE", file: "evaluate.ts" },
  "apply-delta": { about: "base model + run delta -> checkpoint", file: "apply_delta.ts" },
  change: {
    about: "parameter change per component between two checkpoints",
    file: "change.ts",
  },
  fisher: { about: "empirical Fisher information per parameter", file: "fisher.ts" },
  mask: {
    about: "LayerNorm masks from Fisher scores (top-k%, random, union)",
    file: "mask.ts",
  },
  grid: {
    about: "run one of the study's grids (`grid --grid NAME`, `--list`)",
    file: "grid.ts",
  },
  "run-cell": {
    about: "run one cell of a grid (`--grid NAME --index I`)",
    file: "run_cell.ts",
  },
  results: { about: "RESULTS.md: main table and the six verdicts from results", file: "results.ts" },
  reproduce: {
    about: "every grid of a profile, then notebooks -> reports/",
    file: "reproduce.ts",
  },
};

function usage(): string {
  const width = Math.max(...Object.keys(COMMANDS).map((c) => c.length));
  return "usage: deno task normtune <command> [flags]\n\ncommands:\n" +
    Object.entries(COMMANDS).map(([name, c]) => `  ${name.padEnd(width)}  ${c.about}`).join("\n") +
    "\n\nCommon: --backend auto|tensorflow|wasm|cpu (or NORMTUNE_BACKEND); on wasm, --gemm auto|wasm|openblas " +
    "(or NORMTUNE_GEMM; docs/openblas.md): auto (OpenBLAS where it loads) for one run's commands, wasm for " +
    "the study's.";
}

export async function main(argv: string[]): Promise<number> {
  const [name, ...rest] = argv;
  if (!name || name === "help" || name === "--help" || name === "-h") {
    console.log(usage());
    return name ? 0 : 2;
  }
  const command = COMMANDS[name];
  if (!command) {
    console.error(`normtune: unknown command "${name}"\n\n${usage()}`);
    return 2;
  }
  if (rest.includes("--help") || rest.includes("-h")) {
    console.log(await help(command));
    try {
      await (await load(command)).run(["--help"]);
    } catch (err) {
      if (err instanceof HelpRequest) console.log(`\nflags:\n${describeFlags(err.spec)}`);
    }
    return 0;
  }
  try {
    await (await load(command)).run(rest);
    return 0;
  } catch (err) {
    const msg = err instanceof Error ? err.message : String(err);
    console.error(`normtune ${name}: ${msg}`);
    if (Deno.env.get("NORMTUNE_DEBUG") && err instanceof Error) console.error(err.stack);
    return err instanceof UsageError ? 2 : 1;
  }
}

if (import.meta.main) exitWhenDone(await main(Deno.args));
