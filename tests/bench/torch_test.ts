import assert from "node:assert/strict";
import { join } from "node:path";
import { runTorchJob, runTorchStep, torchJobScript, torchScript } from "../../lib/bench/torch.ts";
import { tempDir } from "../env.ts";

async function withEnv<T>(value: string, f: () => Promise<T>): Promise<T> {
  const old = Deno.env.get("NORMTUNE_TORCH_STEP");
  Deno.env.set("NORMTUNE_TORCH_STEP", value);
  try {
    return await f();
  } finally {
    if (old === undefined) Deno.env.delete("NORMTUNE_TORCH_STEP");
    else Deno.env.set("NORMTUNE_TORCH_STEP", old);
  }
}

Deno.test("the reference runner passes shape, mode, steps and threads and reads the JSON line", async () => {
  const [dir, cleanup] = await tempDir();
  try {
    // A stand-in for torch_step.py that echoes its arguments as the result line.
    const script = join(dir, "fake_step.py");
    await Deno.writeTextFile(
      script,
      `import json, os, sys\na = sys.argv[1:]\nprint("warming up")\n` +
        `print(json.dumps({"runtime": "fake " + str(os.environ.get("OPENBLAS_CORETYPE")), "shape": a[1], "mode": a[3], ` +
        `"batch": 32, "seq": 128, "trainable": int(a[5]), "step_s": 0.25, "examples_per_s": 128.0, "threads": a[7]}))\n`,
    );
    const r = await withEnv(script, () => {
      assert.equal(torchScript(), script);
      return runTorchStep({ shape: "tiny", mode: "layernorm", steps: 7, threads: 3 });
    });
    assert.ok(r.available, JSON.stringify(r));
    assert.equal(r.result.shape, "tiny");
    assert.equal(r.result.mode, "layernorm");
    assert.equal(r.result.trainable, 7); // --steps came through
    assert.equal(r.result.step_s, 0.25);
    assert.equal(r.result.runtime, "fake None"); // OpenBLAS core overrides unset for the child
    // A script that fails is an outcome with its reason, not an exception.
    const bad = join(dir, "bad.py");
    await Deno.writeTextFile(bad, "import sys\nsys.stderr.write('no torch here')\nsys.exit(3)\n");
    const r2 = await withEnv(bad, () => runTorchStep({ shape: "tiny", mode: "full" }));
    assert.equal(r2.available, false);
    assert.match(!r2.available ? r2.reason : "", /exit 3.*no torch here/);
  } finally {
    await cleanup();
  }
});

Deno.test("no script: says so", async () => {
  const r = await withEnv("/nonexistent/torch_step.py", () => runTorchStep({ shape: "tiny", mode: "full" }));
  assert.equal(r.available, false);
  assert.match(!r.available ? r.reason : "", /no PyTorch reference/);
});

Deno.test("the job runner passes the input file and threads and reads the JSON line; a failure is a reason", async () => {
  const [dir, cleanup] = await tempDir();
  const old = Deno.env.get("NORMTUNE_TORCH_JOB");
  try {
    const script = join(dir, "fake_job.py");
    await Deno.writeTextFile(
      script,
      `import json, sys\na = sys.argv[1:]\nbatches = json.load(open(a[0]))["batches"]\n` +
        `print(json.dumps({"runtime": "fake", "threads": int(a[2]), "examples": 3, "steps": len(batches), ` +
        `"trainable": 5, "train_s": 0.5, "setup_s": 0.1, "train_loss": 0.7, "examples_per_s": 6.0}))\n`,
    );
    const input = join(dir, "job.json");
    await Deno.writeTextFile(input, JSON.stringify({ batches: [{}, {}] }));
    Deno.env.set("NORMTUNE_TORCH_JOB", script);
    assert.equal(torchJobScript(), script);
    const r = await runTorchJob(input, { threads: 3 });
    assert.ok(r.available, JSON.stringify(r));
    assert.deepEqual([r.result.threads, r.result.steps, r.result.train_s], [3, 2, 0.5]);
    const bad = join(dir, "bad.py");
    await Deno.writeTextFile(bad, "import sys\nsys.stderr.write('No module named torch')\nsys.exit(1)\n");
    Deno.env.set("NORMTUNE_TORCH_JOB", bad);
    const r2 = await runTorchJob(input);
    assert.equal(r2.available, false);
    assert.match(!r2.available ? r2.reason : "", /exit 1.*No module named torch/);
    const r3 = await runTorchJob(input, { python: join(dir, "no-python") });
    assert.match(!r3.available ? r3.reason : "", /cannot run/);
  } finally {
    if (old === undefined) Deno.env.delete("NORMTUNE_TORCH_JOB");
    else Deno.env.set("NORMTUNE_TORCH_JOB", old);
    await cleanup();
  }
});
