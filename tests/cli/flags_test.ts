import assert from "node:assert/strict";
import { parseFlags, runGemm, UsageError } from "../../lib/cli/flags.ts";

const SPEC = { lr: "number", out: "string", fresh: "boolean", tasks: "strings" } as const;

Deno.test("flags: values, booleans and lists as given", () => {
  const f = parseFlags(["--lr", "0.01", "--out=x", "--fresh", "--tasks", "a", "--tasks", "b", "pos"], SPEC);
  assert.equal(f.number("lr"), 0.01);
  assert.equal(f.string("out"), "x");
  assert.equal(f.bool("fresh"), true);
  assert.deepEqual(f.strings("tasks"), ["a", "b"], "a list flag may repeat");
  assert.deepEqual(f.positionals, ["pos"]);
});

Deno.test("flags: a flag given twice is a usage error naming it, whatever the form", () => {
  for (
    const args of [
      ["--lr", "0.01", "--lr", "0.02"],
      ["--lr=0.01", "--lr", "0.02"],
      ["--out", "a", "--out=a"],
      ["--fresh", "--fresh"],
    ]
  ) {
    const name = args[0].replace(/^--/, "").replace(/=.*/, "");
    assert.throws(
      () => parseFlags(args, SPEC),
      (err: Error) =>
        err instanceof UsageError && err.message === `--${name} is given more than once; give it once`,
      args.join(" "),
    );
  }
});

Deno.test("flags: a long bad value is cut in the message", () => {
  assert.throws(
    () => parseFlags(["--lr", "x".repeat(100_000)], SPEC).number("lr"),
    (err: Error) =>
      err instanceof UsageError &&
      /^--lr must be a number, got "x+… \(100000 characters\)$/.test(err.message) && err.message.length < 200,
  );
});

Deno.test("runGemm: the flag, else NORMTUNE_GEMM, else the resumed run's product, else auto", () => {
  const saved = Deno.env.get("NORMTUNE_GEMM");
  try {
    Deno.env.delete("NORMTUNE_GEMM");
    assert.equal(runGemm(undefined), "auto");
    assert.equal(runGemm(undefined, "wasm+openblas-t2"), "openblas");
    assert.equal(runGemm(undefined, "wasm"), "wasm");
    assert.equal(runGemm(undefined, "cpu"), "wasm");
    assert.equal(runGemm("wasm", "wasm+openblas-t1"), "wasm");
    Deno.env.set("NORMTUNE_GEMM", "openblas");
    assert.equal(runGemm(undefined, "wasm"), "openblas");
    assert.throws(() => runGemm("blas"), /--gemm blas is not a product; use one of wasm, openblas, auto/);
  } finally {
    if (saved === undefined) Deno.env.delete("NORMTUNE_GEMM");
    else Deno.env.set("NORMTUNE_GEMM", saved);
  }
});
