/**
 * Issue 14 spike (docs/blas_spike.md): the project's relaxed-SIMD wasm product (`Io.product`) beside
 * OpenBLAS's `cblas_sgemm` called through Deno FFI on the same tfjs-wasm heap (lib/backend/blas_gemm.ts),
 * with 1 and 2 OpenBLAS threads, at BERT-mini and BERT-base dense shapes and attention's per-head strided
 * products. Runs are interleaved (simd, blas x1, blas x2 in turn) and the minimum of the repeats is kept;
 * prints ms and GFLOP/s, the difference between the two products relative to the result's magnitude, the
 * error of each against a float64 reference on sampled elements, and whether OpenBLAS repeats bitwise.
 *
 *   nice -n 10 deno run -A tools/blas_spike.ts [--repeats 3] [--only mini,base,attn,calls]
 *
 * About 30 s on an idle 2-core machine.
 */
import { type OpenBlas, openBlas } from "../lib/backend/blas_gemm.ts";
import { blasProduct } from "../lib/backend/blas_gemm.ts";
import { Io, type Mat, type Out, type TI } from "../lib/backend/kernel_io.ts";
import { initBackend, tf } from "../lib/tf.ts";

interface Product {
  a: Mat;
  b: Mat;
  m: number;
  k: number;
  n: number;
  alpha: number;
  bias?: TI;
  /** Output element offset and leading dimension within C. */
  cOff: number;
  ld: number;
}

interface Case {
  group: string;
  name: string;
  /** The products one timed run performs (one for dense, one per head for attention). */
  products: Product[];
  /** Elements of C. */
  cSize: number;
  /** Shared packing buffer for the SIMD product (attention), as the fused kernels use it. */
  scratchKN?: [number, number];
  tensors: TI[];
}

function values(n: number, seed: number): Float32Array {
  const out = new Float32Array(n);
  let s = seed >>> 0;
  for (let i = 0; i < n; i++) {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    out[i] = s / 2 ** 31 - 1;
  }
  return out;
}

const tensor = (n: number, seed: number) => tf.tensor1d(values(n, seed)) as unknown as TI;
const rowMajor = (t: TI, cols: number, off = 0): Mat => ({ t, off, rs: cols, cs: 1 });
const transposed = (t: TI, rows: number, off = 0): Mat => ({ t, off, rs: 1, cs: rows });

/** y = x W^T + b (forward), dx = dy W (gradX), dW = dy^T x (gradW), as lib/backend/fused_kernels.ts. */
function dense(group: string, kind: "fwd" | "gradX" | "gradW", rows: number, inp: number, out: number): Case {
  let seed = rows + inp * 7 + out * 13;
  if (kind === "fwd") {
    const x = tensor(rows * inp, seed++), w = tensor(out * inp, seed++), b = tensor(out, seed++);
    return {
      group,
      name: `fwd  ${rows}x${inp} . W^T -> ${out}`,
      products: [{
        a: rowMajor(x, inp),
        b: transposed(w, inp),
        m: rows,
        k: inp,
        n: out,
        alpha: 1,
        bias: b,
        cOff: 0,
        ld: out,
      }],
      cSize: rows * out,
      tensors: [x, w, b],
    };
  }
  if (kind === "gradX") {
    const dy = tensor(rows * out, seed++), w = tensor(out * inp, seed++);
    return {
      group,
      name: `gradX ${rows}x${out} . W -> ${inp}`,
      products: [{
        a: rowMajor(dy, out),
        b: rowMajor(w, inp),
        m: rows,
        k: out,
        n: inp,
        alpha: 1,
        cOff: 0,
        ld: inp,
      }],
      cSize: rows * inp,
      tensors: [dy, w],
    };
  }
  const dy = tensor(rows * out, seed++), x = tensor(rows * inp, seed++);
  return {
    group,
    name: `gradW dy^T(${out}x${rows}) . x -> ${out}x${inp}`,
    products: [{
      a: transposed(dy, out),
      b: rowMajor(x, inp),
      m: out,
      k: rows,
      n: inp,
      alpha: 1,
      cOff: 0,
      ld: inp,
    }],
    cSize: out * inp,
    tensors: [dy, x],
  };
}

/** BERT-mini attention, batch b, H heads of width d, s tokens: scores = Q K^T / sqrt(d), context = P V. */
function attention(kind: "scores" | "context", b: number, H: number, s: number, d: number): Case {
  const width = H * d;
  const products: Product[] = [];
  if (kind === "scores") {
    const q = tensor(b * s * width, 11), k = tensor(b * s * width, 12);
    for (let e = 0; e < b; e++) {
      for (let h = 0; h < H; h++) {
        const off = e * s * width + h * d;
        products.push({
          a: { t: q, off, rs: width, cs: 1 },
          b: { t: k, off, rs: 1, cs: width },
          m: s,
          k: d,
          n: s,
          alpha: 1 / Math.sqrt(d),
          cOff: (e * H + h) * s * s,
          ld: s,
        });
      }
    }
    return {
      group: "attn",
      name: `scores ${b * H}x [${s}x${d}] . K^T (head cols, ld ${width})`,
      products,
      cSize: b * H * s * s,
      scratchKN: [d, s],
      tensors: [q, k],
    };
  }
  const p = tensor(b * H * s * s, 13), v = tensor(b * s * width, 14);
  for (let e = 0; e < b; e++) {
    for (let h = 0; h < H; h++) {
      const i = e * H + h;
      products.push({
        a: { t: p, off: i * s * s, rs: s, cs: 1 },
        b: { t: v, off: e * s * width + h * d, rs: width, cs: 1 },
        m: s,
        k: s,
        n: d,
        alpha: 1,
        cOff: e * s * width + h * d,
        ld: width,
      });
    }
  }
  return {
    group: "attn",
    name: `context ${b * H}x [${s}x${s}] . V (head cols, ld ${width})`,
    products,
    cSize: b * s * width,
    scratchKN: [s, d],
    tensors: [p, v],
  };
}

type Method = "simd" | "blas1" | "blas2";
const METHODS: Method[] = ["simd", "blas1", "blas2"];

function run(io: Io, blas: OpenBlas, method: Method, c: Case, out: TI): number {
  const backend = io.backend;
  const scratch = method === "simd" && c.scratchKN ? io.productScratch(...c.scratchKN) : undefined;
  if (method !== "simd") blas.setThreads(method === "blas1" ? 1 : 2);
  const t0 = performance.now();
  for (const p of c.products) {
    const o: Out = { t: out, off: p.cOff, ld: p.ld };
    if (method === "simd") io.product(p.a, p.b, o, p.m, p.k, p.n, p.alpha, p.bias, scratch);
    else if (!blasProduct(blas, backend, p.a, p.b, o, p.m, p.k, p.n, p.alpha, p.bias)) {
      throw new Error(`${c.name}: unsupported by CBLAS`);
    }
  }
  const ms = performance.now() - t0;
  if (scratch) io.free(scratch);
  return ms;
}

/** Max |x - y| / max |y|. */
function relDiff(x: Float32Array, y: Float32Array): number {
  let d = 0, mag = 0;
  for (let i = 0; i < x.length; i++) {
    d = Math.max(d, Math.abs(x[i] - y[i]));
    mag = Math.max(mag, Math.abs(y[i]));
  }
  return d / mag;
}

/** Max |got - ref| / max |ref| over sampled elements, ref computed in float64. */
function sampledError(io: Io, c: Case, results: Float32Array[], samples = 96): number[] {
  const errs = results.map(() => 0);
  let mag = 0;
  let s = 12345;
  for (let q = 0; q < samples; q++) {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    const p = c.products[s % c.products.length];
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    const i = s % p.m;
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    const j = s % p.n;
    const av = io.data(p.a.t), bv = io.data(p.b.t);
    let acc = 0;
    for (let r = 0; r < p.k; r++) {
      acc += av[p.a.off + i * p.a.rs + r * p.a.cs] * bv[p.b.off + r * p.b.rs + j * p.b.cs];
    }
    acc = p.alpha * acc + (p.bias ? io.data(p.bias)[j] : 0);
    mag = Math.max(mag, Math.abs(acc));
    const at = p.cOff + i * p.ld + j;
    results.forEach((r, x) => errs[x] = Math.max(errs[x], Math.abs(r[at] - acc)));
  }
  return errs.map((e) => e / mag);
}

const equalBits = (x: Float32Array, y: Float32Array) => {
  const a = new Uint32Array(x.buffer, x.byteOffset, x.length),
    b = new Uint32Array(y.buffer, y.byteOffset, y.length);
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
};

function flops(c: Case): number {
  return c.products.reduce((sum, p) => sum + 2 * p.m * p.k * p.n, 0);
}

const fmt = (x: number, d = 1) => x.toFixed(d).padStart(7);
const sci = (x: number) => x.toExponential(1);

/** Per-call cost of a tiny product (8x8x8): what FFI adds for attention's many small products. */
function callCost(io: Io, blas: OpenBlas): void {
  const a = tensor(64, 1), b = tensor(64, 2), c = io.alloc([64]);
  blas.setThreads(1);
  const calls = 20000;
  const times: Record<string, number> = {};
  for (let rep = 0; rep < 3; rep++) {
    for (const m of ["simd", "blas1"]) {
      const t0 = performance.now();
      for (let i = 0; i < calls; i++) {
        if (m === "simd") io.product(rowMajor(a, 8), rowMajor(b, 8), { t: c, off: 0, ld: 8 }, 8, 8, 8);
        else blasProduct(blas, io.backend, rowMajor(a, 8), rowMajor(b, 8), { t: c, off: 0, ld: 8 }, 8, 8, 8);
      }
      const us = (performance.now() - t0) / calls * 1000;
      times[m] = Math.min(times[m] ?? Infinity, us);
    }
  }
  console.log(
    `per call, 8x8x8 (min of 3 x ${calls}): simd ${
      times.simd.toFixed(2)
    } us (own packing buffer each call), ` +
      `cblas_sgemm via FFI ${times.blas1.toFixed(2)} us`,
  );
  io.free(c);
  tf.dispose([a, b] as unknown as tf.Tensor[]);
}

async function main(args: string[]) {
  const flag = (name: string) => {
    const i = args.indexOf(`--${name}`);
    return i >= 0 ? args[i + 1] : undefined;
  };
  const repeats = Number(flag("repeats") ?? 3);
  const only = (flag("only") ?? "mini,base,attn,calls").split(",");

  const blas = openBlas();
  if (!blas) {
    console.error("no OpenBLAS found (apt-get install libopenblas0-pthread) or no --allow-ffi");
    return 1;
  }
  await initBackend("wasm");
  const io = new Io(tf.backend());
  console.log(
    `OpenBLAS: ${blas.path}\n  ${blas.config}\n  core ${blas.corename}, default threads ${blas.threads()}`,
  );
  console.log(`load average at start: ${Deno.loadavg().map((x) => x.toFixed(2)).join(" ")}`);

  const cases: Case[] = [];
  if (only.includes("mini")) {
    cases.push(dense("mini", "fwd", 4096, 256, 256));
    cases.push(dense("mini", "fwd", 4096, 256, 1024));
    cases.push(dense("mini", "fwd", 4096, 1024, 256));
    cases.push(dense("mini", "gradX", 4096, 256, 1024));
    cases.push(dense("mini", "gradW", 4096, 256, 1024));
  }
  if (only.includes("base")) {
    cases.push(dense("base", "fwd", 1024, 768, 768));
    cases.push(dense("base", "fwd", 1024, 768, 3072));
    cases.push(dense("base", "fwd", 1024, 3072, 768));
  }
  if (only.includes("attn")) {
    cases.push(attention("scores", 32, 4, 128, 64));
    cases.push(attention("context", 32, 4, 128, 64));
  }

  const started = performance.now();
  console.log(
    `\n${"case".padEnd(46)}  ${"simd ms".padStart(7)} ${"GF/s".padStart(7)}  ${"blas1 ms".padStart(8)} ${
      "GF/s".padStart(7)
    }  ${"blas2 ms".padStart(8)} ${
      "GF/s".padStart(7)
    }  x1/simd x2/simd  |b1-s|rel  err(s,b1,b2) vs f64   bitwise`,
  );
  for (const c of cases) {
    const outs = Object.fromEntries(METHODS.map((m) => [m, io.alloc([c.cSize])])) as Record<Method, TI>;
    const best = Object.fromEntries(METHODS.map((m) => [m, Infinity])) as Record<Method, number>;
    const first: Partial<Record<Method, Float32Array>> = {};
    let repeatable = { blas1: true, blas2: true };
    for (let rep = 0; rep <= repeats; rep++) { // rep 0 warms up
      for (const m of METHODS) {
        const ms = run(io, blas, m, c, outs[m]);
        if (rep > 0) best[m] = Math.min(best[m], ms);
        const got = io.data(outs[m]);
        if (!first[m]) first[m] = got.slice();
        else if (m !== "simd" && !equalBits(got, first[m]!)) repeatable = { ...repeatable, [m]: false };
      }
    }
    const gf = (m: Method) => flops(c) / best[m] / 1e6;
    const errs = sampledError(io, c, METHODS.map((m) => first[m]!));
    const bits = `x1 ${repeatable.blas1 ? "same" : "DIFF"}, x2 ${repeatable.blas2 ? "same" : "DIFF"}, x1=x2 ${
      equalBits(first.blas1!, first.blas2!) ? "yes" : "no"
    }`;
    console.log(
      `${(c.group + " " + c.name).padEnd(46)}  ${fmt(best.simd)} ${fmt(gf("simd"))}  ${
        fmt(best.blas1).padStart(8)
      } ${fmt(gf("blas1"))}  ${fmt(best.blas2).padStart(8)} ${fmt(gf("blas2"))}  ${
        fmt(best.blas1 / best.simd, 2)
      } ${fmt(best.blas2 / best.simd, 2)}  ${sci(relDiff(first.blas1!, first.simd!)).padStart(9)}  ${
        errs.map(sci).join(" ")
      }  ${bits}`,
    );
    for (const m of METHODS) io.free(outs[m]);
    tf.dispose(c.tensors as unknown as tf.Tensor[]);
  }
  if (only.includes("calls")) callCost(io, blas);
  console.log(
    `\n${((performance.now() - started) / 1000).toFixed(1)} s; load average at end: ${
      Deno.loadavg().map((x) => x.toFixed(2)).join(" ")
    }`,
  );
  return 0;
}

if (import.meta.main) Deno.exit(await main(Deno.args));
