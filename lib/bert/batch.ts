/**
 * Model inputs as a batch, and every way the project makes one: from encoded rows (padded to the longest
 * or to a length), a view of some rows (data-parallel shards, micro-batches), a copy of some rows cut to
 * a length (Fisher passes), single rows of several batches stacked, and the rows of an encoded set by
 * index (training and evaluation batches).
 *
 * ```ts
 * const batch = batchFromEncoded(rows); // padded to the longest row
 * sliceRows(batch, 0, 2);               // the first two rows, sharing memory
 * ```
 */

/** Model inputs, row-major [batchSize, seqLen]. */
export interface Batch {
  inputIds: Int32Array;
  tokenTypeIds: Int32Array;
  attentionMask: Int32Array;
  batchSize: number;
  seqLen: number;
}

export interface EncodedRow {
  inputIds: number[];
  tokenTypeIds: number[];
  attentionMask: number[];
}

/** Stacks encoded rows into a batch, padding each to the longest row (or to `seqLen`) with zeros. */
export function batchFromEncoded(rows: EncodedRow[], seqLen?: number): Batch {
  if (rows.length === 0) throw new Error("batchFromEncoded: no rows");
  const longest = Math.max(...rows.map((r) => r.inputIds.length));
  const seq = seqLen ?? longest;
  if (!Number.isInteger(seq) || seq < 1) throw new Error(`batchFromEncoded: seqLen must be >= 1, got ${seq}`);
  const n = rows.length * seq;
  const batch: Batch = {
    inputIds: new Int32Array(n),
    tokenTypeIds: new Int32Array(n),
    attentionMask: new Int32Array(n),
    batchSize: rows.length,
    seqLen: seq,
  };
  rows.forEach((r, i) => {
    const len = r.inputIds.length;
    if (r.tokenTypeIds.length !== len || r.attentionMask.length !== len) {
      throw new Error(
        `row ${i}: input_ids has ${len} entries but token_type_ids ${r.tokenTypeIds.length} and ` +
          `attention_mask ${r.attentionMask.length}; they must be equally long`,
      );
    }
    if (len > seq) {
      throw new Error(
        `row ${i} has ${len} tokens, more than seqLen ${seq}: encode with a smaller max length`,
      );
    }
    batch.inputIds.set(r.inputIds, i * seq);
    batch.tokenTypeIds.set(r.tokenTypeIds, i * seq);
    batch.attentionMask.set(r.attentionMask, i * seq);
  });
  return batch;
}

/** Rows [start, start + count) of a batch. */
export function sliceRows(batch: Batch, start: number, count: number): Batch {
  const s = batch.seqLen;
  return {
    inputIds: batch.inputIds.subarray(start * s, (start + count) * s),
    tokenTypeIds: batch.tokenTypeIds.subarray(start * s, (start + count) * s),
    attentionMask: batch.attentionMask.subarray(start * s, (start + count) * s),
    batchSize: count,
    seqLen: s,
  };
}

/** Rows [start, end) of a batch, cut to `len` positions (len <= seqLen). */
export function sliceBatch(b: Batch, start: number, end: number, len = b.seqLen): Batch {
  const n = end - start;
  const cut = (a: Int32Array) => {
    const out = new Int32Array(n * len);
    for (let i = 0; i < n; i++) {
      out.set(a.subarray((start + i) * b.seqLen, (start + i) * b.seqLen + len), i * len);
    }
    return out;
  };
  return {
    inputIds: cut(b.inputIds),
    tokenTypeIds: cut(b.tokenTypeIds),
    attentionMask: cut(b.attentionMask),
    batchSize: n,
    seqLen: len,
  };
}

/** The number of positions up to the last attended one among rows [start, end) (at least 1). */
export function usedLength(b: Batch, start: number, end: number): number {
  let len = 1;
  for (let r = start; r < end; r++) {
    for (let t = b.seqLen - 1; t >= len; t--) {
      if (b.attentionMask[r * b.seqLen + t] !== 0) {
        len = t + 1;
        break;
      }
    }
  }
  return len;
}

/** Stacks single rows (each cut to `len`) into one batch. */
export function stackRows(rows: { batch: Batch; row: number }[], len: number): Batch {
  const parts = rows.map(({ batch, row }) => sliceBatch(batch, row, row + 1, len));
  const join = (key: "inputIds" | "tokenTypeIds" | "attentionMask") => {
    const out = new Int32Array(rows.length * len);
    parts.forEach((p, i) => out.set(p[key], i * len));
    return out;
  };
  return {
    inputIds: join("inputIds"),
    tokenTypeIds: join("tokenTypeIds"),
    attentionMask: join("attentionMask"),
    batchSize: rows.length,
    seqLen: len,
  };
}

/** Encoded rows with their labels and token counts (what the trainer and evaluation batch from). */
export interface EncodedSet {
  rows: EncodedRow[];
  labels: number[];
  /** Token count of each row (for length bucketing). */
  lengths: number[];
}

/** The rows of `indices` as one batch padded to their longest. */
export function makeBatch(set: EncodedSet, indices: number[]): Batch {
  const rows = indices.map((i) => set.rows[i]);
  return batchFromEncoded(rows, Math.max(...indices.map((i) => set.lengths[i])));
}

/** Labels of `indices` as the loss wants them: class indices, or float scores for regression. */
export function batchLabels(
  set: EncodedSet,
  indices: number[],
  numLabels: number,
): Int32Array | Float32Array {
  const values = indices.map((i) => set.labels[i]);
  return numLabels === 1 ? Float32Array.from(values) : Int32Array.from(values);
}
