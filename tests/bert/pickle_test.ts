/**
 * The restricted unpickler: plain data comes out as Python builds it, allowed globals are called only
 * through their handlers, and every other global is refused by name before anything can use it.
 */
import assert from "node:assert/strict";
import { PyGlobal, PyTuple, unpickle } from "../../lib/bert/pickle.ts";
import { PickleWriter } from "./pickle_writer.ts";

const none = { globals: new Map() };

Deno.test("plain data: ints of every width, floats, strings, bytes, lists, tuples, dicts, memo", () => {
  // {"a": [1, -2, 300, 2**40, -129], "b": (1.5, "héllo", b"\x01\x02", None, True), "c": <memo of the list>}
  const p = new PickleWriter().op(0x7d).op(0x71, 0).mark(); // EMPTY_DICT, BINPUT 0, MARK
  p.str("a").op(0x5d).op(0x71, 1).mark(); // EMPTY_LIST, BINPUT 1, MARK
  p.op(0x4b, 1).int(-2).op(0x4d, 0x2c, 0x01); // BININT1 1, BININT -2, BININT2 300
  p.op(0x8a, 6, 0, 0, 0, 0, 0, 1); // LONG1 2**40
  p.op(0x8a, 2, 0x7f, 0xff); // LONG1 -129
  p.op(0x8a, 9, 0, 0, 0, 0, 0, 0, 0, 0, 1); // LONG1 2**64: beyond a double's integers, so a bigint
  p.op(0x65); // APPENDS
  p.str("b").mark();
  p.op(0x47, 0x3f, 0xf8, 0, 0, 0, 0, 0, 0); // BINFLOAT 1.5 (big-endian)
  p.op(0x8c, 6, ...new TextEncoder().encode("héllo")); // SHORT_BINUNICODE
  p.op(0x43, 2, 1, 2); // SHORT_BINBYTES
  p.op(0x4e, 0x88).tuple(); // NONE, NEWTRUE, TUPLE
  p.str("c").op(0x68, 1); // BINGET 1
  p.op(0x75); // SETITEMS
  const value = unpickle(p.bytes(), "t.pkl", none) as Map<string, unknown>;
  const list = [1, -2, 300, 2 ** 40, -129, 2n ** 64n];
  assert.deepEqual(value.get("a"), list);
  assert.deepEqual(value.get("b"), new PyTuple([1.5, "héllo", new Uint8Array([1, 2]), null, true]));
  assert.equal(value.get("c"), value.get("a"), "the memo returns the same list object");
});

Deno.test("a forbidden global is refused by name, whichever opcode names it", () => {
  const cases: [PickleWriter, RegExp][] = [
    // os.system("...") through GLOBAL + REDUCE, as a malicious __reduce__ pickles it
    [new PickleWriter().global("posix", "system").str("touch /tmp/x").op(0x85).reduce(), /"posix\.system"/],
    // builtins.eval through STACK_GLOBAL (protocol 4)
    [
      new PickleWriter().op(0x8c, 8).op(...new TextEncoder().encode("builtins")).op(0x8c, 4)
        .op(...new TextEncoder().encode("eval")).op(0x93),
      /"builtins\.eval"/,
    ],
    // INST (protocol 0) instantiates a class named inline
    [
      new PickleWriter().mark().op(0x69, ...new TextEncoder().encode("subprocess\nPopen\n")),
      /"subprocess\.Popen"/,
    ],
  ];
  const globals = new Map([["collections.OrderedDict", { call: () => new Map() }]]);
  for (const [p, name] of cases) {
    assert.throws(() => unpickle(p.bytes(), "evil.pkl", { globals }), (err: Error) => {
      assert.match(err.message, /^evil\.pkl: refusing pickle global /);
      assert.match(err.message, name);
      assert.match(
        err.message,
        /not one of the globals allowed here \(collections\.OrderedDict\); nothing was run/,
      );
      return true;
    });
  }
});

Deno.test("allowed globals: called only through their handler; a marker global cannot be called", () => {
  const calls: unknown[][] = [];
  const globals = new Map([
    ["m.make", { call: (args: unknown[]) => (calls.push(args), "made") }],
    ["m.Marker", {}],
  ]);
  const made = new PickleWriter().global("m", "make").int(7).str("x").op(0x86).reduce().bytes();
  assert.equal(unpickle(made, "ok.pkl", { globals }), "made");
  assert.deepEqual(calls, [[7, "x"]]);
  const marker = unpickle(new PickleWriter().global("m", "Marker").bytes(), "ok.pkl", { globals });
  assert.ok(marker instanceof PyGlobal && marker.qualified === "m.Marker");
  assert.throws(
    () => unpickle(new PickleWriter().global("m", "Marker").op(0x29).reduce().bytes(), "m.pkl", { globals }),
    /m\.pkl: REDUCE: "m\.Marker" may appear but not be called \(pickle byte \d+\)/,
  );
  assert.throws(
    () => unpickle(new PickleWriter().str("f").op(0x29).reduce().bytes(), "m.pkl", { globals }),
    /REDUCE of a string, not an allowed global/,
  );
});

Deno.test("malformed pickles fail with the byte offset: truncation, underflow, unknown opcodes, bad memo", () => {
  const bad: [number[], RegExp][] = [
    [[0x80, 2, 0x58, 10, 0, 0, 0, 0x61], /truncated: needs 10 more byte\(s\) \(pickle byte 2\)/],
    [[0x80, 2, 0x2e], /stack underflow \(pickle byte 2\)/],
    [[0x80, 2, 0xff], /unknown pickle opcode 0xff: not a pickle, or a corrupt one \(pickle byte 2\)/],
    [[0x80, 2, 0x49, 0x31, 0x0a], /pickle opcode INT is not supported/],
    [[0x80, 2, 0x68, 9], /memo entry 9 was never stored/],
    [[0x80, 2, 0x51, 0x2e], /stack underflow/],
    [[0x80, 2, 0x4e, 0x51, 0x2e], /persistent ids are not allowed in this pickle/],
    [[0x80, 2, 0x28, 0x4e, 0x2e], /STOP inside an unclosed MARK/],
  ];
  for (const [bytes, re] of bad) {
    assert.throws(() => unpickle(new Uint8Array(bytes), "bad.pkl", none), re, JSON.stringify(bytes));
  }
});
