/**
 * AdamW as `torch.optim.AdamW` computes it (decoupled weight decay, bias correction), for the trained
 * parameters only: frozen parameters get neither moments nor updates. Weight decay skips biases and
 * LayerNorm parameters, as the Hugging Face recipes do.
 *
 * Per update `t` (1-based), for parameter `p` with gradient `g`:
 * ```
 * p <- p * (1 - lr * wd)
 * m <- b1 m + (1 - b1) g ;  v <- b2 v + (1 - b2) g^2
 * p <- p - lr / (1 - b1^t) * m / (sqrt(v) / sqrt(1 - b2^t) + eps)
 * ```
 * A masked parameter's gradient is multiplied by its mask and its new value taken only where the mask is
 * 1 (`tf.where`), so unselected elements keep their exact bits, weight decay included.
 *
 * ```ts
 * const opt = new AdamW(model.params, selection, { weightDecay: 0.01 });
 * const masked = opt.maskGradients(grads); const { grads: clipped } = await clipByGlobalNorm(masked, 1);
 * opt.apply(clipped, 1e-3);
 * ```
 *
 * Every read of a tensor's values here is `await data()`: webgpu cannot read synchronously under Deno,
 * and on wasm/cpu it gives the same values as `dataSync()`.
 */
import { isBias, isLayerNorm } from "../bert/names.ts";
import type { TensorMap } from "../bert/safetensors.ts";
import { tf } from "../tf.ts";
import type { Selection } from "./modes.ts";

export interface AdamWOptions {
  beta1?: number;
  beta2?: number;
  eps?: number;
  /** Decoupled weight decay (default 0.01); never applied to biases and LayerNorm parameters. */
  weightDecay?: number;
}

/** Biases and LayerNorm parameters get no weight decay. */
export function decays(name: string): boolean {
  return !isBias(name) && !isLayerNorm(name);
}

interface Slot {
  param: tf.Variable;
  m: tf.Variable;
  v: tf.Variable;
  /** 1 where the element trains (float, for gradients) and the same as bool (for tf.where). */
  mask?: { float: tf.Tensor; bool: tf.Tensor };
  weightDecay: number;
}

export class AdamW {
  readonly beta1: number;
  readonly beta2: number;
  readonly eps: number;
  readonly weightDecay: number;
  /** Updates applied so far. */
  step = 0;
  /** The trained names, in the model's parameter order. */
  readonly names: string[];
  #slots = new Map<string, Slot>();

  constructor(params: Map<string, tf.Variable>, selection: Selection, opts: AdamWOptions = {}) {
    this.beta1 = opts.beta1 ?? 0.9;
    this.beta2 = opts.beta2 ?? 0.999;
    this.eps = opts.eps ?? 1e-8;
    this.weightDecay = opts.weightDecay ?? 0.01;
    this.names = [...params.keys()].filter((n) => selection.has(n));
    for (const name of selection.keys()) {
      if (!params.has(name)) throw new Error(`AdamW: trained parameter "${name}" is not in the model`);
    }
    for (const name of this.names) {
      const param = params.get(name)!;
      const sel = selection.get(name)!;
      let mask: Slot["mask"];
      if (sel !== "all") {
        if (sel.length !== param.size) {
          throw new Error(`AdamW: mask of "${name}" has ${sel.length} values, parameter has ${param.size}`);
        }
        const float = tf.tensor(sel, param.shape, "float32");
        mask = { float, bool: tf.tidy(() => tf.greater(float, 0)) };
      }
      this.#slots.set(name, {
        param,
        m: tf.tidy(() => tf.variable(tf.zerosLike(param), false)),
        v: tf.tidy(() => tf.variable(tf.zerosLike(param), false)),
        mask,
        weightDecay: decays(name) ? this.weightDecay : 0,
      });
    }
  }

  /** The trained variables, for `tf.variableGrads(f, opt.variables())`. */
  variables(): tf.Variable[] {
    return this.names.map((n) => this.#slots.get(n)!.param);
  }

  /**
   * Gradients with masked-out elements zeroed (new tensors for masked parameters, the same tensors
   * otherwise). Do this before clipping, so the norm counts only trained elements.
   */
  maskGradients(grads: Map<string, tf.Tensor>): Map<string, tf.Tensor> {
    const out = new Map<string, tf.Tensor>();
    for (const [name, g] of grads) {
      const mask = this.#slots.get(name)?.mask;
      out.set(name, mask ? tf.mul(g, mask.float) : g);
    }
    return out;
  }

  /** One AdamW update at learning rate `lr`; `grads` must hold every trained name. */
  apply(grads: Map<string, tf.Tensor>, lr: number): void {
    this.step++;
    const t = this.step;
    const stepSize = lr / (1 - this.beta1 ** t);
    const bc2Sqrt = Math.sqrt(1 - this.beta2 ** t);
    for (const name of this.names) {
      const s = this.#slots.get(name)!;
      const grad = grads.get(name);
      if (!grad) throw new Error(`AdamW: no gradient for trained parameter "${name}"`);
      tf.tidy(() => {
        const g = s.mask ? tf.mul(grad, s.mask.float) : grad;
        const m = tf.add(tf.mul(s.m, this.beta1), tf.mul(g, 1 - this.beta1));
        const v = tf.add(tf.mul(s.v, this.beta2), tf.mul(tf.square(g), 1 - this.beta2));
        let p: tf.Tensor = s.param;
        if (s.weightDecay > 0) p = tf.mul(p, 1 - lr * s.weightDecay);
        const denom = tf.add(tf.div(tf.sqrt(v), bc2Sqrt), this.eps);
        p = tf.sub(p, tf.mul(tf.div(m, denom), stepSize));
        if (s.mask) p = tf.where(s.mask.bool, p, s.param);
        s.m.assign(m);
        s.v.assign(v);
        s.param.assign(p);
      });
    }
  }

  /**
   * The first trained parameter that holds NaN or an infinity, or `undefined`: one read of one small
   * vector, so it can run after every update. A huge learning rate gives a finite loss and gradient but an
   * infinite update, which only this check sees. The moments need none: finite gradients (the caller
   * checks their norm) keep them finite.
   */
  async nonFinite(): Promise<string | undefined> {
    if (this.names.length === 0) return undefined;
    // x * 0 is 0 for finite x and NaN otherwise, so each sum is 0 or NaN.
    const sums = tf.tidy(() => tf.stack(this.names.map((n) => tf.sum(tf.mul(this.#slots.get(n)!.param, 0)))));
    let d: Float32Array;
    try {
      d = (await sums.data()) as Float32Array;
    } finally {
      sums.dispose();
    }
    const i = d.findIndex((x) => x !== 0);
    return i < 0 ? undefined : this.names[i];
  }

  /** The moments as named tensors `m/NAME`, `v/NAME` (for saving a run's state). */
  async exportState(): Promise<TensorMap> {
    const out: TensorMap = new Map();
    for (const name of this.names) {
      const s = this.#slots.get(name)!;
      out.set(`m/${name}`, { shape: [...s.m.shape], data: (await s.m.data()) as Float32Array });
      out.set(`v/${name}`, { shape: [...s.v.shape], data: (await s.v.data()) as Float32Array });
    }
    return out;
  }

  /** Restores moments written by `exportState` and the update count. */
  importState(state: TensorMap, step: number): void {
    for (const name of this.names) {
      const s = this.#slots.get(name)!;
      for (const [key, variable] of [["m", s.m], ["v", s.v]] as const) {
        const t = state.get(`${key}/${name}`);
        if (!t) throw new Error(`saved optimizer state lacks "${key}/${name}"`);
        if (t.data.length !== variable.size) {
          throw new Error(
            `saved optimizer state "${key}/${name}" has ${t.data.length} values, expected ${variable.size}`,
          );
        }
        tf.tidy(() => variable.assign(tf.tensor(t.data, variable.shape, "float32")));
      }
    }
    this.step = step;
  }

  dispose(): void {
    for (const s of this.#slots.values()) {
      s.m.dispose();
      s.v.dispose();
      s.mask?.float.dispose();
      s.mask?.bool.dispose();
    }
    this.#slots.clear();
  }
}

/**
 * Clips gradients to a global L2 norm as `torch.nn.utils.clip_grad_norm_` does (scale by
 * `max / (norm + 1e-6)` when that is below 1). Returns the norm before clipping; when no clipping
 * happens (or `maxNorm` is 0 or Infinity, meaning "off") the same tensors come back, otherwise new ones
 * the caller disposes.
 */
export async function clipByGlobalNorm(
  grads: Map<string, tf.Tensor>,
  maxNorm: number,
): Promise<{ grads: Map<string, tf.Tensor>; norm: number }> {
  let norm = 0;
  if (grads.size > 0) {
    const sq = tf.tidy(() => tf.addN([...grads.values()].map((g) => tf.sum(tf.square(g)))));
    try {
      norm = Math.sqrt((await sq.data())[0]);
    } finally {
      sq.dispose();
    }
  }
  if (!(maxNorm > 0) || !Number.isFinite(maxNorm) || !Number.isFinite(norm)) return { grads, norm };
  const coef = maxNorm / (norm + 1e-6);
  if (coef >= 1) return { grads, norm };
  const out = new Map<string, tf.Tensor>();
  for (const [name, g] of grads) out.set(name, tf.mul(g, coef));
  return { grads: out, norm };
}
