import assert from "node:assert/strict";
import { join } from "node:path";
import { BERT_BASE, maxLenProblem, parseConfig, readConfig, REQUIRED_FIELDS } from "../../lib/bert/config.ts";
import { tempDir } from "../env.ts";

const TINY = {
  vocab_size: 100,
  hidden_size: 16,
  num_hidden_layers: 2,
  num_attention_heads: 2,
  intermediate_size: 32,
};

Deno.test("config: the shape fields are required and named when missing; the others default", async () => {
  const cfg = parseConfig(TINY);
  assert.equal(cfg.max_position_embeddings, 512);
  assert.equal(cfg.layer_norm_eps, 1e-12);
  for (const field of REQUIRED_FIELDS) {
    const raw: Record<string, unknown> = { ...TINY };
    delete raw[field];
    assert.throws(
      () => parseConfig(raw, "m/config.json"),
      new RegExp(`^Error: m/config\\.json: missing ${field} \\(a BERT config\\.json must give vocab_size, `),
    );
  }
  const [dir, cleanup] = await tempDir();
  try {
    const { hidden_size: _, ...noHidden } = TINY;
    await Deno.writeTextFile(join(dir, "config.json"), JSON.stringify(noHidden));
    await assert.rejects(readConfig(join(dir, "config.json")), /config\.json: missing hidden_size/);
  } finally {
    await cleanup();
  }
  assert.equal(parseConfig(BERT_BASE).hidden_size, 768);
});

Deno.test("config: a bad value is named, and a huge one is cut in the message", () => {
  assert.throws(
    () => parseConfig({ ...TINY, hidden_size: 0 }),
    /hidden_size must be a positive integer, got 0/,
  );
  assert.throws(
    () => parseConfig({ ...TINY, vocab_size: "9".repeat(1_000_000) }),
    (err: Error) =>
      /vocab_size must be a positive integer, got "9+… \(1000000 characters\)$/.test(err.message),
  );
});

Deno.test("maxLenProblem: room for the specials, no more than the position embeddings", () => {
  const cfg = parseConfig({ ...TINY, max_position_embeddings: 64 });
  assert.equal(maxLenProblem(64, cfg), undefined);
  assert.equal(maxLenProblem(3, cfg), undefined);
  assert.match(maxLenProblem(65, cfg)!, /65 is more than the model's max_position_embeddings 64/);
  assert.match(maxLenProblem(2, cfg)!, /integer >= 3/);
  assert.match(maxLenProblem(10.5, cfg)!, /integer >= 3/);
});
