import assert from "node:assert/strict";
import { join } from "node:path";
import { ROOT } from "../../lib/util/paths.ts";
import { readSafetensors } from "../../lib/bert/safetensors.ts";
import { tempDir } from "../env.ts";

const GOLDEN = join(ROOT, "tests", "fixtures", "golden");

interface GoldenCase {
  num_labels: number;
  labels: number[];
  logits: number[][];
  loss: number;
}

async function forward(args: string[]): Promise<{ code: number; stderr: string }> {
  const cmd = new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", join(ROOT, "lib", "cli", "main.ts"), "forward", ...args],
    cwd: ROOT,
    stdout: "piped",
    stderr: "piped",
  });
  const { code, stderr } = await cmd.output();
  return { code, stderr: new TextDecoder().decode(stderr) };
}

function assertClose(got: ArrayLike<number>, want: ArrayLike<number>, what: string) {
  assert.equal(got.length, want.length, `${what}: length`);
  for (let i = 0; i < want.length; i++) {
    assert.ok(
      Math.abs(got[i] - want[i]) <= 1e-5 + 1e-4 * Math.abs(want[i]),
      `${what}[${i}]: ${got[i]} vs ${want[i]}`,
    );
  }
}

async function writeInputs(path: string, labels?: number[]): Promise<void> {
  const golden = JSON.parse(await Deno.readTextFile(join(GOLDEN, "golden.json")));
  const lines = golden.rows.map((r: Record<string, unknown>, i: number) =>
    JSON.stringify(labels ? { ...r, label: labels[i] } : r)
  );
  await Deno.writeTextFile(path, lines.join("\n") + "\n");
}

for (const [tag, backend] of [["cls", "cpu"], ["reg", "wasm"], ["cls", "webgpu"]] as const) {
  Deno.test(`forward CLI (${tag}, ${backend}) writes the golden logits, loss and gradients`, async () => {
    const [dir, cleanup] = await tempDir();
    try {
      const g: GoldenCase = JSON.parse(await Deno.readTextFile(join(GOLDEN, "golden.json")))[tag];
      await writeInputs(join(dir, "in.jsonl"), g.labels);
      const out = join(dir, "out");
      const { code, stderr } = await forward([
        "--model",
        GOLDEN,
        "--inputs",
        join(dir, "in.jsonl"),
        "--head",
        join(GOLDEN, `head_${tag}.safetensors`),
        "--num-labels",
        String(g.num_labels),
        "--out",
        out,
        "--backend",
        backend,
        "--batch-size",
        "2", // two batches: the gradient of the overall mean must come out the same
      ]);
      assert.equal(code, 0, stderr);
      const logits: number[][] = JSON.parse(await Deno.readTextFile(join(out, "logits.json")));
      assertClose(logits.flat(), g.logits.flat(), "logits");
      const loss = JSON.parse(await Deno.readTextFile(join(out, "loss.json")));
      assertClose([loss.loss], [g.loss], "loss");
      const grads = await readSafetensors(join(out, "grads.safetensors"));
      const want = await readSafetensors(join(GOLDEN, `grads_${tag}.safetensors`));
      assert.deepEqual([...grads.keys()].sort(), [...want.keys()].sort());
      for (const [name, t] of want) assertClose(grads.get(name)!.data, t.data, name);
    } finally {
      await cleanup();
    }
  });
}

Deno.test("forward CLI without labels writes only logits; a bad line fails naming it", async () => {
  const [dir, cleanup] = await tempDir();
  try {
    await writeInputs(join(dir, "in.jsonl"));
    const out = join(dir, "out");
    const common = ["--model", GOLDEN, "--head", join(GOLDEN, "head_cls.safetensors"), "--num-labels", "3"];
    const ok = await forward([
      ...common,
      "--inputs",
      join(dir, "in.jsonl"),
      "--out",
      out,
      "--backend",
      "webgpu", // the logits read back asynchronously, as webgpu needs
    ]);
    assert.equal(ok.code, 0, ok.stderr);
    assert.equal((JSON.parse(await Deno.readTextFile(join(out, "logits.json"))) as number[][]).length, 3);
    await assert.rejects(Deno.stat(join(out, "loss.json")));
    await assert.rejects(Deno.stat(join(out, "grads.safetensors")));

    await Deno.writeTextFile(
      join(dir, "bad.jsonl"),
      '{"input_ids":[2,3],"token_type_ids":[0,0],"attention_mask":[1,1]}\n{oops\n',
    );
    const bad = await forward([...common, "--inputs", join(dir, "bad.jsonl"), "--out", join(dir, "o2")]);
    assert.equal(bad.code, 1);
    assert.match(bad.stderr, /bad\.jsonl:2: not valid JSON/);
  } finally {
    await cleanup();
  }
});
