import { finetune } from "../lib/tuning/trainer.ts";
import { tf } from "../lib/tf.ts";
for (let i = 0; i < 3; i++) {
  const r = await finetune({ model: "/tmp/bj/random-base", task: "RTE", mode: "layernorm", batchSize: 8, maxTrain: 8, maxDev: 8, epochs: 1, workers: 1, gemm: "openblas", out: `/tmp/bj/tw-${i}`, fresh: true, quiet: true });
  const m = tf.memory() as { numTensors: number; numBytes: number };
  console.log(i, r.metrics.trainSeconds.toFixed(1), m.numTensors, (m.numBytes / 2 ** 20).toFixed(0), "MiB", "rss", (Deno.memoryUsage().rss / 2 ** 20).toFixed(0));
}
