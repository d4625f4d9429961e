import assert from "node:assert/strict";
import { parseEncodedInputs } from "../../lib/jobs/encoded_inputs.ts";

Deno.test("parseEncodedInputs validates fields and labels (what forward reads)", () => {
  const row = '{"input_ids":[2,3],"token_type_ids":[0,0],"attention_mask":[1,1]';
  assert.equal(parseEncodedInputs(`${row}}\n\n${row}}\n`, "f", { numLabels: 2 }).length, 2);
  assert.equal(parseEncodedInputs(`${row},"label":1}`, "f", { numLabels: 2 })[0].label, 1);
  assert.throws(
    () => parseEncodedInputs(`${row},"label":2}`, "f", { numLabels: 2 }),
    /f:1: label 2 is not a class index in \[0, 2\)/,
  );
  assert.equal(parseEncodedInputs(`${row},"label":0.25}`, "f", { numLabels: 1 })[0].label, 0.25);
  assert.throws(
    () => parseEncodedInputs(`${row},"label":1}\n${row}}`, "f", { numLabels: 2 }),
    /1 of 2 inputs have a label/,
  );
  assert.throws(
    () =>
      parseEncodedInputs('{"input_ids":[2,3],"token_type_ids":[0],"attention_mask":[1,1]}', "f", {
        numLabels: 2,
      }),
    /f:1: .*equally long/,
  );
  assert.throws(
    () => parseEncodedInputs('{"input_ids":"x"}', "f", { numLabels: 2 }),
    /f:1: "input_ids" must be an array of integers/,
  );
  assert.throws(() => parseEncodedInputs("\n", "f", { numLabels: 2 }), /no inputs/);
});

Deno.test("parseEncodedInputs: defaults, required labels and the first N lines (what fisher --inputs reads)", () => {
  // Token types default to 0 and the attention mask to 1 when a line leaves them out.
  const [row] = parseEncodedInputs('{"input_ids":[2,3,4],"label":1}', "f", { labels: "required" });
  assert.deepEqual(row, { inputIds: [2, 3, 4], tokenTypeIds: [0, 0, 0], attentionMask: [1, 1, 1], label: 1 });
  assert.throws(
    () => parseEncodedInputs('{"input_ids":[2,3]}', "in.jsonl", { labels: "required" }),
    /in\.jsonl:1: no "label"/,
  );
  // Only the first `max` inputs are read: a broken line after them is never parsed.
  const two = parseEncodedInputs(
    '{"input_ids":[2],"label":0}\n\n{"input_ids":[3],"label":1}\nnot json',
    "f",
    {
      max: 2,
    },
  );
  assert.deepEqual(two.map((r) => r.label), [0, 1]);
  // Without numLabels a label is any finite number; with it, a class index.
  assert.equal(parseEncodedInputs('{"input_ids":[2],"label":7}', "f")[0].label, 7);
  assert.throws(
    () => parseEncodedInputs('{"input_ids":[2],"label":7}', "f", { numLabels: 3 }),
    /not a class index/,
  );
});
