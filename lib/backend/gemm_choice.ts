/**
 * The product choice: which GEMM the fused kernels' products (`Io.product`, lib/backend/kernel_io.ts) run
 * on the wasm backend.
 *
 * - `wasm`: the project's relaxed-SIMD product (lib/backend/simd_gemm.ts), pure wasm. The library's and
 *   the study's default: the committed study cells were computed on it, and it needs nothing installed.
 * - `openblas`: OpenBLAS's `cblas_sgemm` through FFI on the same heap (lib/backend/blas_gemm.ts), 3-4x
 *   the wasm product's GFLOP/s. Its results differ from the wasm product's in the last bits (equally
 *   accurate), and its bits depend on OpenBLAS's thread count; so a run or cell computed with it has
 *   another identity (`gemmIdentity`). Asked for where OpenBLAS does not load, or on another backend than
 *   wasm, it is an error: never a silent fallback, since that would label wasm results as OpenBLAS ones.
 * - `auto`: openblas on the wasm backend where OpenBLAS loads, else wasm, saying why on stderr. The
 *   default of the commands that train or evaluate one run (`normtune finetune`, `evaluate`, `fisher`,
 *   `forward`: lib/cli/flags.ts `runGemm`). What it resolved to is in the identity, so it labels nothing
 *   wrongly.
 *
 * The choice is per isolate (the kernels read it at each product); data-parallel workers get the main
 * thread's (lib/parallel/engine.ts). OpenBLAS's thread count is per process, shared by the workers:
 * `blasThreads` says how many.
 *
 * ```ts
 * const s = chooseGemm("wasm", { name: "openblas", threads: 1 });
 * gemmIdentity("wasm", s); // "wasm+openblas-t1"; with the wasm product: "wasm"
 * ```
 */
import { loadOpenBlas, type OpenBlas } from "./blas_gemm.ts";

export type GemmName = "wasm" | "openblas";
export const GEMMS: readonly GemmName[] = ["wasm", "openblas"];
/** What can be asked for: a product, or `auto` (`chooseGemm` resolves it). */
export type GemmAsk = GemmName | "auto";
export const GEMM_ASKS: readonly GemmAsk[] = [...GEMMS, "auto"];

/**
 * The most OpenBLAS threads `blasThreads` gives one worker. Two, because: only the products run on the
 * threads (the rest of a step stays on the wasm backend's one thread), so more threads speed a step less
 * and less while their pool spins on cores other work could use; the project's CPU parallelism never
 * defaults to more than two anywhere else (`autoWorkers`); each count gives other bits and so another
 * identity, and two bounds them to t1 and t2; and only 1 and 2 threads have been tried (docs/openblas.md).
 */
export const MAX_BLAS_THREADS = 2;

/**
 * OpenBLAS threads for a process training on `workers` data-parallel workers: one each with several
 * workers (they already take a core each, and OpenBLAS's one pool would be shared and oversubscribed),
 * else the machine's cores up to `MAX_BLAS_THREADS`.
 */
export function blasThreads(workers: number, cores = navigator.hardwareConcurrency): number {
  return workers > 1 ? 1 : Math.max(1, Math.min(cores || 1, MAX_BLAS_THREADS));
}

/** Checks a product name or `auto` (from a flag or the environment: `what` names it in the error). */
export function parseGemm(value: string, what = "--gemm"): GemmAsk {
  if (!(GEMM_ASKS as readonly string[]).includes(value)) {
    throw new Error(`${what} ${value} is not a product; use one of ${GEMM_ASKS.join(", ")}`);
  }
  return value as GemmAsk;
}

/** The product `NORMTUNE_GEMM` asks for, else `fallback` (the library's default: wasm). */
export function gemmFromEnv(fallback: GemmAsk = "wasm"): GemmAsk {
  return parseGemm(Deno.env.get("NORMTUNE_GEMM") ?? fallback, "NORMTUNE_GEMM=");
}

/** What this isolate's products run on. */
export interface GemmSetting {
  name: GemmName;
  /** OpenBLAS threads (openblas only). */
  threads?: number;
  blas?: OpenBlas;
}

/** What a process asks for: the product, and for openblas its threads and where to look for it. */
export interface GemmRequest {
  name: GemmAsk;
  /** Default `blasThreads(1)`. */
  threads?: number;
  /** Default `openBlasPaths()` (NORMTUNE_OPENBLAS, else the usual library paths). */
  paths?: readonly string[];
}

let current: GemmSetting = { name: "wasm" };

/**
 * Makes `req` this isolate's product, on the started `backend` (its name); OpenBLAS is loaded and its
 * process-wide thread count set. Throws, changing nothing, where OpenBLAS is asked for and does not load
 * or the backend is not wasm. `auto` takes OpenBLAS on wasm where it loads, else the wasm product (off
 * wasm there is no product to choose: the backend's own kernels run, labelled with its name alone).
 */
export function chooseGemm(backend: string, req: GemmRequest): GemmSetting {
  const name = resolveGemm(backend, req);
  if (name === "wasm") return (current = { name: "wasm" });
  if (backend !== "wasm") {
    throw new Error(
      `--gemm openblas (or NORMTUNE_GEMM=openblas) is for the wasm backend, whose products it replaces; ` +
        `the backend here is ${backend}. Leave it out, or use --backend wasm.`,
    );
  }
  const threads = req.threads ?? blasThreads(1);
  if (!Number.isInteger(threads) || threads < 1) {
    throw new Error(`OpenBLAS threads must be a positive integer, got ${threads}`);
  }
  const blas = loadOpenBlas(req.paths, threads);
  blas.setThreads(threads);
  const got = blas.threads();
  if (got !== threads) {
    throw new Error(`OpenBLAS (${blas.path}) runs ${got} threads where ${threads} were asked for`);
  }
  return (current = { name: "openblas", threads, blas });
}

/**
 * The product `req` comes to on `backend`: `auto` is openblas on wasm where OpenBLAS loads (loading it),
 * else wasm, with a line on stderr saying why OpenBLAS does not run; a product asked by name is itself.
 */
export function resolveGemm(backend: string, req: GemmRequest): GemmName {
  if (req.name !== "auto") return req.name;
  if (backend !== "wasm") return "wasm";
  try {
    loadOpenBlas(req.paths, req.threads ?? blasThreads(1));
    return "openblas";
  } catch (err) {
    console.error(`normtune: the wasm product runs (--gemm auto): ${(err as Error).message}`);
    return "wasm";
  }
}

/** The product this isolate runs now. */
export function currentGemm(): GemmSetting {
  return current;
}

/** Makes an earlier `currentGemm()` current again, with its OpenBLAS thread count. */
export function restoreGemm(s: GemmSetting): void {
  if (s.blas) s.blas.setThreads(s.threads!);
  current = s;
}

/** The OpenBLAS the products call, or undefined on the wasm product. */
export function activeBlas(): OpenBlas | undefined {
  return current.blas;
}

/**
 * What results computed on `backend` with product `s` are labelled with (a run's identity, a cell's
 * configuration): the backend's name alone for the wasm product, so that every earlier result keeps
 * its id; `wasm+openblas-tN` with OpenBLAS on N threads, whose bits differ from the wasm product's and
 * from one thread count to another.
 */
export function gemmIdentity(backend: string, s: GemmSetting = current): string {
  return s.name === "wasm" ? backend : `${backend}+openblas-t${s.threads}`;
}

/** The product a `gemmIdentity` label names: "wasm+openblas-t1" is openblas; a bare backend, wasm. */
export function gemmOfIdentity(identity: string): GemmName {
  return identity.includes("+openblas-") ? "openblas" : "wasm";
}

/** A short name of the product for tables: "wasm", or "openblas-tN" (N threads). */
export function gemmLabel(s: GemmSetting = current): string {
  return s.name === "wasm" ? "wasm" : `openblas-t${s.threads}`;
}

/**
 * OpenBLAS's description for run metadata (not identities: the core differs between machines, as the
 * wasm product's FMA does): build configuration, core and threads; undefined on the wasm product.
 */
export function gemmDescription(
  s: GemmSetting = current,
): { gemm: "openblas"; threads: number; config: string; core: string } | undefined {
  if (!s.blas) return undefined;
  return { gemm: "openblas", threads: s.threads!, config: s.blas.config, core: s.blas.corename };
}
