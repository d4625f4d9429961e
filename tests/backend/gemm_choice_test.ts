/**
 * The product choice (lib/backend/gemm_choice.ts) and `Io.product` under it: names, identities, the
 * thread policy, refusals; OpenBLAS taking every CBLAS layout and the SIMD product the rest; operands
 * that reach outside their tensor refused on either product before anything is written.
 */
import assert from "node:assert/strict";
import {
  activeBlas,
  blasThreads,
  chooseGemm,
  currentGemm,
  gemmFromEnv,
  gemmIdentity,
  gemmLabel,
  MAX_BLAS_THREADS,
  parseGemm,
  resolveGemm,
} from "../../lib/backend/gemm_choice.ts";
import { Io, type Mat, type TI } from "../../lib/backend/kernel_io.ts";
import { initBackend, initCompute, tf } from "../../lib/tf.ts";
import { values } from "../tensors.ts";

Deno.test("names, identities and labels: the default product adds nothing to the backend's name", () => {
  assert.equal(parseGemm("openblas"), "openblas");
  assert.equal(parseGemm("auto"), "auto");
  assert.throws(() => parseGemm("mkl"), /--gemm mkl is not a product; use one of wasm, openblas, auto/);
  assert.equal(gemmIdentity("wasm", { name: "wasm" }), "wasm");
  assert.equal(gemmIdentity("cpu", { name: "wasm" }), "cpu");
  assert.equal(gemmIdentity("wasm", { name: "openblas", threads: 1 }), "wasm+openblas-t1");
  assert.equal(gemmIdentity("wasm", { name: "openblas", threads: 2 }), "wasm+openblas-t2");
  assert.equal(gemmLabel({ name: "wasm" }), "wasm");
  assert.equal(gemmLabel({ name: "openblas", threads: 2 }), "openblas-t2");
});

Deno.test("NORMTUNE_GEMM: default wasm, a wrong name is an error that names the variable", () => {
  const saved = Deno.env.get("NORMTUNE_GEMM");
  try {
    Deno.env.delete("NORMTUNE_GEMM");
    assert.equal(gemmFromEnv(), "wasm");
    Deno.env.set("NORMTUNE_GEMM", "openblas");
    assert.equal(gemmFromEnv(), "openblas");
    Deno.env.set("NORMTUNE_GEMM", "blas");
    assert.throws(() => gemmFromEnv(), /NORMTUNE_GEMM= ?blas is not a product/);
  } finally {
    if (saved === undefined) Deno.env.delete("NORMTUNE_GEMM");
    else Deno.env.set("NORMTUNE_GEMM", saved);
  }
});

Deno.test("auto: OpenBLAS on wasm where it loads, else the wasm product, saying why; never off wasm", async () => {
  await initBackend("wasm");
  const missing = ["/nonexistent/libopenblas.so.0"];
  const said: string[] = [];
  const error = console.error;
  console.error = (...a: unknown[]) => said.push(a.join(" "));
  try {
    assert.equal(resolveGemm("cpu", { name: "auto" }), "wasm");
    assert.equal(resolveGemm("webgpu", { name: "auto" }), "wasm");
    assert.equal(resolveGemm("wasm", { name: "wasm" }), "wasm");
    assert.deepEqual(said, []);
    assert.equal(chooseGemm("wasm", { name: "auto", paths: missing }).name, "wasm");
    assert.equal(activeBlas(), undefined);
    assert.equal(said.length, 1);
    assert.match(
      said[0],
      /the wasm product runs \(--gemm auto\): OpenBLAS could not be loaded; tried \/nonexistent/,
    );
    // tools/setup.sh installs OpenBLAS, so here auto finds it.
    const s = chooseGemm("wasm", { name: "auto", threads: 1 });
    assert.equal(gemmIdentity("wasm", s), "wasm+openblas-t1");
    assert.equal((await initCompute({ backend: "cpu", gemm: "auto" })).identity, "cpu");
    assert.equal(
      (await initCompute({ backend: "wasm", gemm: "auto", workers: 2 })).identity,
      "wasm+openblas-t1",
    );
  } finally {
    console.error = error;
    await initBackend("wasm");
    chooseGemm("wasm", { name: "wasm" });
  }
});

Deno.test("threads: one per worker with several workers, else the cores up to the cap", () => {
  assert.equal(MAX_BLAS_THREADS, 2);
  assert.equal(blasThreads(2, 16), 1);
  assert.equal(blasThreads(4, 2), 1);
  assert.equal(blasThreads(1, 1), 1);
  assert.equal(blasThreads(1, 2), 2);
  assert.equal(blasThreads(1, 64), 2);
});

Deno.test("openblas is refused off wasm, and where it does not load, naming the paths; nothing changes", async () => {
  await initBackend("wasm");
  chooseGemm("wasm", { name: "wasm" });
  assert.throws(
    () => chooseGemm("cpu", { name: "openblas" }),
    /is for the wasm backend.*backend here is cpu/,
  );
  assert.throws(() => chooseGemm("webgpu", { name: "openblas" }), /backend here is webgpu/);
  assert.throws(
    () => chooseGemm("wasm", { name: "openblas", paths: ["/nonexistent/libopenblas.so.0"] }),
    /OpenBLAS could not be loaded; tried \/nonexistent\/libopenblas\.so\.0/,
  );
  assert.throws(() => chooseGemm("wasm", { name: "openblas", threads: 0 }), /positive integer/);
  assert.equal(currentGemm().name, "wasm");
  assert.equal(activeBlas(), undefined);
  // Through initCompute too, as every command starts: the backend is named.
  await assert.rejects(initCompute({ backend: "cpu", gemm: "openblas" }), /backend here is cpu/);
  assert.deepEqual((await initCompute({ backend: "wasm" })).identity, "wasm");
  const c = await initCompute({ backend: "wasm", gemm: "openblas", workers: 2 });
  try {
    assert.equal(c.identity, "wasm+openblas-t1");
    assert.equal(c.gemm.blas!.threads(), 1);
  } finally {
    chooseGemm("wasm", { name: "wasm" });
  }
});

/** A product of `io` into a fresh C (filled with 7 outside what the product writes); C's values. */
function runProduct(
  io: Io,
  a: Mat,
  b: Mat,
  m: number,
  k: number,
  n: number,
  bias?: TI,
): Float32Array {
  const c = io.alloc([2 + m * (n + 2)]);
  io.data(c).fill(7);
  try {
    io.product(a, b, { t: c, off: 2, ld: n + 2 }, m, k, n, 0.5, bias);
    return io.data(c).slice();
  } finally {
    io.free(c);
  }
}

Deno.test("Io.product on openblas: CBLAS layouts call OpenBLAS, other strides the SIMD product (same bits)", async () => {
  await initBackend("wasm");
  const io = new Io(tf.backend());
  const [m, k, n] = [37, 70, 29];
  const a = tf.tensor1d(values(4 * m * k, 1)), b = tf.tensor1d(values(4 * k * n, 2));
  const bias = tf.tensor1d(values(n, 3));
  const ai = a as unknown as TI, bi = b as unknown as TI, biasI = bias as unknown as TI;
  // B read transposed (unit row stride), and B with no unit stride at all (every other column of a
  // wider matrix, rows two apart): CBLAS takes the first, not the second.
  const layouts: { name: string; b: Mat; blas: boolean }[] = [
    { name: "B^T", b: { t: bi, off: 3, rs: 1, cs: k + 1 }, blas: true },
    { name: "strided B", b: { t: bi, off: 1, rs: 4 * n, cs: 2 }, blas: false },
  ];
  const am: Mat = { t: ai, off: 5, rs: k + 3, cs: 1 };
  try {
    for (const { name, b: bm, blas } of layouts) {
      chooseGemm("wasm", { name: "wasm" });
      const wasm = runProduct(io, am, bm, m, k, n, biasI);
      const s = chooseGemm("wasm", { name: "openblas", threads: 1 });
      const sgemm = s.blas!.sgemm;
      let calls = 0;
      s.blas!.sgemm = ((...args: Parameters<typeof sgemm>) => (calls++, sgemm(...args))) as typeof sgemm;
      let got: Float32Array;
      try {
        got = runProduct(io, am, bm, m, k, n, biasI);
        assert.deepEqual(runProduct(io, am, bm, m, k, n, biasI), got, `${name}: repeats bitwise`);
      } finally {
        s.blas!.sgemm = sgemm;
      }
      assert.equal(calls, blas ? 2 : 0, `${name}: OpenBLAS calls`);
      if (blas) {
        for (let i = 0; i < wasm.length; i++) {
          assert.ok(Math.abs(got[i] - wasm[i]) <= 1e-5 * (1 + Math.abs(wasm[i])), `${name} [${i}]`);
        }
      } else assert.deepEqual(got, wasm, `${name}: the SIMD product's own bits`);
      // C = alpha A B + bias, and nothing written outside C: the margins keep their 7s.
      assert.deepEqual([got[0], got[1], got[2 + n], got[2 + n + 1]], [7, 7, 7, 7], name);
    }
  } finally {
    chooseGemm("wasm", { name: "wasm" });
    tf.dispose([a, b, bias]);
  }
});

Deno.test("an operand that reaches outside its tensor throws before anything is written, on either product", async () => {
  await initBackend("wasm");
  const io = new Io(tf.backend());
  const a = tf.tensor1d(values(6 * 8, 1)),
    b = tf.tensor1d(values(8 * 5, 2)),
    bias = tf.tensor1d(values(4, 3));
  const ai = a as unknown as TI, bi = b as unknown as TI;
  const c = io.alloc([6 * 5]);
  const cases: [string, () => void, RegExp][] = [
    // A [6 x 8] with a row stride of 9 reaches element 52 of 48.
    ["A stride", () =>
      io.product(
        { t: ai, off: 0, rs: 9, cs: 1 },
        { t: bi, off: 0, rs: 5, cs: 1 },
        {
          t: c,
          off: 0,
          ld: 5,
        },
        6,
        8,
        5,
      ), /product: A \[6 x 8\] at offset 0, strides \(9, 1\) reaches element 52 of a tensor of 48/],
    [
      "B offset",
      () =>
        io.product(
          { t: ai, off: 0, rs: 8, cs: 1 },
          { t: bi, off: 1, rs: 5, cs: 1 },
          { t: c, off: 0, ld: 5 },
          6,
          8,
          5,
        ),
      /product: B/,
    ],
    [
      "C row stride",
      () =>
        io.product(
          { t: ai, off: 0, rs: 8, cs: 1 },
          { t: bi, off: 0, rs: 5, cs: 1 },
          { t: c, off: 0, ld: 6 },
          6,
          8,
          5,
        ),
      /product: C \[6 x 5\] at offset 0, row stride 6 reaches element 34 of a tensor of 30/,
    ],
    ["bias", () =>
      io.product(
        { t: ai, off: 0, rs: 8, cs: 1 },
        { t: bi, off: 0, rs: 5, cs: 1 },
        { t: c, off: 0, ld: 5 },
        6,
        8,
        5,
        1,
        bias as unknown as TI,
      ), /product: the bias needs 5 elements of a tensor of 4/],
    [
      "negative stride",
      () =>
        io.product(
          { t: ai, off: 47, rs: -8, cs: 1 },
          { t: bi, off: 0, rs: 5, cs: 1 },
          { t: c, off: 0, ld: 5 },
          6,
          8,
          5,
        ),
      /product: A/,
    ],
  ];
  try {
    for (const gemm of ["wasm", "openblas"] as const) {
      chooseGemm("wasm", { name: gemm, threads: 1 });
      for (const [what, run, message] of cases) {
        io.data(c).fill(3);
        assert.throws(
          run,
          (err: Error) => err instanceof RangeError && message.test(err.message),
          `${gemm} ${what}`,
        );
        assert.ok(io.data(c).every((x) => x === 3), `${gemm} ${what}: C was written`);
      }
    }
  } finally {
    chooseGemm("wasm", { name: "wasm" });
    io.free(c);
    tf.dispose([a, b, bias]);
  }
});

Deno.test("OpenBLAS on 2 threads: set process-wide, repeats bitwise at that count", async () => {
  await initBackend("wasm");
  const io = new Io(tf.backend());
  const [m, k, n] = [256, 300, 260];
  const a = tf.tensor1d(values(m * k, 5)), b = tf.tensor1d(values(k * n, 6));
  const am: Mat = { t: a as unknown as TI, off: 0, rs: k, cs: 1 };
  const bm: Mat = { t: b as unknown as TI, off: 0, rs: 1, cs: k };
  try {
    const s = chooseGemm("wasm", { name: "openblas", threads: 2 });
    assert.equal(s.blas!.threads(), 2);
    assert.equal(gemmIdentity("wasm"), "wasm+openblas-t2");
    const two = runProduct(io, am, bm, m, k, n);
    assert.deepEqual(runProduct(io, am, bm, m, k, n), two);
    chooseGemm("wasm", { name: "openblas", threads: 1 });
    assert.equal(s.blas!.threads(), 1);
    const one = runProduct(io, am, bm, m, k, n);
    for (let i = 0; i < one.length; i++) {
      assert.ok(Math.abs(one[i] - two[i]) <= 1e-5 * (1 + Math.abs(one[i])));
    }
  } finally {
    chooseGemm("wasm", { name: "wasm" });
    tf.dispose([a, b]);
  }
});
