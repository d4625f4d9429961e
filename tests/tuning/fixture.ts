/**
 * A tiny world for trainer tests: the golden random checkpoint (vocab 100, hidden 16) with a made-up
 * 100-word vocab, and synthetic RTE / STS-B files in a temporary GLUE root. Nothing from ../shared.
 */
import { batchFromEncoded } from "../../lib/bert/batch.ts";
import { join } from "node:path";
import { ROOT } from "../../lib/util/paths.ts";
import { mulberry32 } from "../../lib/util/random.ts";
import { tempDir } from "../env.ts";

export const GOLDEN = join(ROOT, "tests", "fixtures", "golden");
const WORDS = Array.from({ length: 95 }, (_, i) => `w${i}`);

export interface TinyWorld {
  dir: string;
  model: string;
  glue: string;
  cleanup: () => Promise<void>;
}

function sentence(rng: () => number, n: number, extra?: string): string {
  const words = Array.from({ length: n }, () => WORDS[Math.floor(rng() * 90)]);
  if (extra) words.splice(Math.floor(rng() * (words.length + 1)), 0, extra);
  return words.join(" ");
}

/** Writes the model folder and RTE + STS-B with `train`/`dev` rows each. */
export async function tinyWorld(train = 48, dev = 16): Promise<TinyWorld> {
  const [dir, cleanup] = await tempDir();
  const model = join(dir, "model");
  await Deno.mkdir(model);
  for (const f of ["config.json", "model.safetensors"]) await Deno.copyFile(join(GOLDEN, f), join(model, f));
  // 5 specials + 95 words = the checkpoint's vocab_size of 100.
  await Deno.writeTextFile(
    join(model, "vocab.txt"),
    ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", ...WORDS].join("\n") + "\n",
  );
  const glue = join(dir, "glue");
  const rng = mulberry32(11);
  for (const [split, n] of [["train", train], ["dev", dev]] as const) {
    // RTE: "entailment" exactly when w94 appears in the hypothesis, so there is something to learn.
    const rte = ["index\tsentence1\tsentence2\tlabel"];
    const sts = ["index\tgenre\tfilename\tyear\told_index\tsource1\tsource2\tsentence1\tsentence2\tscore"];
    for (let i = 0; i < n; i++) {
      const yes = rng() < 0.5;
      const a = sentence(rng, 2 + Math.floor(rng() * 10));
      const b = sentence(rng, 1 + Math.floor(rng() * 5), yes ? "w94" : undefined);
      rte.push(`${i}\t${a}\t${b}\t${yes ? "entailment" : "not_entailment"}`);
      sts.push(`${i}\tg\tf\t2012\t${i}\tnone\tnone\t${a}\t${b}\t${(rng() * 5).toFixed(3)}`);
    }
    for (const [task, lines] of [["RTE", rte], ["STS-B", sts]] as const) {
      await Deno.mkdir(join(glue, task), { recursive: true });
      await Deno.writeTextFile(join(glue, task, `${split}.tsv`), lines.join("\n") + "\n");
    }
  }
  return { dir, model, glue, cleanup };
}

/** Three encoded rows of different lengths (a pair among them), as one batch, with class labels. */
export function smallBatch() {
  const rows = [
    {
      inputIds: [2, 17, 42, 9, 3, 55, 71, 3],
      tokenTypeIds: [0, 0, 0, 0, 0, 1, 1, 1],
      attentionMask: [1, 1, 1, 1, 1, 1, 1, 1],
    },
    { inputIds: [2, 88, 5, 63, 3], tokenTypeIds: [0, 0, 0, 0, 0], attentionMask: [1, 1, 1, 1, 1] },
    { inputIds: [2, 31, 3, 12, 3], tokenTypeIds: [0, 0, 0, 1, 1], attentionMask: [1, 1, 1, 1, 1] },
  ];
  return { rows, batch: batchFromEncoded(rows), labels: Int32Array.from([1, 0, 1]) };
}

/** Whether two float arrays hold the same bits. */
export function bitwiseEqual(a: Float32Array, b: Float32Array): boolean {
  return Buffer.from(a.buffer, a.byteOffset, a.byteLength).equals(
    Buffer.from(b.buffer, b.byteOffset, b.byteLength),
  );
}
