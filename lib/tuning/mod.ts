/**
 * Fine-tuning: modes, masks, AdamW, schedule, batching, the trainer, deltas and evaluation, in one import.
 *
 * ```ts
 * import { finetune } from "./tuning/mod.ts";
 * const r = await finetune({ model: "bert-tiny-mlm", task: "RTE", mode: "layernorm", out: "runs/x" });
 * ```
 */
export * from "./modes.ts";
export * from "./masks.ts";
export * from "./optimizer.ts";
export * from "./schedule.ts";
export * from "./batches.ts";
export * from "./evaluate.ts";
export * from "./delta.ts";
export * from "./trainer.ts";
