/**
 * Encoded inputs as JSONL, one example a line: `{"input_ids": int[], "token_type_ids"?: int[],
 * "attention_mask"?: int[], "label"?: number}` (what `normtune encode` writes). `forward` and `fisher
 * --inputs` read them here. Missing token types are 0 and a missing attention mask attends everywhere;
 * labels are class indices in [0, numLabels), or any finite number for regression (numLabels 1). Errors
 * name the file and line.
 *
 * ```ts
 * const rows = parseEncodedInputs(await Deno.readTextFile("in.jsonl"), "in.jsonl", { numLabels: 2 });
 * ```
 */
import type { EncodedRow } from "../bert/batch.ts";

export interface EncodedInput extends EncodedRow {
  label?: number;
}

export interface InputOptions {
  /** Labels are checked against it when known. */
  numLabels?: number;
  /** "optional" (default): every line or none has a label; "required": every line has one. */
  labels?: "optional" | "required";
  /** Read only the first this many inputs (the rest of the file is not parsed). */
  max?: number;
}

function intArray(value: unknown, field: string, where: string): number[] {
  if (!Array.isArray(value) || !value.every((v) => Number.isInteger(v))) {
    throw new Error(`${where}: "${field}" must be an array of integers`);
  }
  return value as number[];
}

/** Parses JSONL inputs; `source` names the file in errors. */
export function parseEncodedInputs(text: string, source: string, o: InputOptions = {}): EncodedInput[] {
  const rows: EncodedInput[] = [];
  const lines = text.split("\n");
  const max = o.max ?? Infinity;
  for (let i = 0; i < lines.length && rows.length < max; i++) {
    const line = lines[i];
    if (line.trim() === "") continue;
    const where = `${source}:${i + 1}`;
    let raw: unknown;
    try {
      raw = JSON.parse(line);
    } catch (err) {
      throw new Error(`${where}: not valid JSON (${(err as Error).message})`);
    }
    if (typeof raw !== "object" || raw === null || Array.isArray(raw)) {
      throw new Error(`${where}: expected an object {input_ids, token_type_ids, attention_mask, label?}`);
    }
    const r = raw as Record<string, unknown>;
    const inputIds = intArray(r.input_ids, "input_ids", where);
    if (inputIds.length === 0) throw new Error(`${where}: "input_ids" is empty`);
    const tokenTypeIds = r.token_type_ids === undefined
      ? inputIds.map(() => 0)
      : intArray(r.token_type_ids, "token_type_ids", where);
    const attentionMask = r.attention_mask === undefined
      ? inputIds.map(() => 1)
      : intArray(r.attention_mask, "attention_mask", where);
    if (tokenTypeIds.length !== inputIds.length || attentionMask.length !== inputIds.length) {
      throw new Error(`${where}: input_ids, token_type_ids and attention_mask must be equally long`);
    }
    const row: EncodedInput = { inputIds, tokenTypeIds, attentionMask };
    if (r.label !== undefined && r.label !== null) {
      row.label = checkLabel(r.label, o.numLabels, where);
    } else if (o.labels === "required") {
      throw new Error(`${where}: no "label" (every input needs one here)`);
    }
    rows.push(row);
  }
  if (rows.length === 0) throw new Error(`${source}: no inputs`);
  const labelled = rows.filter((r) => r.label !== undefined).length;
  if (labelled !== 0 && labelled !== rows.length) {
    throw new Error(`${source}: ${labelled} of ${rows.length} inputs have a label; give all or none`);
  }
  return rows;
}

function checkLabel(y: unknown, numLabels: number | undefined, where: string): number {
  const ok = typeof y === "number" && Number.isFinite(y) &&
    (numLabels === undefined || numLabels === 1 || (Number.isInteger(y) && y >= 0 && y < numLabels));
  if (!ok) {
    throw new Error(
      `${where}: label ${JSON.stringify(y)} is not ` +
        (numLabels === undefined || numLabels === 1
          ? "a finite number"
          : `a class index in [0, ${numLabels})`),
    );
  }
  return y as number;
}

/** Reads and parses a JSONL file of inputs (errors name the file). */
export async function readEncodedInputs(path: string, o: InputOptions = {}): Promise<EncodedInput[]> {
  let text: string;
  try {
    text = await Deno.readTextFile(path);
  } catch (err) {
    throw new Error(`${path}: cannot read (${(err as Error).message})`);
  }
  return parseEncodedInputs(text, path, o);
}
