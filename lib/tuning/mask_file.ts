/**
 * Mask files for the `mask` tuning mode: which elements of which parameters train.
 *
 * Format: a safetensors file with one F32 tensor of 0s and 1s per selected parameter, named by its Hugging
 * Face name and shaped like the parameter; a parameter absent from the file is frozen (the head is
 * trained in full whatever the file says). The metadata key `normtune` holds a JSON string saying how the
 * mask was made (e.g. `{"method": "fisher", "task": "RTE", "share": 0.001}`), so a run's config can record
 * where its mask came from.
 *
 * ```ts
 * await writeMask("m.safetensors", masks, { method: "random", seed: 1 });
 * const { masks, info } = await readMask("m.safetensors", parameterShapes(config, 2));
 * countMask(masks); // number of ones
 * ```
 */
import { isHead } from "../bert/names.ts";
import {
  type NamedTensor,
  readSafetensorsWithMetadata,
  type TensorMap,
  writeSafetensors,
} from "../bert/safetensors.ts";

/** The safetensors metadata key holding the JSON description. */
export const MASK_METADATA_KEY = "normtune";

export interface MaskFile {
  masks: TensorMap;
  /** The parsed `normtune` metadata (`{}` when the file has none). */
  info: Record<string, unknown>;
}

/**
 * Checks masks against the model's parameter shapes: every name known, shapes equal, values exactly 0 or
 * 1. `source` names the file in errors.
 */
export function validateMasks(masks: TensorMap, shapes: Map<string, number[]>, source = "mask"): void {
  for (const [name, t] of masks) {
    const shape = shapes.get(name);
    if (!shape) {
      const near = [...shapes.keys()].find((k) => k.endsWith(name) || name.endsWith(k));
      throw new Error(
        `${source}: tensor "${name}" is not a parameter of this model` +
          (near ? ` (did you mean "${near}"?)` : "") + `; mask tensors use Hugging Face names`,
      );
    }
    if (shape.length !== t.shape.length || shape.some((d, i) => d !== t.shape[i])) {
      throw new Error(
        `${source}: tensor "${name}" has shape [${t.shape}] but the parameter has shape [${shape}]`,
      );
    }
    checkBinary(name, t, source);
  }
}

function checkBinary(name: string, t: NamedTensor, source: string): void {
  const d = t.data;
  for (let i = 0; i < d.length; i++) {
    if (d[i] !== 0 && d[i] !== 1) {
      throw new Error(
        `${source}: tensor "${name}" holds ${d[i]} at flat index ${i}; masks hold only 0 and 1`,
      );
    }
  }
}

/**
 * Reads a mask file. With `shapes` (from `parameterShapes(config, numLabels)`) the names and shapes are
 * validated too; without, only the values. A head mask is accepted but has no effect (the head always
 * trains), so it is checked only if its shape matches the model's head.
 */
export async function readMask(path: string, shapes?: Map<string, number[]>): Promise<MaskFile> {
  const { tensors, metadata } = await readSafetensorsWithMetadata(path);
  if (shapes) {
    const body = new Map([...tensors].filter(([name]) => !isHead(name)));
    validateMasks(body, shapes, path);
  } else {
    for (const [name, t] of tensors) checkBinary(name, t, path);
  }
  let info: Record<string, unknown> = {};
  const raw = metadata[MASK_METADATA_KEY];
  if (raw !== undefined) {
    try {
      const parsed = JSON.parse(raw);
      if (typeof parsed === "object" && parsed !== null && !Array.isArray(parsed)) info = parsed;
      else throw new Error("not a JSON object");
    } catch (err) {
      throw new Error(
        `${path}: metadata "${MASK_METADATA_KEY}" is not a JSON object (${(err as Error).message})`,
      );
    }
  }
  return { masks: tensors, info };
}

/** Writes a mask file (values must be 0/1; checked so a bad mask never reaches disk). */
export async function writeMask(
  path: string,
  masks: TensorMap,
  info: Record<string, unknown> = {},
  shapes?: Map<string, number[]>,
): Promise<void> {
  if (shapes) validateMasks(masks, shapes, path);
  else for (const [name, t] of masks) checkBinary(name, t, path);
  await writeSafetensors(path, masks, { [MASK_METADATA_KEY]: JSON.stringify(info) });
}

/** Number of ones in a mask, a named tensor, or all tensors of a mask map. */
export function countMask(mask: Float32Array | NamedTensor | TensorMap): number {
  if (mask instanceof Map) {
    let n = 0;
    for (const t of mask.values()) n += countMask(t.data);
    return n;
  }
  const d = mask instanceof Float32Array ? mask : mask.data;
  let n = 0;
  for (let i = 0; i < d.length; i++) if (d[i] !== 0) n++;
  return n;
}
