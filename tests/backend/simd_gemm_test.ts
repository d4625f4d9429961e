import assert from "node:assert/strict";
import { Io, type Mat } from "../../lib/backend/kernel_io.ts";
import { GEMM_SOURCE_SHA256 } from "../../lib/backend/gemm_wasm.ts";
import { simdGemm } from "../../lib/backend/simd_gemm.ts";
import { initBackend, tf } from "../../lib/tf.ts";
import { SOURCE, sourceHash } from "../../tools/build_wasm.ts";
import { values } from "../tensors.ts";

Deno.test("the built product is the AssemblyScript source's (run tools/build_wasm.ts after editing it)", async () => {
  assert.equal(GEMM_SOURCE_SHA256, sourceHash(await Deno.readTextFile(SOURCE)));
});

/** C = alpha A B + bias in float64, from strided operands. */
function reference(
  a: Float32Array,
  am: Omit<Mat, "t">,
  b: Float32Array,
  bm: Omit<Mat, "t">,
  m: number,
  k: number,
  n: number,
  alpha: number,
  bias?: Float32Array,
) {
  const c = new Float64Array(m * n);
  for (let i = 0; i < m; i++) {
    for (let j = 0; j < n; j++) {
      let acc = 0;
      for (let p = 0; p < k; p++) {
        acc += a[am.off + i * am.rs + p * am.cs] * b[bm.off + p * bm.rs + j * bm.cs];
      }
      c[i * n + j] = alpha * acc + (bias ? bias[j] : 0);
    }
  }
  return c;
}

Deno.test("strided product on wasm (relaxed SIMD) and cpu: edges, transposes, k blocks, alpha and bias", async () => {
  const cases: {
    m: number;
    k: number;
    n: number;
    transA: boolean;
    transB: boolean;
    alpha: number;
    bias: boolean;
  }[] = [
    { m: 4, k: 8, n: 8, transA: false, transB: false, alpha: 1, bias: false },
    { m: 7, k: 5, n: 13, transA: true, transB: false, alpha: 0.125, bias: true },
    { m: 107, k: 300, n: 19, transA: false, transB: true, alpha: 1, bias: true }, // 2 k blocks, 2 row blocks: 6+4+1 rows
    { m: 9, k: 513, n: 8, transA: true, transB: true, alpha: -2, bias: false }, // three k blocks
    { m: 1, k: 1, n: 1, transA: false, transB: false, alpha: 1, bias: true },
  ];
  for (const backend of ["wasm", "cpu"] as const) {
    await initBackend(backend);
    const io = new Io(tf.backend());
    if (backend === "wasm") {
      assert.ok(simdGemm((tf.backend() as unknown as { wasm: object }).wasm), "no SIMD product");
    }
    for (const { m, k, n, transA, transB, alpha, bias } of cases) {
      const what = `${backend} ${m}x${k}x${n}${transA ? " A^T" : ""}${transB ? " B^T" : ""}`;
      // Operands sit at an offset inside larger tensors, one column wider than they need (a head's view).
      const av = values(3 + m * k + Math.max(m, k) + 1, m + k),
        bv = values(5 + k * n + Math.max(k, n) + 1, k + n);
      const a = tf.tensor1d(av), b = tf.tensor1d(bv), biasT = tf.tensor1d(values(n, 7));
      const am = transA ? { off: 3, rs: 1, cs: m + 1 } : { off: 3, rs: k + 1, cs: 1 };
      const bm = transB ? { off: 5, rs: 1, cs: k + 1 } : { off: 5, rs: n + 1, cs: 1 };
      const c = io.alloc([2 + m * (n + 2)]);
      io.data(c).fill(7);
      const ai = a as unknown as Mat["t"], bi = b as unknown as Mat["t"];
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
      const want = reference(av, am, bv, bm, m, k, n, alpha, bias ? values(n, 7) : undefined);
      const got = io.data(c);
      for (let i = 0; i < m; i++) {
        for (let j = 0; j < n + 2; j++) {
          const g = got[2 + i * (n + 2) + j];
          if (j >= n) assert.equal(g, 7, `${what}: wrote outside C at (${i}, ${j})`);
          else {assert.ok(
              Math.abs(g - want[i * n + j]) <= 1e-4 * (1 + Math.abs(want[i * n + j])),
              `${what} (${i}, ${j}): ${g} vs ${want[i * n + j]}`,
            );}
        }
      }
      assert.equal(got[0], 7, `${what}: wrote before C`);
      io.free(c);
      tf.dispose([a, b, biasT]);
    }
  }
});
