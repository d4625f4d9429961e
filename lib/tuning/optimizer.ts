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
 *
 * The update is a sequence of tfjs ops per parameter (`#applyOps`), which every backend runs. Where the
 * fused kernel `NormtuneAdamW` is registered (wasm and cpu: lib/backend/optimizer_kernels.ts) the same
 * float32 operations run in one pass per parameter instead, with bitwise the same results; so does the
 * non-finite check (`NormtuneNonFinite`). The exact sequence, per element, each step a tfjs kernel
 * computing in float32 and rounding its result to float32, each JavaScript number entering as a float32
 * scalar (`Math.fround` of it):
 * ```
 * g  = grad * scale                         Multiply   only with `scale` (the clipping coefficient)
 * g  = g * maskFloat                        Multiply   masked parameters only
 * m' = (m * beta1) + (g * (1 - beta1))      Multiply, Multiply, Add
 * v' = (v * beta2) + (square(g) * (1 - beta2))   Multiply, Square, Multiply, Add
 * p0 = p * (1 - lr * wd)                    Multiply   only when wd > 0 (else p0 = p)
 * d  = (sqrt(v') / bc2Sqrt) + eps           Sqrt, RealDiv, Add
 * p' = p0 - ((m' / d) * stepSize)           RealDiv, Multiply, Sub
 * p' = maskFloat > 0 ? p' : p               Greater (made once), Select   masked parameters only
 * ```
 * where `1 - beta1`, `1 - beta2`, `1 - lr * wd`, `bc2Sqrt = Math.sqrt(1 - beta2 ** t)` and
 * `stepSize = lr / (1 - beta1 ** t)` are computed in float64 by JavaScript and rounded once, as scalars.
 */
import { isBias, isLayerNorm } from "../bert/names.ts";
import type { TensorMap } from "../bert/safetensors.ts";
import { type AdamWAttrs, OPTIMIZER_KERNELS } from "../backend/optimizer_kernels.ts";
import { tf } from "../tf.ts";
import type { Selection } from "./modes.ts";

export interface AdamWOptions {
  beta1?: number;
  beta2?: number;
  eps?: number;
  /** Decoupled weight decay (default 0.01); never applied to biases and LayerNorm parameters. */
  weightDecay?: number;
  /** Run the tfjs op sequence even where the fused kernels are registered (the reference they match). */
  ops?: boolean;
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
  /**
   * true: the update and the non-finite check run as tfjs ops even where the fused kernels exist (set
   * from `ops`; tests and timings switch it to compare both ways).
   */
  ops: boolean;
  /** The trained names, in the model's parameter order. */
  readonly names: string[];
  #slots = new Map<string, Slot>();

  constructor(params: Map<string, tf.Variable>, selection: Selection, opts: AdamWOptions = {}) {
    this.beta1 = opts.beta1 ?? 0.9;
    this.beta2 = opts.beta2 ?? 0.999;
    this.eps = opts.eps ?? 1e-8;
    this.weightDecay = opts.weightDecay ?? 0.01;
    this.ops = opts.ops ?? false;
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

  /** Whether the fused kernel `name` runs here (it is registered for the active backend). */
  #fused(name: string): boolean {
    return !this.ops && registered(name);
  }

  /**
   * One AdamW update at learning rate `lr`; `grads` must hold every trained name. With `scale` (a
   * clipping coefficient) each gradient is first multiplied by it: the same bits as applying
   * `tf.mul(grad, scale)` (what `clipByGlobalNorm` returns), without making those tensors.
   */
  apply(grads: Map<string, tf.Tensor>, lr: number, scale?: number): void {
    this.step++;
    const t = this.step;
    const stepSize = lr / (1 - this.beta1 ** t);
    const bc2Sqrt = Math.sqrt(1 - this.beta2 ** t);
    const fused = this.#fused(OPTIMIZER_KERNELS.adamw);
    for (const name of this.names) {
      const s = this.#slots.get(name)!;
      const grad = grads.get(name);
      if (!grad) throw new Error(`AdamW: no gradient for trained parameter "${name}"`);
      const attrs: AdamWAttrs = {
        scale,
        beta1: this.beta1,
        oneMinusBeta1: 1 - this.beta1,
        beta2: this.beta2,
        oneMinusBeta2: 1 - this.beta2,
        decay: s.weightDecay > 0 ? 1 - lr * s.weightDecay : undefined,
        bc2Sqrt,
        eps: this.eps,
        stepSize,
      };
      tf.tidy(() => {
        const [p, m, v] = fused ? this.#applyFused(s, grad, attrs) : this.#applyOps(s, grad, attrs);
        s.m.assign(m);
        s.v.assign(v);
        s.param.assign(p);
      });
    }
  }

  /** The update as tfjs ops (every backend); the sequence the header writes out. Call inside tf.tidy. */
  #applyOps(s: Slot, grad: tf.Tensor, a: AdamWAttrs): tf.Tensor[] {
    let g = a.scale === undefined ? grad : tf.mul(grad, a.scale);
    if (s.mask) g = tf.mul(g, s.mask.float);
    const m = tf.add(tf.mul(s.m, a.beta1), tf.mul(g, a.oneMinusBeta1));
    const v = tf.add(tf.mul(s.v, a.beta2), tf.mul(tf.square(g), a.oneMinusBeta2));
    let p: tf.Tensor = s.param;
    if (a.decay !== undefined) p = tf.mul(p, a.decay);
    const denom = tf.add(tf.div(tf.sqrt(v), a.bc2Sqrt), a.eps);
    p = tf.sub(p, tf.mul(tf.div(m, denom), a.stepSize));
    if (s.mask) p = tf.where(s.mask.bool, p, s.param);
    return [p, m, v];
  }

  /** The same update in one fused kernel (wasm, cpu), with the same bits. Call inside tf.tidy. */
  #applyFused(s: Slot, grad: tf.Tensor, attrs: AdamWAttrs): tf.Tensor[] {
    const inputs: Record<string, tf.Tensor> = { p: s.param, m: s.m, v: s.v, g: grad };
    if (s.mask) inputs.mask = s.mask.float;
    // Attributes left undefined mean "no such multiply": drop them rather than pass undefined.
    const defined = Object.fromEntries(Object.entries(attrs).filter(([, x]) => x !== undefined));
    return tf.engine().runKernel(OPTIMIZER_KERNELS.adamw, inputs, defined as tf.NamedAttrMap) as tf.Tensor[];
  }

  /**
   * The first trained parameter that holds NaN or an infinity, or `undefined`: one read of one small
   * vector, so it can run after every update. A huge learning rate gives a finite loss and gradient but an
   * infinite update, which only this check sees. The moments need none: finite gradients (the caller
   * checks their norm) keep them finite.
   */
  async nonFinite(): Promise<string | undefined> {
    if (this.names.length === 0) return undefined;
    const params = this.names.map((n) => this.#slots.get(n)!.param);
    // x * 0 is 0 for finite x and NaN otherwise, so each sum is 0 or NaN; the fused kernel gives 0 or 1.
    const sums = this.#fused(OPTIMIZER_KERNELS.nonFinite)
      ? tf.engine().runKernel(
        OPTIMIZER_KERNELS.nonFinite,
        params as unknown as tf.NamedTensorMap,
      ) as tf.Tensor
      : tf.tidy(() => tf.stack(params.map((p) => tf.sum(tf.mul(p, 0)))));
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

/** Whether the fused kernel `name` is registered for the active backend (wasm and cpu). */
function registered(name: string): boolean {
  return tf.getKernel(name, tf.getBackend()) !== undefined;
}

/**
 * The global L2 norm of `grads` (0 for none): the sum of every gradient's sum of squares, then its square
 * root in float64. Each sum of squares is `tf.sum(tf.square(g))` (on wasm a float32 sum in index order,
 * which a change of kernel could alter), run as the fused kernel `NormtuneSumSquares` where it is
 * registered (the same bits in one pass, skipping zeros); `ops` runs the tfjs ops anyway (the reference).
 */
export async function globalNorm(grads: Map<string, tf.Tensor>, ops = false): Promise<number> {
  if (grads.size === 0) return 0;
  const fused = !ops && registered(OPTIMIZER_KERNELS.sumSquares);
  const sq = tf.tidy(() =>
    tf.addN(
      fused
        ? tf.engine().runKernel(
          OPTIMIZER_KERNELS.sumSquares,
          [...grads.values()] as unknown as tf.NamedTensorMap,
        ) as tf.Tensor[]
        : [...grads.values()].map((g) => tf.sum(tf.square(g))),
    )
  );
  try {
    return Math.sqrt((await sq.data())[0]);
  } finally {
    sq.dispose();
  }
}

/**
 * The factor `torch.nn.utils.clip_grad_norm_` scales gradients by at this norm, `max / (norm + 1e-6)`, or
 * `undefined` where it does not scale them: that factor is not below 1, `maxNorm` is 0 or Infinity
 * ("off"), or the norm is not finite.
 */
export function clipCoefficient(norm: number, maxNorm: number): number | undefined {
  if (!(maxNorm > 0) || !Number.isFinite(maxNorm) || !Number.isFinite(norm)) return undefined;
  const coef = maxNorm / (norm + 1e-6);
  return coef >= 1 ? undefined : coef;
}

/**
 * Clips gradients to a global L2 norm as `torch.nn.utils.clip_grad_norm_` does (scale by
 * `max / (norm + 1e-6)` when that is below 1). Returns the norm before clipping; when no clipping
 * happens (or `maxNorm` is 0 or Infinity, meaning "off") the same tensors come back, otherwise new ones
 * the caller disposes. (`StepRunner` passes the coefficient to `AdamW.apply` instead: the same bits
 * without the scaled copies.)
 */
export async function clipByGlobalNorm(
  grads: Map<string, tf.Tensor>,
  maxNorm: number,
): Promise<{ grads: Map<string, tf.Tensor>; norm: number }> {
  const norm = await globalNorm(grads);
  const coef = clipCoefficient(norm, maxNorm);
  if (coef === undefined) return { grads, norm };
  const out = new Map<string, tf.Tensor>();
  for (const [name, g] of grads) out.set(name, tf.mul(g, coef));
  return { grads: out, norm };
}
