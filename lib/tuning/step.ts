/**
 * The one training update, in-process or on the data-parallel engine (lib/parallel/engine.ts): gradients
 * of the trained parameters only (frozen ones get none computed), the mode's element mask, global-norm
 * clipping, AdamW (lib/tuning/optimizer.ts), and a check that nothing became non-finite. `finetune` and
 * the benchmark (lib/bench/cases.ts) both run exactly this, on every backend.
 *
 * Its reads (loss, gradient norm, the non-finite check, trained values) are `await data()`: webgpu cannot
 * read synchronously under Deno. On a GPU each read also waits for the work queued before it, so a step
 * returns once its update has run.
 *
 * ```ts
 * const runner = new StepRunner(model, selectTrainable("layernorm", model.params.keys()), { clip: 1 });
 * const { loss, gradNorm } = await runner.step(batch, labels, 1e-3, 0);
 * ```
 */
import type { Batch } from "../bert/batch.ts";
import type { BertClassifier } from "../bert/model.ts";
import type { GradientEngine } from "../parallel/engine.ts";
import { computeGrads } from "../parallel/replica.ts";
import { tf } from "../tf.ts";
import type { Selection } from "./modes.ts";
import { AdamW, clipCoefficient, globalNorm } from "./optimizer.ts";

/** What one update reports. */
export interface StepResult {
  /** The batch's mean loss. */
  loss: number;
  /** The gradient norm before clipping. */
  gradNorm: number;
  /** The parameters gradients were computed for. */
  gradNames: string[];
  /** The replicas' wasm heaps, when the engine computed the gradients. */
  heapBytes?: number[];
}

/** A loss or gradient that is NaN or infinite: training cannot go on. */
export class NonFiniteError extends Error {}

/** One training update at a time: gradients of the trained parameters only, mask, clip, AdamW. */
export class StepRunner {
  readonly optimizer: AdamW;
  #model: BertClassifier;
  #clip: number;
  #microBatch: number;
  #nameOf = new Map<string, string>();
  /** Gradient accumulation buffers, made once: a fresh 440 MB array per bert-base step costs page faults. */
  #into?: Map<string, Float32Array>;

  constructor(
    model: BertClassifier,
    selection: Selection,
    opts: { weightDecay?: number; clip?: number; microBatch?: number } = {},
  ) {
    this.#model = model;
    this.#clip = opts.clip ?? 1;
    this.#microBatch = opts.microBatch ?? 0;
    this.optimizer = new AdamW(model.params, selection, { weightDecay: opts.weightDecay });
    for (const [name, v] of model.params) this.#nameOf.set(v.name, name);
  }

  /**
   * One update at learning rate `lr`. Returns the batch loss, the gradient norm before clipping and the
   * names gradients were computed for. A non-finite loss or gradient throws `NonFiniteError` before
   * anything changes; an update that makes a parameter non-finite throws it after (the model's values
   * are then unusable: the run stops, its last saved state was finite).
   */
  async step(
    batch: Batch,
    labels: Int32Array | Float32Array,
    lr: number,
    dropoutSeed: number,
  ): Promise<StepResult> {
    const { value, named } = await this.#gradients(batch, labels, dropoutSeed);
    return await this.#update(value, named, lr);
  }

  /**
   * The same update with the gradients computed by a data-parallel engine (lib/parallel/engine.ts,
   * replicas in Workers that each take part of the batch); the replicas then get the new values.
   */
  async stepOn(
    engine: GradientEngine,
    batch: Batch,
    labels: Int32Array | Float32Array,
    lr: number,
    dropoutSeed: number,
  ): Promise<StepResult> {
    const variables = this.optimizer.variables();
    const names = variables.map((v) => this.#nameOf.get(v.name) ?? v.name);
    const r = await engine.grads(batch, labels, names, dropoutSeed);
    const named = new Map<string, tf.Tensor>();
    names.forEach((name, i) => named.set(name, tf.tensor(r.grads.get(name)!, variables[i].shape)));
    const out = await this.#update(tf.scalar(r.loss), named, lr);
    await engine.setParams(await this.trainedValues());
    return r.heapBytes ? { ...out, heapBytes: r.heapBytes } : out;
  }

  /** The trained parameters' current values, by name (what replicas need after an update or a resume). */
  async trainedValues(): Promise<Map<string, Float32Array>> {
    const out = new Map<string, Float32Array>();
    for (const v of this.optimizer.variables()) {
      out.set(this.#nameOf.get(v.name) ?? v.name, (await v.data()) as Float32Array);
    }
    return out;
  }

  /**
   * Masks, clips and applies gradients; a non-finite loss or norm throws before anything changes, a
   * non-finite result of the update after it.
   */
  async #update(
    value: tf.Tensor,
    named: Map<string, tf.Tensor>,
    lr: number,
  ): Promise<StepResult> {
    // Disposed in `finally`, not by tf.tidy (which cannot span an await).
    const owned = new Set<tf.Tensor>([value, ...named.values()]);
    try {
      const loss = (await value.data())[0];
      if (!Number.isFinite(loss)) throw new NonFiniteError(`loss is ${loss}`);
      const masked = this.optimizer.maskGradients(named);
      for (const g of masked.values()) owned.add(g);
      const norm = await globalNorm(masked);
      if (!Number.isFinite(norm)) throw new NonFiniteError(`gradient norm is ${norm} (loss ${loss})`);
      // Clipping's scaling happens inside the update (the same bits as clipByGlobalNorm's products).
      this.optimizer.apply(masked, lr, clipCoefficient(norm, this.#clip));
      const bad = await this.optimizer.nonFinite();
      if (bad) {
        throw new NonFiniteError(
          `the update made "${bad}" non-finite (lr ${lr}, loss ${loss}, gradient norm ${norm})`,
        );
      }
      return { loss, gradNorm: norm, gradNames: [...named.keys()] };
    } finally {
      tf.dispose([...owned]);
    }
  }

  /** The batch's mean loss and the trained parameters' gradients, by name. */
  async #gradients(
    batch: Batch,
    labels: Int32Array | Float32Array,
    seed: number,
  ): Promise<{ value: tf.Tensor; named: Map<string, tf.Tensor> }> {
    const model = this.#model;
    const variables = this.optimizer.variables();
    const named = new Map<string, tf.Tensor>();
    if (this.#microBatch > 0 && this.#microBatch < batch.batchSize) {
      // Gradient accumulation over micro-batches (lib/parallel/replica.ts), then back into tensors.
      const names = variables.map((v) => this.#nameOf.get(v.name) ?? v.name);
      this.#into ??= new Map(names.map((name, i) => [name, new Float32Array(variables[i].size)]));
      const r = await computeGrads(model, batch, labels, names, seed, true, this.#microBatch, this.#into);
      names.forEach((name, i) => named.set(name, tf.tensor(r.grads.get(name)!, variables[i].shape)));
      return { value: tf.scalar(r.loss), named };
    }
    // Only the trained variables are passed: tfjs then runs no gradient thunk for frozen parameters.
    const { value, grads } = tf.variableGrads(
      () => model.loss(model.logits(batch, { training: true, seed }), labels),
      variables,
    );
    for (const [varName, g] of Object.entries(grads)) named.set(this.#nameOf.get(varName) ?? varName, g);
    return { value, named };
  }

  dispose(): void {
    this.optimizer.dispose();
  }
}
