import assert from "node:assert/strict";
import { parseFlags, UsageError } from "../../lib/cli/flags.ts";

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
