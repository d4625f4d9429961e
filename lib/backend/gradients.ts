/**
 * Gradients for the stock TensorFlow.js kernels the project differentiates through.
 *
 * Why this exists: `@tensorflow/tfjs-core`'s npm entry (`dist/tf-core.node.js`) registers no gradients
 * (the union package `@tensorflow/tfjs` normally does), and its ESM `register_all_gradients.js` uses
 * extension-less imports that Deno cannot load. So `tf.grads`/`tf.variableGrads` fail with "gradient
 * function not found" until these are registered (by `installBackend`, lib/backend/install.ts). They
 * follow tfjs-core's own definitions (src/gradients/*_grad.ts), except two written for speed on wasm:
 * - BatchMatMul: explicit `tf.transpose` + plain products. On wasm `matMul` is fast only as a plain 2-D
 *   product without transpose flags (XNNPACK); with `transposeA`/`transposeB` (what tfjs's own gradient
 *   uses) it is 5-20x slower.
 * - GatherV2 (axis 0, what embedding lookups use): a scatter-add (the fused ScatterRows kernel where the
 *   backend has it, else JavaScript): wasm has no `UnsortedSegmentSum` kernel.
 *
 * Each gradient returns one lazy thunk per input: tfjs calls only the thunks on the path to the
 * requested tensors, so frozen weights get no gradient computed at all.
 */
import type { tf } from "../tf.ts";
import { FUSED } from "./fused_kernels.ts";

type Tfjs = typeof tf;
type Thunks = Record<string, () => tf.Tensor>;
type Grad = (
  dy: tf.Tensor | tf.Tensor[],
  saved: tf.Tensor[],
  attrs: tf.NamedAttrMap,
) => Thunks | (() => tf.Tensor)[];

type Config = {
  kernelName: string;
  inputsToSave?: string[];
  saveAllInputs?: boolean;
  outputsToSave?: boolean[];
};

function inversePerm(perm: number[]): number[] {
  const inv = new Array<number>(perm.length);
  perm.forEach((p, i) => inv[p] = i);
  return inv;
}

const one = (dy: tf.Tensor | tf.Tensor[]) => dy as tf.Tensor;
const many = (dy: tf.Tensor | tf.Tensor[]) => Array.isArray(dy) ? dy : [dy];

/** The gradient registrations of the stock kernels, computed with `tf`'s ops. */
export function stockGradients(tf: Tfjs): tf.GradConfig[] {
  /**
   * Sums a broadcast gradient back to `shape` (the input's shape before broadcasting). Summing over
   * leading axes (a bias gradient) runs as ones[1, rows] x g[rows, cols]: on wasm a plain product is ~50x
   * faster than a Sum over a non-innermost axis, and the fused NormtuneSumRows gives its bits faster still.
   */
  function unbroadcast(g: tf.Tensor, shape: number[]): tf.Tensor {
    const axes = tf.broadcast_util.getReductionAxes(shape, g.shape);
    if (axes.length === 0) return tf.reshape(g, shape);
    const leading = axes.every((a, i) => a === i);
    if (leading && axes.length < g.rank) {
      const rows = g.shape.slice(0, axes.length).reduce((p, q) => p * q, 1);
      const g2 = tf.reshape(g, [rows, g.size / rows]);
      // On wasm the same float32 sums without the product's packing of g (lib/backend/col_sums.ts).
      if (tf.getBackend() === "wasm" && tf.getKernel(FUSED.sumRows, "wasm")) {
        return tf.reshape(tf.engine().runKernel(FUSED.sumRows, { x: g2 }) as tf.Tensor, shape);
      }
      return tf.reshape(tf.matMul(tf.ones([1, rows]), g2), shape);
    }
    return tf.reshape(tf.sum(g, axes), shape);
  }

  /** dy of a reduction over `axes`, spread back over x's shape (onesLike + broadcast multiply: fast on wasm). */
  function expandReduced(dy: tf.Tensor, x: tf.Tensor, axes: number[]): tf.Tensor {
    const kept = x.shape.slice();
    for (const a of axes) kept[a] = 1;
    return tf.mul(tf.reshape(dy, kept), tf.onesLike(f32(x)));
  }

  /** `t` as float32 without the copy that `tf.cast` to the same dtype makes. */
  const f32 = (t: tf.Tensor) => t.dtype === "float32" ? t : tf.cast(t, "float32");

  /** Transposes the last two axes (explicitly, so that the following product is a plain one). */
  function swapLast(x: tf.Tensor): tf.Tensor {
    if (x.rank === 2) return tf.transpose(x);
    const perm = [...Array(x.rank).keys()];
    perm[x.rank - 2] = x.rank - 1;
    perm[x.rank - 1] = x.rank - 2;
    return tf.transpose(x, perm);
  }

  /** Sums rows of `dy` into the rows of the table that `indices` picked (the gradient of a lookup). */
  function scatterAddRows(dy: tf.Tensor, indices: tf.Tensor, tableShape: number[]): tf.Tensor {
    const rows = tableShape[0];
    const width = tableShape.slice(1).reduce((p, q) => p * q, 1);
    if (tf.getKernel(FUSED.scatterRows, tf.getBackend())) {
      const inputs = { dy: tf.reshape(dy, [indices.size, width]), indices };
      return tf.engine().runKernel(FUSED.scatterRows, inputs, { shape: tableShape }) as tf.Tensor;
    }
    // On a GPU the sum stays there (webgpu cannot read synchronously); wasm lacks this kernel.
    if (tf.getKernel("UnsortedSegmentSum", tf.getBackend())) {
      const flat = tf.reshape(dy, [indices.size, width]);
      return tf.reshape(tf.unsortedSegmentSum(flat, tf.reshape(indices, [indices.size]), rows), tableShape);
    }
    // Synchronous reads are fine here: only a backend with neither kernel comes this far, and webgpu
    // (which cannot read synchronously) has UnsortedSegmentSum. A gradient function cannot await anyway.
    const idx = indices.dataSync();
    const g = dy.dataSync() as Float32Array;
    const out = new Float32Array(rows * width);
    for (let i = 0; i < idx.length; i++) {
      const r = idx[i];
      if (r < 0 || r >= rows) continue; // gather itself rejects these; never write outside the table
      const src = i * width, dst = r * width;
      for (let j = 0; j < width; j++) out[dst + j] += g[src + j];
    }
    return tf.tensor(out, tableShape, "float32");
  }

  const gradients: [Config, Grad][] = [
    // ---- binary element-wise (inputs a, b; broadcasting reduced back) ----
    [{ kernelName: "Add", inputsToSave: ["a", "b"] }, (dy, [a, b]) => ({
      a: () => unbroadcast(one(dy), a.shape),
      b: () => unbroadcast(one(dy), b.shape),
    })],
    [{ kernelName: "Sub", inputsToSave: ["a", "b"] }, (dy, [a, b]) => ({
      a: () => unbroadcast(one(dy), a.shape),
      b: () => tf.neg(unbroadcast(one(dy), b.shape)),
    })],
    [{ kernelName: "Multiply", inputsToSave: ["a", "b"] }, (dy, [a, b]) => ({
      a: () => unbroadcast(tf.mul(one(dy), f32(b)), a.shape),
      b: () => unbroadcast(tf.mul(one(dy), f32(a)), b.shape),
    })],
    [{ kernelName: "RealDiv", inputsToSave: ["a", "b"] }, (dy, [a, b]) => ({
      a: () => unbroadcast(tf.div(one(dy), f32(b)), a.shape),
      b: () => {
        return tf.neg(unbroadcast(tf.div(tf.mul(one(dy), f32(a)), tf.square(f32(b))), b.shape));
      },
    })],
    [{ kernelName: "SquaredDifference", inputsToSave: ["a", "b"] }, (dy, [a, b]) => ({
      a: () => unbroadcast(tf.mul(one(dy), tf.mul(tf.sub(a, b), 2)), a.shape),
      b: () => unbroadcast(tf.mul(one(dy), tf.mul(tf.sub(b, a), 2)), b.shape),
    })],
    [{ kernelName: "Maximum", inputsToSave: ["a", "b"] }, (dy, [a, b]) => ({
      a: () => unbroadcast(tf.mul(one(dy), tf.cast(tf.greaterEqual(a, b), "float32")), a.shape),
      b: () => unbroadcast(tf.mul(one(dy), tf.cast(tf.less(a, b), "float32")), b.shape),
    })],
    [{ kernelName: "Minimum", inputsToSave: ["a", "b"] }, (dy, [a, b]) => ({
      a: () => unbroadcast(tf.mul(one(dy), tf.cast(tf.lessEqual(a, b), "float32")), a.shape),
      b: () => unbroadcast(tf.mul(one(dy), tf.cast(tf.greater(a, b), "float32")), b.shape),
    })],
    [{ kernelName: "Pow", inputsToSave: ["a", "b"], outputsToSave: [true] }, (dy, [a, b, y]) => ({
      a: () => {
        const e = f32(b);
        return unbroadcast(tf.mul(one(dy), tf.mul(e, tf.pow(a, tf.sub(e, 1)))), a.shape);
      },
      b: () => {
        const logA = tf.where(tf.greater(a, 0), tf.log(a), tf.zerosLike(a));
        return unbroadcast(tf.mul(one(dy), tf.mul(y, logA)), b.shape);
      },
    })],
    [{ kernelName: "AddN", saveAllInputs: true }, (dy, saved) => saved.map(() => () => tf.clone(one(dy)))],

    // ---- unary element-wise (input x) ----
    [{ kernelName: "Neg" }, (dy) => ({ x: () => tf.neg(one(dy)) })],
    [{ kernelName: "Identity" }, (dy) => ({ x: () => tf.clone(one(dy)) })],
    [{ kernelName: "Cast" }, (dy) => ({ x: () => tf.clone(one(dy)) })],
    [
      { kernelName: "Square", inputsToSave: ["x"] },
      (dy, [x]) => ({ x: () => tf.mul(one(dy), tf.mul(x, 2)) }),
    ],
    [{ kernelName: "Sqrt", inputsToSave: ["x"] }, (dy, [x]) => ({
      x: () => tf.div(one(dy), tf.mul(tf.sqrt(f32(x)), 2)),
    })],
    [{ kernelName: "Rsqrt", inputsToSave: ["x"] }, (dy, [x]) => ({
      x: () => tf.neg(tf.div(one(dy), tf.mul(tf.pow(x, 1.5), 2))),
    })],
    [{ kernelName: "Exp", outputsToSave: [true] }, (dy, [y]) => ({ x: () => tf.mul(one(dy), y) })],
    [{ kernelName: "Log", inputsToSave: ["x"] }, (dy, [x]) => ({ x: () => tf.div(one(dy), f32(x)) })],
    [{ kernelName: "Log1p", inputsToSave: ["x"] }, (dy, [x]) => ({ x: () => tf.div(one(dy), tf.add(x, 1)) })],
    [{ kernelName: "Tanh", outputsToSave: [true] }, (dy, [y]) => ({
      x: () => tf.mul(tf.sub(1, tf.square(y)), one(dy)),
    })],
    [{ kernelName: "Sigmoid", outputsToSave: [true] }, (dy, [y]) => ({
      x: () => tf.mul(one(dy), tf.mul(y, tf.sub(1, y))),
    })],
    [{ kernelName: "Erf", inputsToSave: ["x"] }, (dy, [x]) => ({
      x: () => tf.mul(one(dy), tf.mul(tf.exp(tf.neg(tf.square(x))), 2 / Math.sqrt(Math.PI))),
    })],
    [{ kernelName: "Relu", inputsToSave: ["x"] }, (dy, [x]) => ({
      x: () => tf.mul(one(dy), f32(tf.step(x))),
    })],
    [{ kernelName: "Abs", inputsToSave: ["x"] }, (dy, [x]) => ({
      x: () => tf.mul(one(dy), tf.sign(f32(x))),
    })],
    [{ kernelName: "ClipByValue", inputsToSave: ["x"] }, (dy, [x], attrs) => {
      const { clipValueMin, clipValueMax } = attrs as unknown as {
        clipValueMin: number;
        clipValueMax: number;
      };
      return {
        x: () =>
          tf.where(
            tf.logicalAnd(tf.greaterEqual(x, clipValueMin), tf.lessEqual(x, clipValueMax)),
            one(dy),
            tf.zerosLike(one(dy)),
          ),
      };
    }],
    [{ kernelName: "Floor" }, (dy) => ({ x: () => tf.zerosLike(one(dy)) })],
    [{ kernelName: "Select", inputsToSave: ["condition"] }, (dy, [c]) => ({
      condition: () => tf.zeros(c.shape),
      t: () => tf.mul(one(dy), tf.cast(c, "float32")),
      e: () => tf.mul(one(dy), tf.cast(tf.logicalNot(c), "float32")),
    })],
    [{ kernelName: "Softmax", outputsToSave: [true] }, (dy, [y], attrs) => {
      const { dim } = attrs as unknown as { dim: number };
      return {
        logits: () => {
          const dyY = tf.mul(one(dy), y);
          return tf.sub(dyY, tf.mul(tf.sum(dyY, [dim], true), y));
        },
      };
    }],

    // ---- reductions ----
    [{ kernelName: "Sum", inputsToSave: ["x"] }, (dy, [x], attrs) => ({
      x: () => expandReduced(one(dy), x, tf.util.parseAxisParam(attrs.axis as number | number[], x.shape)),
    })],
    [{ kernelName: "Mean", inputsToSave: ["x"] }, (dy, [x], attrs) => {
      const axes = tf.util.parseAxisParam(attrs.axis as number | number[], x.shape);
      const count = axes.reduce((n, a) => n * x.shape[a], 1);
      return { x: () => tf.div(expandReduced(one(dy), x, axes), count) };
    }],
    [{ kernelName: "Max", inputsToSave: ["x"], outputsToSave: [true] }, (dy, [x, y], attrs) => {
      const axes = tf.util.parseAxisParam(attrs.reductionIndices as number | number[], x.shape);
      // The gradient goes to every position equal to the max (as tfjs does).
      return {
        x: () => {
          const kept = x.shape.map((n, i) => axes.includes(i) ? 1 : n);
          const isMax = tf.cast(tf.equal(x, tf.reshape(y, kept)), "float32");
          return tf.mul(tf.reshape(one(dy), kept), isMax);
        },
      };
    }],

    // ---- shape ----
    [
      { kernelName: "Reshape", inputsToSave: ["x"] },
      (dy, [x]) => ({ x: () => tf.reshape(one(dy), x.shape) }),
    ],
    [{ kernelName: "ExpandDims", inputsToSave: ["input"] }, (dy, [x]) => ({
      input: () => tf.reshape(one(dy), x.shape),
    })],
    [{ kernelName: "Transpose" }, (dy, _saved, attrs) => ({
      x: () => tf.transpose(one(dy), inversePerm(attrs.perm as number[])),
    })],
    [{ kernelName: "Concat", saveAllInputs: true }, (dy, saved, attrs) => {
      const axis = tf.util.parseAxisParam(attrs.axis as number, saved[0].shape)[0];
      const parts = tf.split(one(dy), saved.map((t) => t.shape[axis]), axis);
      return parts.map((p) => () => p);
    }],
    [
      { kernelName: "SplitV" },
      (dy, _saved, attrs) => ({ x: () => tf.concat(many(dy), attrs.axis as number) }),
    ],
    [{ kernelName: "Pack", saveAllInputs: true }, (dy, saved, attrs) => {
      const parts = tf.unstack(one(dy), attrs.axis as number);
      return saved.map((_, i) => () => parts[i]);
    }],
    [
      { kernelName: "Unpack" },
      (dy, _saved, attrs) => ({ value: () => tf.stack(many(dy), attrs.axis as number) }),
    ],
    [{ kernelName: "Slice", inputsToSave: ["x"] }, (dy, [x], attrs) => {
      const [begin, size] = tf.slice_util.parseSliceParams(
        x,
        attrs.begin as number[],
        attrs.size as number[],
      );
      const paddings = x.shape.map((n, i) => [begin[i], n - begin[i] - size[i]] as [number, number]);
      return { x: () => tf.pad(one(dy), paddings) };
    }],
    [{ kernelName: "PadV2", inputsToSave: ["x"] }, (dy, [x], attrs) => {
      const begin = (attrs.paddings as [number, number][]).map((p) => p[0]);
      return { x: () => tf.slice(one(dy), begin, x.shape) };
    }],
    [{ kernelName: "Tile", inputsToSave: ["x"] }, (dy, [x], attrs) => {
      // Fold every repeat onto its own axis, then sum those axes: [r0, n0, r1, n1, ...] -> [n0, n1, ...].
      const reps = attrs.reps as number[];
      const split = x.shape.flatMap((n, i) => [reps[i], n]);
      const axes = x.shape.map((_, i) => 2 * i);
      return { x: () => tf.sum(tf.reshape(one(dy), split), axes) };
    }],
    // ---- products and lookups (written for speed on wasm) ----
    [{ kernelName: "BatchMatMul", inputsToSave: ["a", "b"] }, (dy, [a, b], attrs) => {
      // Every case becomes explicit transposes followed by a plain product.
      const g = one(dy);
      const { transposeA, transposeB } = attrs as unknown as { transposeA: boolean; transposeB: boolean };
      const mm = (x: tf.Tensor, y: tf.Tensor) => tf.matMul(x, y);
      if (!transposeA && !transposeB) {
        // y = a b: da = dy b^T, db = a^T dy
        return { a: () => mm(g, swapLast(b)), b: () => mm(swapLast(a), g) };
      }
      if (!transposeA && transposeB) {
        // y = a b^T: da = dy b, db = dy^T a
        return { a: () => mm(g, b), b: () => mm(swapLast(g), a) };
      }
      if (transposeA && !transposeB) {
        // y = a^T b: da = b dy^T, db = a dy
        return { a: () => mm(b, swapLast(g)), b: () => mm(a, g) };
      }
      // y = a^T b^T: da = b^T dy^T, db = dy^T a^T
      return { a: () => mm(swapLast(b), swapLast(g)), b: () => mm(swapLast(g), swapLast(a)) };
    }],
    [{ kernelName: "GatherV2", inputsToSave: ["x", "indices"] }, (dy, [x, indices], attrs) => {
      // Along axis 0 only (embedding lookups); other gathers are not differentiated.
      const { axis, batchDims } = attrs as unknown as { axis: number; batchDims: number };
      const parsedAxis = axis < 0 ? axis + x.rank : axis;
      if (parsedAxis !== 0 || batchDims !== 0) {
        throw new Error(
          `gradient of tf.gather is implemented only for axis 0 without batchDims (got axis ${axis}, ` +
            `batchDims ${batchDims}): transpose the gathered axis to the front first`,
        );
      }
      return {
        x: () => scatterAddRows(one(dy), indices, x.shape),
        indices: () => tf.zeros(indices.shape), // integer input: never on a gradient path
      };
    }],
  ];
  return gradients.map(([config, gradFunc]) => ({
    ...config,
    gradFunc: gradFunc as tf.GradConfig["gradFunc"],
  }));
}
