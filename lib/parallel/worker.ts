/**
 * A data-parallel worker (a Deno Worker with its own TensorFlow.js and wasm heap): holds a replica of
 * the model, computes the gradients of its share of each batch, and takes parameter updates. Started by
 * engine.ts; see protocol.ts for the messages.
 */
import { BertClassifier } from "../bert/model.ts";
import { chooseGemm, gemmIdentity } from "../backend/gemm_choice.ts";
import { initBackend } from "../tf.ts";
import { assignParams, computeGrads } from "./replica.ts";
import type { FromWorker, ToWorker } from "./protocol.ts";

const scope = globalThis as unknown as {
  postMessage(message: FromWorker, transfer?: Transferable[]): void;
  onmessage: ((e: MessageEvent<ToWorker>) => void) | null;
  close(): void;
};

let model: BertClassifier | undefined;

function send(message: FromWorker): void {
  scope.postMessage(message);
}

async function handle(msg: ToWorker): Promise<void> {
  switch (msg.type) {
    case "init": {
      const backend = await initBackend(msg.backend);
      // This isolate's kernels read their own product choice: the main thread's, passed on.
      const gemm = chooseGemm(backend, msg.gemm);
      const tensors = new Map(msg.tensors.map(([name, shape, data]) => [name, { shape, data }]));
      model = new BertClassifier(msg.config, msg.numLabels, tensors);
      send({ type: "ready", backend: gemmIdentity(backend, gemm) });
      return;
    }
    case "grads": {
      if (!model) throw new Error("worker: grads before init");
      const { labels, ...batch } = msg.batch;
      const into = new Map(msg.out.map(([name, , data]) => [name, data]));
      const r = await computeGrads(
        model,
        batch,
        labels,
        msg.names,
        msg.seed,
        msg.training,
        msg.microBatch,
        into,
      );
      send({ type: "grads", id: msg.id, loss: r.loss, heapBytes: r.heapBytes?.[0] });
      return;
    }
    case "set": {
      if (!model) throw new Error("worker: set before init");
      assignParams(model, msg.tensors.map(([name, , data]) => [name, data]));
      send({ type: "set", id: msg.id });
      return;
    }
    case "close":
      model?.dispose();
      scope.close();
      return;
  }
}

// Messages are handled one at a time, in order.
let queue: Promise<void> = Promise.resolve();
scope.onmessage = (e) => {
  const msg = e.data;
  queue = queue.then(() => handle(msg)).catch((err) => {
    const id = "id" in msg ? msg.id : undefined;
    send({ type: "error", id, message: err instanceof Error ? err.message : String(err) });
  });
};
