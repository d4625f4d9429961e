/**
 * AdamW on plain Float32Arrays, for the main thread of the data-parallel engine: the replicas hold the
 * model, so the main thread keeps only the trained parameters and their moments, outside any wasm heap
 * (bert-base full fine-tuning: 440 MB of parameters and 880 MB of moments would otherwise crowd the 4 GiB
 * heap). One fused loop per parameter instead of ~10 tensor ops.
 *
 * The update is lib/tuning/optimizer.ts's (torch.optim.AdamW: decoupled weight decay, bias correction,
 * no decay for biases and LayerNorm), in float64 arithmetic per element rounded to float32.
 *
 * ```ts
 * const opt = new FlatAdamW(trained, { weightDecay: 0.01 }); // trained: Map<name, Float32Array>
 * opt.apply(grads, 1e-4); // updates the arrays in `trained` in place
 * await engine.setParams(trained);
 * ```
 */
import { decays } from "../tuning/optimizer.ts";

export interface FlatAdamWOptions {
  beta1?: number;
  beta2?: number;
  eps?: number;
  /** Decoupled weight decay (default 0.01); never applied to biases and LayerNorm parameters. */
  weightDecay?: number;
  /** Element masks (1 = trained) for masked parameters; others train in full. */
  masks?: Map<string, Float32Array>;
}

export class FlatAdamW {
  readonly beta1: number;
  readonly beta2: number;
  readonly eps: number;
  readonly weightDecay: number;
  step = 0;
  #m = new Map<string, Float32Array>();
  #v = new Map<string, Float32Array>();
  #masks: Map<string, Float32Array>;

  /** `params` are updated in place by `apply`. */
  constructor(readonly params: Map<string, Float32Array>, opts: FlatAdamWOptions = {}) {
    this.beta1 = opts.beta1 ?? 0.9;
    this.beta2 = opts.beta2 ?? 0.999;
    this.eps = opts.eps ?? 1e-8;
    this.weightDecay = opts.weightDecay ?? 0.01;
    this.#masks = opts.masks ?? new Map();
    for (const [name, p] of params) {
      const mask = this.#masks.get(name);
      if (mask && mask.length !== p.length) {
        throw new Error(`FlatAdamW: mask of "${name}" has ${mask.length} values, parameter has ${p.length}`);
      }
      this.#m.set(name, new Float32Array(p.length));
      this.#v.set(name, new Float32Array(p.length));
    }
  }

  /** One update at learning rate `lr`; `grads` must hold every parameter. */
  apply(grads: Map<string, Float32Array>, lr: number): void {
    this.step++;
    const b1 = this.beta1, b2 = this.beta2, eps = this.eps;
    const stepSize = lr / (1 - b1 ** this.step);
    const bc2Sqrt = Math.sqrt(1 - b2 ** this.step);
    for (const [name, p] of this.params) {
      const g = grads.get(name);
      if (!g) throw new Error(`FlatAdamW: no gradient for trained parameter "${name}"`);
      if (g.length !== p.length) {
        throw new Error(`FlatAdamW: gradient of "${name}" has ${g.length} values, not ${p.length}`);
      }
      const m = this.#m.get(name)!, v = this.#v.get(name)!, mask = this.#masks.get(name);
      const keep = decays(name) ? 1 - lr * this.weightDecay : 1;
      for (let i = 0; i < p.length; i++) {
        if (mask && mask[i] === 0) continue; // untrained elements keep their exact bits
        const gi = g[i];
        const mi = b1 * m[i] + (1 - b1) * gi;
        const vi = b2 * v[i] + (1 - b2) * gi * gi;
        m[i] = mi;
        v[i] = vi;
        p[i] = p[i] * keep - stepSize * mi / (Math.sqrt(vi) / bc2Sqrt + eps);
      }
    }
  }
}
