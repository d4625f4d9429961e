/**
 * The gradients of the fused kernels (lib/backend/fused_kernels.ts), as lazy per-input thunks: tfjs runs
 * only the thunks on a path to a requested variable, so a frozen weight costs no gradient work (which
 * `tf.customGrad` would not give). Each thunk runs one fused gradient kernel. Registered by
 * `installBackend` (lib/backend/install.ts).
 */
import type { tf } from "../tf.ts";
import { FUSED } from "./fused_kernels.ts";

type Tfjs = typeof tf;
type Thunks = Record<string, () => tf.Tensor>;
type GradFn = (dy: tf.Tensor | tf.Tensor[], saved: tf.Tensor[], attrs: tf.NamedAttrMap) => Thunks;

const first = (dy: tf.Tensor | tf.Tensor[]) => Array.isArray(dy) ? dy[0] : dy;

/** The fused kernels' gradient registrations, running their kernels through `tf`. */
export function fusedGradients(tf: Tfjs): tf.GradConfig[] {
  const run = (name: string, inputs: Record<string, tf.Tensor>, attrs: Record<string, unknown> = {}) =>
    tf.engine().runKernel(name, inputs as tf.NamedTensorMap, attrs as tf.NamedAttrMap) as tf.Tensor;

  const gradients: [tf.GradConfig, GradFn][] = [
    [{ kernelName: FUSED.dense, inputsToSave: ["x", "w"] } as tf.GradConfig, (dyIn, [x, w]) => {
      const dy = first(dyIn);
      return {
        x: () => run(FUSED.denseGradX, { dy, w }, { shape: x.shape }),
        w: () => run(FUSED.denseGradW, { dy, x }),
        b: () => run(FUSED.colSum, { x: dy }, { groups: 1, shape: [dy.shape[dy.rank - 1]] }),
      };
    }],
    [
      {
        kernelName: FUSED.layerNorm,
        inputsToSave: ["x", "gamma"],
        outputsToSave: [false, true, true],
      } as tf.GradConfig,
      (dyIn, [x, gamma, mean, rstd]) => {
        const dy = first(dyIn);
        const groups = gamma.rank === 1 ? 1 : gamma.shape[0];
        return {
          x: () => run(FUSED.layerNormGradX, { dy, x, gamma, mean, rstd }),
          gamma: () => run(FUSED.layerNormGradGamma, { dy, x, mean, rstd }, { groups, shape: gamma.shape }),
          beta: () => run(FUSED.colSum, { x: dy }, { groups, shape: gamma.shape }),
        };
      },
    ],
    [{ kernelName: FUSED.gelu, outputsToSave: [false, true] } as tf.GradConfig, (dyIn, [dydx]) => {
      const dy = first(dyIn);
      return { x: () => tf.mul(dy, dydx) };
    }],
    // y = x m, m drawn from attrs.seed: dx = dy m, m from the kept elements the forward saved.
    [{ kernelName: FUSED.dropout, outputsToSave: [false, true] } as tf.GradConfig, (dyIn, [mask], attrs) => {
      const dy = first(dyIn);
      return { x: () => run(FUSED.dropoutGrad, { dy, mask }, { rate: attrs.rate }) };
    }],
    [{ kernelName: FUSED.scores, inputsToSave: ["q", "k"] } as tf.GradConfig, (dyIn, [q, k], attrs) => {
      const dy = first(dyIn);
      return {
        q: () => run(FUSED.scoresGradQ, { dy, k }, attrs),
        k: () => run(FUSED.scoresGradK, { dy, q }, attrs),
      };
    }],
    [
      { kernelName: FUSED.context, inputsToSave: ["probs", "v"] } as tf.GradConfig,
      (dyIn, [probs, v], attrs) => {
        const dy = first(dyIn);
        return {
          probs: () => run(FUSED.contextGradP, { dy, v }, attrs),
          v: () => run(FUSED.contextGradV, { dy, probs }, attrs),
        };
      },
    ],
  ];
  return gradients.map(([config, gradFunc]) => ({
    ...config,
    gradFunc: gradFunc as tf.GradConfig["gradFunc"],
  }));
}
