/**
 * The golden fixture (tests/fixtures/golden, made by tools/make_golden.py with PyTorch): a 2-layer BERT,
 * three encoded rows, and PyTorch's logits, loss and every gradient. Shared by the model tests of each
 * backend (model_test.ts: cpu and wasm; webgpu_test.ts).
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { tf } from "../../lib/tf.ts";
import { type Batch, batchFromEncoded, sliceRows } from "../../lib/bert/batch.ts";
import { BertClassifier } from "../../lib/bert/model.ts";
import { isBias, isLayerNorm } from "../../lib/bert/names.ts";
import { type BertConfig, readConfig } from "../../lib/bert/config.ts";
import { readSafetensors, type TensorMap } from "../../lib/bert/safetensors.ts";

export const GOLDEN = join(import.meta.dirname!, "..", "fixtures", "golden");
export interface GoldenRow {
  input_ids: number[];
  token_type_ids: number[];
  attention_mask: number[];
}
export interface GoldenCase {
  num_labels: number;
  labels: number[];
  logits: number[][];
  loss: number;
}
export interface Golden {
  rows: GoldenRow[];
  cls: GoldenCase;
  reg: GoldenCase;
}

export async function golden(): Promise<{ config: BertConfig; body: TensorMap; data: Golden }> {
  return {
    config: await readConfig(join(GOLDEN, "config.json")),
    body: await readSafetensors(join(GOLDEN, "model.safetensors")),
    data: JSON.parse(await Deno.readTextFile(join(GOLDEN, "golden.json"))),
  };
}

export async function goldenModel(
  tag: "cls" | "reg",
): Promise<{ model: BertClassifier; batch: Batch; g: GoldenCase }> {
  const { config, body, data } = await golden();
  const head = await readSafetensors(join(GOLDEN, `head_${tag}.safetensors`));
  const g = data[tag];
  const model = new BertClassifier(config, g.num_labels, new Map([...body, ...head]));
  return { model, batch: goldenBatch(data), g };
}

export function goldenBatch(data: Golden): Batch {
  return batchFromEncoded(
    data.rows.map((r) => ({
      inputIds: r.input_ids,
      tokenTypeIds: r.token_type_ids,
      attentionMask: r.attention_mask,
    })),
  );
}

/** |got - want| <= atol + rtol |want| elementwise. */
export function assertClose(
  got: ArrayLike<number>,
  want: ArrayLike<number>,
  what: string,
  atol = 1e-5,
  rtol = 1e-4,
) {
  assert.equal(got.length, want.length, `${what}: length`);
  for (let i = 0; i < want.length; i++) {
    const bound = atol + rtol * Math.abs(want[i]);
    assert.ok(Math.abs(got[i] - want[i]) <= bound, `${what}[${i}]: got ${got[i]}, want ${want[i]}`);
  }
}

/**
 * Gradients of the mean loss for every parameter, by Hugging Face name. Read with `data()`, not
 * `dataSync()`: webgpu cannot read synchronously under Deno.
 */
export async function allGrads(
  model: BertClassifier,
  batch: Batch,
  labels: number[],
): Promise<{ loss: number; grads: Map<string, Float32Array> }> {
  const vars = [...model.params.values()];
  const { value, grads } = tf.variableGrads(() => model.loss(model.logits(batch), labels), vars);
  const out = new Map<string, Float32Array>();
  for (const [name, v] of model.params) out.set(name, await grads[v.name].data() as Float32Array);
  const loss = (await value.data())[0];
  tf.dispose([value, ...Object.values(grads)]);
  return { loss, grads: out };
}

/**
 * Frozen weights get no gradient computed: on the golden model, LayerNorm-only gradients run no product with
 * a weight's shape ([16, 16], [32, 16], [16, 32]), all-parameter gradients at least 12 (6 dense weights per
 * layer, 2 layers). `products` names the kernels that compute a weight gradient on the active backend.
 */
export async function assertFrozenWeightsGetNoGradient(products: string[]): Promise<void> {
  const { model, batch, g } = await goldenModel("cls");
  const weightProducts = async (vars: tf.Variable[]) => {
    const info = await tf.profile(() => {
      const { value, grads } = tf.variableGrads(() => model.loss(model.logits(batch), g.labels), vars);
      assert.deepEqual(Object.keys(grads).sort(), vars.map((v) => v.name).sort());
      tf.dispose([value, ...Object.values(grads)]);
    });
    const weightShapes = ["16,16", "32,16", "16,32"];
    return info.kernels.filter((k) =>
      products.includes(k.name) && weightShapes.includes(String(k.outputShapes[0]))
    )
      .length;
  };
  const layerNorms = [...model.params].filter(([n]) => isLayerNorm(n)).map(([, v]) => v);
  assert.equal(await weightProducts(layerNorms), 0);
  assert.ok(await weightProducts([...model.params.values()]) >= 12);
  model.dispose();
}

/**
 * Per-example gradients from one backward pass equal one-example passes, on the golden model and the active
 * backend: every element-wise parameter tiled to [n, ...shape]; the summed loss's gradient w.r.t. copy b is
 * example b's own gradient (what Fisher scores need). `where` names the backend in messages.
 */
export async function assertPerExampleGradients(where: string): Promise<void> {
  const { model, batch, g } = await goldenModel("cls");
  const names = [...model.params.keys()].filter((n) => isLayerNorm(n) || isBias(n));
  const n = batch.batchSize;
  const perExample = tf.tidy(() => {
    const tiled = names.map((name) => {
      const p = model.params.get(name)!;
      return tf.tile(tf.expandDims(p, 0), [n, ...p.shape.map(() => 1)]);
    });
    const f = (...xs: tf.Tensor[]) => {
      const overrides = new Map(names.map((name, i) => [name, xs[i]]));
      return tf.mul(model.loss(model.logits(batch, { overrides }), g.labels), n) as tf.Scalar;
    };
    return tf.grads(f)(tiled);
  });
  // Read asynchronously: webgpu has no synchronous read under Deno.
  const batched = await Promise.all(perExample.map((t) => t.array() as Promise<number[][]>));
  tf.dispose(perExample);
  for (let b = 0; b < n; b++) {
    const { grads } = await allGrads(model, sliceRows(batch, b, 1), [g.labels[b]]);
    names.forEach((name, i) =>
      assertClose(batched[i][b].flat(), grads.get(name)!, `${where} ${name} example ${b}`)
    );
  }
  model.dispose();
}
