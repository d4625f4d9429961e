import assert from "node:assert/strict";
import type { MatMulRow } from "../../lib/bench/matmul.ts";
import { formatCases, formatJobs, type JobCase, toReportCase } from "../../lib/bench/report.ts";
import type { CaseResult } from "../../lib/bench/cases.ts";

const peak: MatMulRow = {
  form: "plain",
  shape: "[4096,128] x [128,512]",
  flops: 1,
  seconds: 1,
  gflops: 20,
  timing: { median: 1, min: 1, max: 1, runs: [1], cpu: 1 },
};

function result(workers: number): CaseResult {
  return {
    kind: "layernorm",
    shape: "tiny",
    workers,
    gemm: workers === 1 ? "wasm" : "openblas-t1",
    batch: 32,
    seq: 128,
    trainable: 1538,
    timing: { median: 0.5, min: 0.4, max: 0.6, runs: [0.4, 0.5, 0.6], cpu: 0.45 },
    examplesPerSecond: 64,
    flops: 5e9,
    gflops: 10,
    losses: [0.7, 0.69],
    memory: { tfBytes: 1, rssBytes: 2 ** 30, wasmHeapBytes: 2 ** 29 },
  };
}

Deno.test("report case: fraction of the matMul peak (per worker) and the PyTorch ratio", () => {
  const one = toReportCase(result(1), peak, {
    runtime: "torch 2",
    shape: "tiny",
    mode: "layernorm",
    batch: 32,
    seq: 128,
    trainable: 1538,
    step_s: 0.25,
    examples_per_s: 128,
  });
  assert.equal(one.fractionOfPeak, 0.5);
  assert.equal(one.torchRatio, 2);
  assert.equal(one.stepSeconds, 0.5);
  assert.equal(one.minSeconds, 0.4);
  const two = toReportCase(result(2), peak);
  assert.equal(two.fractionOfPeak, 0.25); // two workers: twice the peak available
  assert.equal(two.torchRatio, undefined);
  const table = formatCases([one, two]);
  assert.match(
    table.split("\n")[1],
    /tiny\s+layernorm\s+wasm\s+1\s+32x128\s+0\.500\s+0\.400\s+64\.0\s+10\.0\s+50%\s+0\.250\s+2\.00x\s+-\s+512\s+1024/,
  );
  assert.match(table.split("\n")[2], /tiny\s+layernorm\s+openblas-t1\s+2\s+32x128.*25%\s+-\s+-/);
});

Deno.test("job table: normtune and PyTorch seconds, ratio; an error row says why", () => {
  const job: JobCase = {
    shape: "tiny",
    model: "bert-tiny-v2",
    mode: "layernorm",
    workers: 2,
    gemm: "openblas-t1",
    examples: 640,
    steps: 20,
    batch: 32,
    maxLen: 128,
    paddingShare: 0.25,
    trainable: 1538,
    trainSeconds: 8,
    evalSeconds: 1,
    devExamples: 277,
    wholeSeconds: 12,
    cpuSeconds: 20,
    examplesPerSecond: 80,
    trainLoss: 0.69,
    rssBytes: 2 ** 30,
    torch: {
      trainSeconds: 10,
      setupSeconds: 0.2,
      wallSeconds: 13,
      runtime: "torch 1.13",
      threads: 2,
      trainable: 1538,
      steps: 20,
      trainLoss: 0.7,
    },
    torchRatio: 0.8,
  };
  const text = formatJobs([job, {
    ...job,
    mode: "full",
    torch: undefined,
    torchRatio: undefined,
    error: "boom",
  }]);
  const [head, ok, bad] = text.split("\n");
  assert.match(
    head,
    /^shape\s+mode\s+gemm\s+wk\s+examples\s+steps\s+pad\s+train s\s+eval s\s+whole s\s+torch s\s+ratio/,
  );
  assert.match(
    ok,
    /^tiny\s+layernorm\s+openblas-t1\s+2\s+640\s+20\s+25%\s+8\.000\s+1\.000\s+12\.0\s+10\.0\s+0\.80x\s+0\.690\s+0\.700$/,
  );
  assert.match(bad, /^tiny\s+full\s+openblas-t1\s+2\s+640\s+error: boom$/);
});
