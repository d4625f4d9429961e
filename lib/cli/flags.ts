/**
 * Flag parsing shared by every command: `--name value` or `--name=value`, booleans as bare `--name`.
 * Unknown flags, missing required ones and a flag given twice (except lists) are errors that name the flag.
 *
 * ```ts
 * const f = parseFlags(args, { model: "string", "max-len": "number", fresh: "boolean" }, ["model"]);
 * f.string("model"); f.number("max-len", 128); f.bool("fresh");
 * ```
 */
import { parseArgs } from "node:util";
import { quote } from "../util/text.ts";
import { join } from "node:path";
import { maxLenProblem, readConfig } from "../bert/config.ts";
import { type GemmAsk, gemmFromEnv, gemmOfIdentity, parseGemm } from "../backend/gemm_choice.ts";
import { type BackendName, BACKENDS } from "../tf.ts";

export type FlagKind = "string" | "number" | "boolean" | "strings";
export type FlagSpec = Record<string, FlagKind>;

export class UsageError extends Error {}

/** Thrown by parseFlags on `--help`: carries the flags the command takes, for `main.ts` to print. */
export class HelpRequest extends UsageError {
  constructor(readonly spec: FlagSpec) {
    super("help requested");
  }
}

/** One line per flag: `--name <kind>`. */
export function describeFlags(spec: FlagSpec): string {
  const kinds: Record<FlagKind, string> = { string: "VALUE", number: "N", boolean: "", strings: "VALUE..." };
  return Object.entries(spec).map(([name, kind]) => `  --${name} ${kinds[kind]}`.trimEnd()).join("\n");
}

export interface Flags {
  /** Arguments that are not flags, in order. */
  positionals: string[];
  has(name: string): boolean;
  string(name: string, fallback?: string): string;
  optionalString(name: string): string | undefined;
  strings(name: string): string[];
  number(name: string, fallback?: number): number;
  optionalNumber(name: string): number | undefined;
  bool(name: string): boolean;
}

export function parseFlags(args: string[], spec: FlagSpec, required: string[] = []): Flags {
  const options: Record<string, { type: "string" | "boolean"; multiple?: boolean }> = {};
  for (const [name, kind] of Object.entries(spec)) {
    options[name] = kind === "boolean"
      ? { type: "boolean" }
      : kind === "strings"
      ? { type: "string", multiple: true }
      : { type: "string" };
  }
  if (args.includes("--help") || args.includes("-h")) throw new HelpRequest(spec);
  let parsed;
  try {
    parsed = parseArgs({ args, options, allowPositionals: true, strict: true, tokens: true });
  } catch (err) {
    throw new UsageError((err as Error).message);
  }
  // parseArgs keeps the last of `--lr 0.01 --lr 0.02`: which one was meant is unknowable, so refuse.
  const seen = new Set<string>();
  for (const t of parsed.tokens ?? []) {
    if (t.kind !== "option" || spec[t.name] === "strings") continue;
    if (seen.has(t.name)) throw new UsageError(`--${t.name} is given more than once; give it once`);
    seen.add(t.name);
  }
  const values = parsed.values as Record<string, string | string[] | boolean | undefined>;
  for (const name of required) {
    if (values[name] === undefined) throw new UsageError(`missing required flag --${name}`);
  }
  const num = (name: string): number | undefined => {
    const v = values[name];
    if (v === undefined) return undefined;
    const n = Number(v);
    if (typeof v !== "string" || v.trim() === "" || !Number.isFinite(n)) {
      throw new UsageError(`--${name} must be a number, got ${quote(v)}`);
    }
    return n;
  };
  return {
    positionals: parsed.positionals,
    has: (name) => values[name] !== undefined,
    string(name, fallback) {
      const v = values[name];
      if (typeof v === "string") return v;
      if (fallback !== undefined) return fallback;
      throw new UsageError(`missing required flag --${name}`);
    },
    optionalString: (name) => values[name] as string | undefined,
    strings: (name) => (values[name] as string[] | undefined) ?? [],
    number(name, fallback) {
      const n = num(name);
      if (n !== undefined) return n;
      if (fallback !== undefined) return fallback;
      throw new UsageError(`missing required flag --${name}`);
    },
    optionalNumber: num,
    bool: (name) => values[name] === true,
  };
}

/** Reads all of standard input as lines (without the trailing empty line). */
export async function readStdinLines(): Promise<string[]> {
  const text = await new Response(Deno.stdin.readable).text();
  const lines = text.split("\n");
  if (lines.at(-1) === "") lines.pop();
  return lines;
}

/** Reads `--backend`, checking the name. */
export function backendFlag(value: string | undefined): BackendName | undefined {
  if (value === undefined) return undefined;
  if (!(BACKENDS as readonly string[]).includes(value)) {
    throw new UsageError(`--backend ${value} is not a backend; use one of ${BACKENDS.join(", ")}`);
  }
  return value as BackendName;
}

/** Reads `--gemm` (the wasm backend's product, lib/backend/gemm_choice.ts), checking the name. */
export function gemmFlag(value: string | undefined): GemmAsk | undefined {
  if (value === undefined) return undefined;
  try {
    return parseGemm(value);
  } catch (err) {
    throw new UsageError((err as Error).message);
  }
}

/**
 * The product of a command that trains or evaluates one run: `--gemm`, else NORMTUNE_GEMM, else the one
 * `saved` names (the backend identity of the run being resumed: "wasm+openblas-t1" is openblas, so a
 * run started on one product resumes on it), else `auto`: OpenBLAS where it loads, the fastest product.
 * The study's commands keep the library's default, wasm, the product its committed cells were made on.
 */
export function runGemm(value: string | undefined, saved?: string): GemmAsk {
  const given = gemmFlag(value);
  if (given) return given;
  if (Deno.env.get("NORMTUNE_GEMM") !== undefined) return gemmFromEnv();
  if (saved !== undefined) return gemmOfIdentity(saved);
  return "auto";
}

/**
 * Reads `--max-len` (default `fallback`), checked against the model's config.json: a length the model
 * has no position embeddings for is a usage error now, not a crash at the first long batch.
 */
export async function maxLenFlag(f: Flags, model: string, fallback = 128): Promise<number> {
  const maxLen = f.number("max-len", fallback);
  const problem = maxLenProblem(maxLen, await readConfig(join(model, "config.json")));
  if (problem) throw new UsageError(`--max-len ${problem} (${model})`);
  return maxLen;
}
