/**
 * A restricted reader of Python pickles (binary protocols 2-5, what `torch.save` writes), for
 * `pytorch_model.bin`. A pickle is a small stack program whose GLOBAL/STACK_GLOBAL opcodes name any Python
 * callable and whose REDUCE/NEWOBJ/BUILD opcodes call it: Python's own unpickler therefore runs whatever a
 * file names (`os.system`, `builtins.eval`, ...). This reader builds only plain data (None, bools, numbers,
 * strings, bytes, lists, tuples, dicts) and the globals its caller allows by exact `module.name`; every
 * other global is refused with an error naming it, before anything uses it. Nothing is ever evaluated.
 *
 * ```ts
 * const value = unpickle(bytes, "f.pkl", {
 *   globals: new Map([["collections.OrderedDict", { call: () => new Map() }]]),
 * });
 * ```
 */

/** A Python tuple (lists are plain arrays, dicts are Maps). */
export class PyTuple {
  constructor(readonly items: unknown[]) {}
}

/** A global the caller allowed, as GLOBAL/STACK_GLOBAL push it. */
export class PyGlobal {
  constructor(readonly module: string, readonly name: string, readonly handler: GlobalHandler) {}
  get qualified(): string {
    return `${this.module}.${this.name}`;
  }
}

/** What an allowed global may do: be called (REDUCE, NEWOBJ) with its arguments; else it is only a value. */
export interface GlobalHandler {
  call?: (args: unknown[]) => unknown;
}

export interface UnpickleOptions {
  /** Allowed globals by `module.name`; any other is refused. */
  globals: ReadonlyMap<string, GlobalHandler>;
  /** Resolves BINPERSID ids (torch: storages); without it they are refused. */
  persistentLoad?: (pid: unknown) => unknown;
}

/** Opcode names for the errors about opcodes this reader does not run (text protocol 0, extensions). */
const UNSUPPORTED: Record<number, string> = {
  0x49: "INT",
  0x4c: "LONG",
  0x46: "FLOAT",
  0x53: "STRING",
  0x56: "UNICODE",
  0x50: "PERSID",
  0x70: "PUT",
  0x67: "GET",
  0x6f: "OBJ",
  0x82: "EXT1",
  0x83: "EXT2",
  0x84: "EXT4",
  0x92: "NEWOBJ_EX",
  0x8f: "EMPTY_SET",
  0x90: "ADDITEMS",
  0x91: "FROZENSET",
  0x96: "BYTEARRAY8",
  0x97: "NEXT_BUFFER",
  0x98: "READONLY_BUFFER",
};

/** Runs the pickle in `bytes` and returns the value STOP leaves. `source` names the pickle in errors. */
export function unpickle(bytes: Uint8Array, source: string, opts: UnpickleOptions): unknown {
  return unpickleAt(bytes, 0, source, opts).value;
}

/**
 * Runs the pickle starting at `start` (files such as torch's legacy format hold several in a row) and
 * returns its value and the offset just past its STOP.
 */
export function unpickleAt(
  bytes: Uint8Array,
  start: number,
  source: string,
  opts: UnpickleOptions,
): { value: unknown; end: number } {
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const utf8 = new TextDecoder("utf-8", { fatal: true });
  let stack: unknown[] = [];
  const marks: unknown[][] = [];
  const memo = new Map<number, unknown>();
  let pos = start;
  let at = 0; // offset of the current opcode, for errors

  const fail = (msg: string): never => {
    throw new Error(`${source}: ${msg} (pickle byte ${at})`);
  };
  const need = (n: number): number => {
    if (pos + n > bytes.length) fail(`truncated: needs ${n} more byte(s)`);
    const p = pos;
    pos += n;
    return p;
  };
  const u8 = () => bytes[need(1)];
  const u16 = () => view.getUint16(need(2), true);
  const u32 = () => view.getUint32(need(4), true);
  const u64 = (): number => {
    const v = view.getBigUint64(need(8), true);
    if (v > BigInt(Number.MAX_SAFE_INTEGER)) fail(`length ${v} is too large`);
    return Number(v);
  };
  const take = (n: number) => bytes.subarray(need(n), pos);
  const text = (n: number): string => {
    const raw = take(n);
    try {
      return utf8.decode(raw);
    } catch {
      return fail("string is not valid UTF-8");
    }
  };
  const pop = (): unknown => {
    if (stack.length === 0) fail("stack underflow");
    return stack.pop();
  };
  const top = (): unknown => {
    if (stack.length === 0) fail("stack underflow");
    return stack[stack.length - 1];
  };
  const popMark = (): unknown[] => {
    const items = stack;
    const outer = marks.pop();
    if (outer === undefined) fail("no MARK to pop to");
    stack = outer!;
    return items;
  };
  const resolveGlobal = (module: string, name: string): PyGlobal => {
    const handler = opts.globals.get(`${module}.${name}`);
    if (handler === undefined) {
      const allowed = [...opts.globals.keys()];
      const list = allowed.length > 3
        ? `${allowed.slice(0, 3).join(", ")} and ${allowed.length - 3} more`
        : allowed.join(", ");
      fail(
        `refusing pickle global "${module}.${name}": not one of the globals allowed here (${list}); ` +
          `nothing was run`,
      );
    }
    return new PyGlobal(module, name, handler!);
  };
  const callGlobal = (fn: unknown, args: unknown, op: string): unknown => {
    if (!(fn instanceof PyGlobal)) return fail(`${op} of a ${describe(fn)}, not an allowed global`);
    if (!fn.handler.call) return fail(`${op}: "${fn.qualified}" may appear but not be called`);
    if (!(args instanceof PyTuple)) return fail(`${op} of "${fn.qualified}": arguments are not a tuple`);
    try {
      return fn.handler.call(args.items);
    } catch (err) {
      return fail(`${fn.qualified}: ${(err as Error).message}`);
    }
  };
  const setItems = (dict: unknown, items: unknown[]): void => {
    if (!(dict instanceof Map)) fail(`SETITEM(S) on a ${describe(dict)}, not a dict`);
    if (items.length % 2 !== 0) fail("SETITEMS with an odd number of items");
    for (let i = 0; i < items.length; i += 2) (dict as Map<unknown, unknown>).set(items[i], items[i + 1]);
  };
  const appendItems = (list: unknown, items: unknown[]): void => {
    if (!Array.isArray(list)) fail(`APPEND(S) on a ${describe(list)}, not a list`);
    for (const item of items) (list as unknown[]).push(item);
  };
  // Python ints of any size: a number when a double holds it exactly, else a bigint (torch's magic number).
  const long = (n: number): number | bigint => {
    const b = take(n);
    let v = 0n;
    for (let i = n - 1; i >= 0; i--) v = (v << 8n) | BigInt(b[i]);
    if (n > 0 && b[n - 1] & 0x80) v -= 1n << BigInt(8 * n); // two's complement
    const safe = v <= BigInt(Number.MAX_SAFE_INTEGER) && v >= BigInt(Number.MIN_SAFE_INTEGER);
    return safe ? Number(v) : v;
  };

  while (true) {
    at = pos;
    const op = u8();
    switch (op) {
      case 0x80: // PROTO
        if (u8() > 5) fail("pickle protocol above 5");
        break;
      case 0x95: // FRAME: a length prefix only
        u64();
        break;
      case 0x2e: { // STOP
        const value = pop();
        if (marks.length > 0) fail("STOP inside an unclosed MARK");
        return { value, end: pos };
      }
      case 0x28: // MARK
        marks.push(stack);
        stack = [];
        break;
      case 0x30: // POP
        pop();
        break;
      case 0x31: // POP_MARK
        popMark();
        break;
      case 0x32: // DUP
        stack.push(top());
        break;
      case 0x4e: // NONE
        stack.push(null);
        break;
      case 0x88: // NEWTRUE
        stack.push(true);
        break;
      case 0x89: // NEWFALSE
        stack.push(false);
        break;
      case 0x4a: // BININT
        stack.push(view.getInt32(need(4), true));
        break;
      case 0x4b: // BININT1
        stack.push(u8());
        break;
      case 0x4d: // BININT2
        stack.push(u16());
        break;
      case 0x8a: // LONG1
        stack.push(long(u8()));
        break;
      case 0x8b: { // LONG4
        const n = view.getInt32(need(4), true);
        if (n < 0 || n > 64) fail(`LONG4 of ${n} bytes`);
        stack.push(long(n));
        break;
      }
      case 0x47: // BINFLOAT (big-endian)
        stack.push(view.getFloat64(need(8), false));
        break;
      case 0x58: // BINUNICODE
        stack.push(text(u32()));
        break;
      case 0x8c: // SHORT_BINUNICODE
        stack.push(text(u8()));
        break;
      case 0x8d: // BINUNICODE8
        stack.push(text(u64()));
        break;
      case 0x54: // BINSTRING (Python 2 str): bytes as Latin-1
        stack.push(latin1(take(view.getInt32(need(4), true))));
        break;
      case 0x55: // SHORT_BINSTRING
        stack.push(latin1(take(u8())));
        break;
      case 0x42: // BINBYTES
        stack.push(take(u32()).slice());
        break;
      case 0x43: // SHORT_BINBYTES
        stack.push(take(u8()).slice());
        break;
      case 0x8e: // BINBYTES8
        stack.push(take(u64()).slice());
        break;
      case 0x29: // EMPTY_TUPLE
        stack.push(new PyTuple([]));
        break;
      case 0x85: // TUPLE1
        stack.push(new PyTuple([pop()]));
        break;
      case 0x86: { // TUPLE2
        const b = pop(), a = pop();
        stack.push(new PyTuple([a, b]));
        break;
      }
      case 0x87: { // TUPLE3
        const c = pop(), b = pop(), a = pop();
        stack.push(new PyTuple([a, b, c]));
        break;
      }
      case 0x74: { // TUPLE (popMark first: it replaces `stack`)
        const items = popMark();
        stack.push(new PyTuple(items));
        break;
      }
      case 0x5d: // EMPTY_LIST
        stack.push([]);
        break;
      case 0x6c: { // LIST
        const items = popMark();
        stack.push(items);
        break;
      }
      case 0x7d: // EMPTY_DICT
        stack.push(new Map());
        break;
      case 0x64: { // DICT
        const d = new Map();
        setItems(d, popMark());
        stack.push(d);
        break;
      }
      case 0x61: { // APPEND
        const item = pop();
        appendItems(top(), [item]);
        break;
      }
      case 0x65: { // APPENDS
        const items = popMark();
        appendItems(top(), items);
        break;
      }
      case 0x73: { // SETITEM
        const v = pop(), k = pop();
        setItems(top(), [k, v]);
        break;
      }
      case 0x75: { // SETITEMS
        const items = popMark();
        setItems(top(), items);
        break;
      }
      case 0x71: // BINPUT
        memo.set(u8(), top());
        break;
      case 0x72: // LONG_BINPUT
        memo.set(u32(), top());
        break;
      case 0x94: // MEMOIZE
        memo.set(memo.size, top());
        break;
      case 0x68: // BINGET
      case 0x6a: { // LONG_BINGET
        const key = op === 0x68 ? u8() : u32();
        if (!memo.has(key)) fail(`memo entry ${key} was never stored`);
        stack.push(memo.get(key));
        break;
      }
      case 0x63: { // GLOBAL "module\nname\n"
        const line = () => {
          const end = bytes.indexOf(0x0a, pos);
          if (end < 0) fail("GLOBAL without a newline");
          return text(end - pos + 1).slice(0, -1);
        };
        const module = line();
        stack.push(resolveGlobal(module, line()));
        break;
      }
      case 0x93: { // STACK_GLOBAL
        const name = pop(), module = pop();
        if (typeof module !== "string" || typeof name !== "string") fail("STACK_GLOBAL of non-strings");
        stack.push(resolveGlobal(module as string, name as string));
        break;
      }
      case 0x69: { // INST "module\nname\n": instantiates a class; refused unless allowed (never is)
        const end1 = bytes.indexOf(0x0a, pos);
        const end2 = end1 < 0 ? -1 : bytes.indexOf(0x0a, end1 + 1);
        if (end2 < 0) fail("INST without two newlines");
        const module = text(end1 - pos + 1).slice(0, -1);
        resolveGlobal(module, text(end2 - pos + 1).slice(0, -1));
        fail("INST (protocol 0 instantiation) is not supported");
        break;
      }
      case 0x52: { // REDUCE: callable(*args)
        const args = pop(), fn = pop();
        stack.push(callGlobal(fn, args, "REDUCE"));
        break;
      }
      case 0x81: { // NEWOBJ: cls.__new__(cls, *args)
        const args = pop(), cls = pop();
        stack.push(callGlobal(cls, args, "NEWOBJ"));
        break;
      }
      case 0x62: { // BUILD: sets state on the object below it
        const state = pop();
        const obj = top();
        // Only dicts (OrderedDict) get a state here: torch state dicts carry a `_metadata` attribute,
        // which is not a tensor and is dropped. Anything else would need __setstate__: refused.
        if (!(obj instanceof Map) || !(state instanceof Map || state === null)) {
          fail(`BUILD of a ${describe(obj)} with a ${describe(state)}: not supported`);
        }
        break;
      }
      case 0x51: { // BINPERSID
        const pid = pop();
        if (!opts.persistentLoad) fail("persistent ids are not allowed in this pickle");
        try {
          stack.push(opts.persistentLoad!(pid));
        } catch (err) {
          fail((err as Error).message);
        }
        break;
      }
      default:
        fail(
          UNSUPPORTED[op]
            ? `pickle opcode ${UNSUPPORTED[op]} is not supported`
            : `unknown pickle opcode 0x${op.toString(16).padStart(2, "0")}: not a pickle, or a corrupt one`,
        );
    }
  }
}

function latin1(b: Uint8Array): string {
  let s = "";
  for (const c of b) s += String.fromCharCode(c);
  return s;
}

/** A short description of a value for errors. */
export function describe(v: unknown): string {
  if (v === null) return "None";
  if (v instanceof PyTuple) return `tuple of ${v.items.length}`;
  if (v instanceof PyGlobal) return `global ${v.qualified}`;
  if (v instanceof Map) return "dict";
  if (Array.isArray(v)) return "list";
  if (v instanceof Uint8Array) return "bytes";
  if (typeof v === "bigint") return "int";
  if (typeof v === "object") return (v as object).constructor?.name ?? "object";
  return typeof v;
}
