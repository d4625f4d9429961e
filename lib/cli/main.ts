/**
 * `deno task normtune <command> [flags]`: one thin file per command under `lib/cli/`, each exporting
 * `run(args)`. Errors go to stderr with a non-zero exit; results are written atomically by the commands.
 */
import { UsageError } from "./flags.ts";

type Command = { about: string; load: () => Promise<{ run(args: string[]): Promise<void> }> };

const COMMANDS: Record<string, Command> = {
  tokenize: {
    about: "JSON strings on stdin -> WordPiece ids (no special tokens)",
    load: () => import("./tokenize.ts"),
  },
  encode: { about: "JSON {text_a, text_b} lines -> model inputs", load: () => import("./encode.ts") },
  forward: { about: "logits, loss and gradients for encoded inputs", load: () => import("./forward.ts") },
  download: { about: "fetch a model from the Hugging Face hub", load: () => import("./download.ts") },
  glue: { about: "GLUE data: `glue download [TASK...]`", load: () => import("./glue.ts") },
};

function usage(): string {
  const width = Math.max(...Object.keys(COMMANDS).map((c) => c.length));
  return "usage: deno task normtune <command> [flags]\n\ncommands:\n" +
    Object.entries(COMMANDS).map(([name, c]) => `  ${name.padEnd(width)}  ${c.about}`).join("\n") +
    "\n\nCommon: --backend auto|tensorflow|wasm|cpu (or NORMTUNE_BACKEND).";
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
  try {
    await (await command.load()).run(rest);
    return 0;
  } catch (err) {
    const msg = err instanceof Error ? err.message : String(err);
    console.error(`normtune ${name}: ${msg}`);
    if (Deno.env.get("NORMTUNE_DEBUG") && err instanceof Error) console.error(err.stack);
    return err instanceof UsageError ? 2 : 1;
  }
}

if (import.meta.main) Deno.exit(await main(Deno.args));
