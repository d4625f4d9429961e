import assert from "node:assert/strict";
import { join } from "node:path";
import type { BenchReport } from "../../lib/bench/report.ts";
import { main } from "../../tools/bench.ts";
import { tempDir } from "../env.ts";

Deno.test("deno task bench --quick: every case runs (1 and 2 workers) and the JSON is complete", async () => {
  const [dir, cleanup] = await tempDir();
  try {
    const out = join(dir, "bench.json");
    const code = await main(["--quick", "--out", out]);
    assert.equal(code, 0);
    const report = JSON.parse(await Deno.readTextFile(out)) as BenchReport;
    assert.equal(report.quick, true);
    assert.equal(report.torch.available, false);
    assert.deepEqual(report.shapes.map((s) => s.shape), ["tiny"]);
    assert.equal(report.shapes[0].matmulForms.length, 6);
    const kinds = report.cases.map((c) => `${c.kind}/${c.workers}`);
    assert.deepEqual(kinds, [
      "full/1",
      "full/2",
      "bitfit/1",
      "bitfit/2",
      "layernorm/1",
      "layernorm/2",
      "eval/1",
      "fisher-layernorm/1",
    ]);
    for (const c of report.cases) {
      assert.equal(c.error, undefined, `${c.kind}: ${c.error}`);
      assert.ok(c.losses.length > 0 && c.losses.every(Number.isFinite), `${c.kind}: losses ${c.losses}`);
      assert.ok(c.stepSeconds > 0 && c.flops > 0 && c.gflops > 0, c.kind);
      assert.ok(c.memory.rssBytes > 0);
    }
    // Trained counts: every parameter, the biases, the LayerNorms (+ the head in each mode).
    const trainable = Object.fromEntries(
      report.cases.filter((c) => c.workers === 1).map((c) => [c.kind, c.trainable]),
    );
    assert.ok(
      trainable.full > 4e6 && trainable.bitfit < 2e4 && trainable.layernorm === 1538,
      JSON.stringify(trainable),
    );
    // 1 and 2 workers train the same parameters from the same start: the first losses agree.
    const first = (kind: string, w: number) => report.cases.find((c) => c.kind === kind && c.workers === w)!;
    assert.equal(first("layernorm", 1).trainable, first("layernorm", 2).trainable);
    assert.ok(report.cases.find((c) => c.kind === "layernorm" && c.workers === 1)!.kernels!.length > 3);
  } finally {
    await cleanup();
  }
});

Deno.test("bench flags are checked", async () => {
  await assert.rejects(() => main(["--shapes", "huge"]), /--shapes: "huge" is not one of tiny, mini, base/);
  await assert.rejects(() => main(["--workers", "0"]), /--workers: "0" is not a positive integer/);
});
