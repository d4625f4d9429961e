/**
 * OpenBLAS's `cblas_sgemm` through Deno FFI, run directly on tfjs-wasm's heap with the operand description
 * of `Io.product` (lib/backend/kernel_io.ts): the product `--gemm openblas` chooses
 * (lib/backend/gemm_choice.ts; docs/openblas.md).
 *
 * FFI reads and writes the wasm heap in place: a pointer to the start of the memory's current ArrayBuffer
 * (`Deno.UnsafePointer.of`), offset by a tensor's byte address. The buffer is taken again at every call,
 * since growing the heap replaces it. Calls are synchronous, and must stay so (no `nonblocking`): the
 * product finishes before JavaScript can touch, free or grow the heap again. Needs `--allow-ffi` (or -A).
 *
 * CBLAS takes a matrix with one unit stride: a row-major operand (element stride 1 along a row, any row
 * stride at least its width) or a transposed one (unit row stride). Every operand of the fused kernels
 * has this form (whole tensors, their transposes, one head's columns); for any other `blasProduct` returns
 * false and the caller runs the SIMD product. Operands are checked against their tensors by the caller
 * (lib/backend/operand_bounds.ts) and against the heap here: FFI has no wasm trap to stop a wild write.
 *
 * ```ts
 * const blas = loadOpenBlas(); // throws, naming the paths tried, where no OpenBLAS loads
 * blas.setThreads(1);
 * blasProduct(blas, backend, a, b, c, m, k, n, alpha, bias); // false: not a CBLAS layout
 * ```
 */
import type { AnyBackend, Mat, Out, TI } from "./kernel_io.ts";
import { heapMemory } from "./simd_gemm.ts";

/** Shared-library names tried in order (Debian/Ubuntu's alternatives link first, then common installs). */
export const OPENBLAS_PATHS: readonly string[] = [
  "/usr/lib/x86_64-linux-gnu/libopenblas.so.0",
  "/usr/lib/x86_64-linux-gnu/openblas-pthread/libopenblas.so.0",
  "/usr/lib/aarch64-linux-gnu/libopenblas.so.0",
  "/usr/lib/aarch64-linux-gnu/openblas-pthread/libopenblas.so.0",
  "/usr/lib64/libopenblas.so.0",
  "/usr/lib/libopenblas.so.0",
  "/usr/local/lib/libopenblas.so.0",
  "/opt/homebrew/opt/openblas/lib/libopenblas.dylib",
  "/usr/local/opt/openblas/lib/libopenblas.dylib",
  "libopenblas.so.0",
];

/** The paths to try: `NORMTUNE_OPENBLAS` (one library file) where set, else `OPENBLAS_PATHS`. */
export function openBlasPaths(): readonly string[] {
  const own = Deno.env.get("NORMTUNE_OPENBLAS");
  return own ? [own] : OPENBLAS_PATHS;
}

// CBLAS enumerations.
const ROW_MAJOR = 101, NO_TRANS = 111, TRANS = 112;

const SYMBOLS = {
  cblas_sgemm: {
    parameters: [
      "i32", // order
      "i32", // transA
      "i32", // transB
      "i32", // M
      "i32", // N
      "i32", // K
      "f32", // alpha
      "pointer", // A
      "i32", // lda
      "pointer", // B
      "i32", // ldb
      "f32", // beta
      "pointer", // C
      "i32", // ldc
    ],
    result: "void",
  },
  openblas_set_num_threads: { parameters: ["i32"], result: "void" },
  openblas_get_num_threads: { parameters: [], result: "i32" },
  openblas_get_config: { parameters: [], result: "pointer" },
  openblas_get_corename: { parameters: [], result: "pointer" },
} as const;

type Lib = Deno.DynamicLibrary<typeof SYMBOLS>;

/** A loaded OpenBLAS. */
export interface OpenBlas {
  /** The file it was loaded from. */
  path: string;
  /** Build configuration, e.g. "OpenBLAS 0.3.21 DYNAMIC_ARCH NO_AFFINITY Zen MAX_THREADS=64". */
  config: string;
  /** The core its kernels were chosen for at load (DYNAMIC_ARCH), e.g. "Zen". */
  corename: string;
  /** Threads of every following call (process-wide: OpenBLAS has one thread pool per process). */
  setThreads(n: number): void;
  threads(): number;
  /** The raw binding. */
  sgemm: Lib["symbols"]["cblas_sgemm"];
}

/** Libraries loaded by this isolate, by path (never closed: kernels may call them until the end). */
const loaded = new Map<string, OpenBlas>();

/**
 * OpenBLAS from the first of `paths` that loads; an error naming every path tried, and why it failed,
 * where none does (not installed, not OpenBLAS, or no FFI permission). `threads`, on the process's first
 * load, becomes OPENBLAS_NUM_THREADS, which OpenBLAS reads once when loaded: it then starts no more pool
 * threads than that (the count can still be changed with `setThreads`).
 */
export function loadOpenBlas(paths: readonly string[] = openBlasPaths(), threads?: number): OpenBlas {
  for (const path of paths) {
    const have = loaded.get(path);
    if (have) return have;
  }
  const failures: string[] = [];
  for (const path of paths) {
    let lib: Lib;
    try {
      if (threads !== undefined && loaded.size === 0) Deno.env.set("OPENBLAS_NUM_THREADS", String(threads));
      lib = Deno.dlopen(path, SYMBOLS);
    } catch (err) {
      failures.push(`${path} (${String((err as Error).message ?? err).split("\n")[0]})`);
      continue;
    }
    const s = lib.symbols;
    const cString = (p: Deno.PointerValue) => (p ? Deno.UnsafePointerView.getCString(p) : "");
    const blas: OpenBlas = {
      path,
      config: cString(s.openblas_get_config()).trim(),
      corename: cString(s.openblas_get_corename()).trim(),
      setThreads: (n) => s.openblas_set_num_threads(n),
      threads: () => s.openblas_get_num_threads(),
      sgemm: s.cblas_sgemm,
    };
    loaded.set(path, blas);
    return blas;
  }
  throw new Error(
    `OpenBLAS could not be loaded; tried ${failures.join(", ")}. Install it (Debian/Ubuntu: ` +
      "apt-get install libopenblas0-pthread; tools/setup.sh does), set NORMTUNE_OPENBLAS to the library " +
      "file, or use the wasm product (--gemm wasm)",
  );
}

/**
 * How CBLAS reads a [rows, cols] operand with element (i, j) at `off + i rs + j cs`: untransposed with
 * leading dimension `rs`, or transposed with `cs`; undefined where neither stride is a unit one.
 */
export function blasLayout(
  rs: number,
  cs: number,
  rows: number,
  cols: number,
): { trans: boolean; ld: number } | undefined {
  // A unit stride along a length-1 dimension says nothing: the other one decides.
  if (cs === 1 && (rows === 1 || rs >= cols)) {
    return { trans: false, ld: Math.max(rows === 1 ? cols : rs, 1) };
  }
  if (rs === 1 && (cols === 1 || cs >= rows)) return { trans: true, ld: Math.max(cols === 1 ? rows : cs, 1) };
  if (cols === 1 && rs >= 1) return { trans: false, ld: rs }; // a column, rows at any positive stride
  if (rows === 1 && cs >= 1) return { trans: true, ld: cs }; // a row, elements at any positive stride
  return undefined;
}

/** Byte address of element `off` of `t` on the wasm heap. */
function address(backend: AnyBackend, t: TI, off = 0): number {
  return (backend.dataIdMap.get(t.dataId).memoryOffset as number) + 4 * off;
}

/** Throws unless elements [first, last] of `t` lie inside the heap (`bytes` long). */
function insideHeap(backend: AnyBackend, t: TI, first: number, last: number, bytes: number, what: string) {
  const lo = address(backend, t, first), hi = address(backend, t, last) + 4;
  if (!(lo >= 0 && hi <= bytes)) {
    throw new RangeError(`OpenBLAS product: ${what} spans bytes ${lo}..${hi} outside the ${bytes}-byte heap`);
  }
}

/**
 * C[m, n] = alpha A[m, k] B[k, n] (+ bias[n]) with `cblas_sgemm` on the heap of `backend` (wasm), as
 * `Io.product` computes it. Returns false (and writes nothing) where an operand's strides are not a
 * CBLAS layout or the backend has no exported heap. The caller has checked every operand against its
 * tensor; each is checked against the heap here.
 */
export function blasProduct(
  blas: OpenBlas,
  backend: AnyBackend,
  a: Mat,
  b: Mat,
  c: Out,
  m: number,
  k: number,
  n: number,
  alpha = 1,
  bias?: TI,
): boolean {
  const la = blasLayout(a.rs, a.cs, m, k), lb = blasLayout(b.rs, b.cs, k, n);
  if (!la || !lb || (c.ld < n && m > 1)) return false;
  const memory = heapMemory(backend.wasm);
  if (!memory) return false;
  if (m === 0 || n === 0) return true;
  const bytes = memory.buffer.byteLength;
  insideHeap(backend, c.t, c.off, c.off + (m - 1) * c.ld + n - 1, bytes, "C");
  if (k > 0) {
    insideHeap(backend, a.t, a.off, a.off + (m - 1) * a.rs + (k - 1) * a.cs, bytes, "A");
    insideHeap(backend, b.t, b.off, b.off + (k - 1) * b.rs + (n - 1) * b.cs, bytes, "B");
  }
  let beta = 0;
  const cAt = address(backend, c.t, c.off) / 4;
  if (bias) {
    insideHeap(backend, bias, 0, n - 1, bytes, "the bias");
    // C starts as the bias in every row; the product adds to it (beta 1): C = alpha A B + bias.
    const heap = new Float32Array(memory.buffer);
    const bAt = address(backend, bias) / 4;
    const row = heap.subarray(bAt, bAt + n);
    for (let i = 0; i < m; i++) heap.set(row, cAt + i * c.ld);
    beta = 1;
  }
  if (k === 0) {
    // CBLAS would leave C as beta C: the empty product is 0 (plus the bias, already there).
    if (!bias) {
      const heap = new Float32Array(memory.buffer);
      for (let i = 0; i < m; i++) heap.fill(0, cAt + i * c.ld, cAt + i * c.ld + n);
    }
    return true;
  }
  // Taken after any JavaScript above, right before the call: the heap cannot move during it.
  const base = Deno.UnsafePointer.of(new Uint8Array(memory.buffer));
  const at = (t: TI, off: number) => Deno.UnsafePointer.offset(base!, address(backend, t, off));
  blas.sgemm(
    ROW_MAJOR,
    la.trans ? TRANS : NO_TRANS,
    lb.trans ? TRANS : NO_TRANS,
    m,
    n,
    k,
    alpha,
    at(a.t, a.off),
    la.ld,
    at(b.t, b.off),
    lb.ld,
    beta,
    at(c.t, c.off),
    Math.max(c.ld, n, 1),
  );
  return true;
}
