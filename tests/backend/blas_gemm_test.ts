/**
 * The OpenBLAS product (lib/backend/blas_gemm.ts) on the wasm heap: the same cases as the SIMD product's
 * test, and a heap that grows between calls; loading errors name the paths tried. OpenBLAS is required
 * (tools/setup.sh installs Debian's libopenblas0-pthread): never skipped.
 */
import assert from "node:assert/strict";
import { blasLayout, blasProduct, loadOpenBlas, OPENBLAS_PATHS } from "../../lib/backend/blas_gemm.ts";
import { Io, type Mat } from "../../lib/backend/kernel_io.ts";
import { initBackend, tf } from "../../lib/tf.ts";
import { values } from "../tensors.ts";

Deno.test("OpenBLAS loads from the usual paths and says what it is; a missing one names every path tried", () => {
  const blas = loadOpenBlas();
  assert.ok(OPENBLAS_PATHS.includes(blas.path), blas.path);
  assert.match(blas.config, /OpenBLAS \d+\.\d+/);
  assert.ok(blas.corename.length > 0);
  assert.equal(loadOpenBlas([blas.path]), blas, "loaded once per isolate");
  assert.throws(
    () => loadOpenBlas(["/nonexistent/libopenblas.so.0", "/nonexistent/other.so"]),
    (err: Error) =>
      /tried \/nonexistent\/libopenblas\.so\.0 \(.+\), \/nonexistent\/other\.so \(.+\)/.test(err.message) &&
      /libopenblas0-pthread/.test(err.message) && /--gemm wasm/.test(err.message),
  );
});

Deno.test("CBLAS layouts of strided operands", () => {
  assert.deepEqual(blasLayout(10, 1, 4, 8), { trans: false, ld: 10 });
  assert.deepEqual(blasLayout(1, 10, 8, 4), { trans: true, ld: 10 });
  assert.deepEqual(blasLayout(3, 1, 1, 8), { trans: false, ld: 8 }); // one row: its stride is unused
  assert.equal(blasLayout(8, 1, 4, 10), undefined); // rows overlap
  assert.equal(blasLayout(20, 2, 4, 8), undefined); // no unit stride
});

Deno.test({
  name: "cblas_sgemm on the wasm heap: edges, transposes, alpha, bias, a heap that grows",
  fn: async () => {
    const blas = loadOpenBlas();
    await initBackend("wasm");
    const backend = tf.backend();
    const io = new Io(backend);
    blas.setThreads(1);
    const cases = [
      { m: 4, k: 8, n: 8, transA: false, transB: false, alpha: 1, bias: false },
      { m: 7, k: 5, n: 13, transA: true, transB: false, alpha: 0.125, bias: true },
      { m: 107, k: 300, n: 19, transA: false, transB: true, alpha: 1, bias: true },
      { m: 9, k: 513, n: 8, transA: true, transB: true, alpha: -2, bias: false },
      { m: 1, k: 1, n: 1, transA: false, transB: false, alpha: 1, bias: true },
    ];
    const hold: tf.Tensor[] = [];
    let grewOnce = false;
    for (const { m, k, n, transA, transB, alpha, bias } of cases) {
      const what = `${m}x${k}x${n}${transA ? " A^T" : ""}${transB ? " B^T" : ""}`;
      const av = values(3 + m * k + Math.max(m, k) + 1, m + k),
        bv = values(5 + k * n + Math.max(k, n) + 1, k + n);
      const a = tf.tensor1d(av), b = tf.tensor1d(bv), biasT = tf.tensor1d(values(n, 7));
      const am = transA ? { off: 3, rs: 1, cs: m + 1 } : { off: 3, rs: k + 1, cs: 1 };
      const bm = transB ? { off: 5, rs: 1, cs: k + 1 } : { off: 5, rs: n + 1, cs: 1 };
      const ai = a as unknown as Mat["t"], bi = b as unknown as Mat["t"];
      const run = () => {
        const c = io.alloc([2 + m * (n + 2)]);
        io.data(c).fill(7);
        const ok = blasProduct(
          blas,
          backend,
          { t: ai, ...am },
          { t: bi, ...bm },
          { t: c, off: 2, ld: n + 2 },
          m,
          k,
          n,
          alpha,
          bias ? biasT as unknown as Mat["t"] : undefined,
        );
        assert.ok(ok, `${what}: unsupported`);
        const got = io.data(c).slice();
        io.free(c);
        return got;
      };
      const first = run();
      // Grow the heap (a fresh ArrayBuffer): the next call must find the operands where they now lie.
      const before = io.data(ai).buffer;
      hold.push(tf.zeros([16 << 20]));
      const grew = io.data(ai).buffer !== before;
      grewOnce ||= grew;
      const second = run();
      assert.deepEqual(second, first, `${what}: not repeatable${grew ? " after the heap grew" : ""}`);
      // The SIMD product as the reference: same values up to rounding, nothing written outside C.
      const c = io.alloc([2 + m * (n + 2)]);
      io.data(c).fill(7);
      io.product(
        { t: ai, ...am },
        { t: bi, ...bm },
        { t: c, off: 2, ld: n + 2 },
        m,
        k,
        n,
        alpha,
        bias ? biasT as unknown as Mat["t"] : undefined,
      );
      const want = io.data(c).slice();
      io.free(c);
      for (let i = 0; i < want.length; i++) {
        assert.ok(Math.abs(first[i] - want[i]) <= 1e-4 * (1 + Math.abs(want[i])), `${what} [${i}]`);
      }
      tf.dispose([a, b, biasT]);
    }
    tf.dispose(hold);
    assert.ok(grewOnce, "the heap never grew: the test did not cover a moved buffer");
  },
});
