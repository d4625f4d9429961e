/**
 * Batch order for training and evaluation, by example index. Training batches are bucketed by length
 * to cut padding: shuffle, cut into chunks of `chunkBatches` batches, sort each chunk by length, cut it
 * into batches, then shuffle the order of all batches. Each epoch's order is a pure function of
 * `(seed, epoch)`, so a resumed run sees exactly the batches an uninterrupted one would.
 *
 * ```ts
 * const batches = trainBatches(lengths, { batchSize: 32, seed: 1, epoch: 0 }); // number[][]
 * const order = evalBatches(lengths, 64); // sorted by length; predictions go back by index
 * ```
 */
import { mulberry32 } from "../util/random.ts";

/**
 * Mixes integers into one 32-bit seed (murmur3's finaliser per part), so that nearby seeds and epochs
 * give unrelated streams.
 */
export function deriveSeed(...parts: number[]): number {
  let h = 0x9e3779b9;
  for (const p of parts) {
    let k = Math.imul((p | 0) ^ Math.floor(p / 4294967296), 0xcc9e2d51);
    k = (k << 15) | (k >>> 17);
    h = Math.imul(h ^ Math.imul(k, 0x1b873593), 5) + 0xe6546b64;
    h = (h << 13) | (h >>> 19);
  }
  h ^= h >>> 16;
  h = Math.imul(h, 0x85ebca6b);
  h ^= h >>> 13;
  h = Math.imul(h, 0xc2b2ae35);
  h ^= h >>> 16;
  return h >>> 0;
}

/** In-place Fisher-Yates shuffle driven by `rng`. */
export function shuffle<T>(items: T[], rng: () => number): T[] {
  for (let i = items.length - 1; i > 0; i--) {
    const j = Math.floor(rng() * (i + 1));
    [items[i], items[j]] = [items[j], items[i]];
  }
  return items;
}

export interface TrainBatchOptions {
  batchSize: number;
  seed: number;
  epoch: number;
  /** Batches per length bucket (default 50): larger cuts more padding, smaller keeps more randomness. */
  chunkBatches?: number;
}

/** Salt for the data-order stream, so it never coincides with the dropout stream of the same seed. */
const ORDER_SALT = 0x0bde4;

/** Number of training batches per epoch. */
export function batchesPerEpoch(n: number, batchSize: number): number {
  return Math.ceil(n / batchSize);
}

/** The training batches of one epoch (example indices); every example appears exactly once. */
export function trainBatches(lengths: readonly number[], opts: TrainBatchOptions): number[][] {
  const { batchSize } = opts;
  if (!(batchSize >= 1) || !Number.isInteger(batchSize)) {
    throw new Error(`batch size must be a positive integer, got ${batchSize}`);
  }
  const rng = mulberry32(deriveSeed(ORDER_SALT, opts.seed, opts.epoch));
  const order = shuffle(lengths.map((_, i) => i), rng);
  const chunk = batchSize * (opts.chunkBatches ?? 50);
  const batches: number[][] = [];
  for (let start = 0; start < order.length; start += chunk) {
    // Stable sort: ties keep the shuffled order.
    const part = order.slice(start, start + chunk).sort((a, b) => lengths[a] - lengths[b]);
    for (let b = 0; b < part.length; b += batchSize) batches.push(part.slice(b, b + batchSize));
  }
  return shuffle(batches, rng);
}

/** Evaluation batches: all examples sorted by length (least padding), in order. */
export function evalBatches(lengths: readonly number[], batchSize: number): number[][] {
  if (!(batchSize >= 1) || !Number.isInteger(batchSize)) {
    throw new Error(`batch size must be a positive integer, got ${batchSize}`);
  }
  const order = lengths.map((_, i) => i).sort((a, b) => lengths[a] - lengths[b]);
  const batches: number[][] = [];
  for (let b = 0; b < order.length; b += batchSize) batches.push(order.slice(b, b + batchSize));
  return batches;
}

/** Padding ratio of a batch plan: padded tokens / all tokens (for logs and tests). */
export function paddingShare(lengths: readonly number[], batches: number[][]): number {
  let real = 0, total = 0;
  for (const b of batches) {
    const max = Math.max(...b.map((i) => lengths[i]));
    for (const i of b) real += lengths[i];
    total += max * b.length;
  }
  return total > 0 ? 1 - real / total : 0;
}
