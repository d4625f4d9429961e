/**
 * The finetune / evaluate / apply-delta commands as subprocesses: a run killed with SIGKILL after its
 * first saved state and started again ends with the same delta bytes as an uninterrupted run.
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { readSafetensors } from "../../lib/bert/safetensors.ts";
import { workersFlag } from "../../lib/cli/finetune.ts";
import { parseFlags } from "../../lib/cli/flags.ts";
import { applyDelta } from "../../lib/tuning/delta.ts";
import { autoWorkers } from "../../lib/tuning/hyperparameters.ts";
import { ROOT } from "../../lib/util/paths.ts";
import { tinyWorld } from "../tuning/fixture.ts";

const MAIN = join(ROOT, "lib", "cli", "main.ts");

function command(args: string[], env?: Record<string, string>): Deno.Command {
  return new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", MAIN, ...args],
    cwd: ROOT,
    stdout: "piped",
    stderr: "piped",
    env,
  });
}

async function normtune(
  args: string[],
  env?: Record<string, string>,
): Promise<{ code: number; stdout: string; stderr: string }> {
  const r = await command(args, env).output();
  const dec = new TextDecoder();
  return { code: r.code, stdout: dec.decode(r.stdout), stderr: dec.decode(r.stderr) };
}

async function exists(path: string): Promise<boolean> {
  return await Deno.stat(path).then(() => true, () => false);
}

Deno.test("finetune killed with SIGKILL resumes to the same delta bytes; evaluate and apply-delta agree", async () => {
  const w = await tinyWorld(120, 16);
  try {
    const args = (out: string) => [
      "finetune",
      "--model",
      w.model,
      "--task",
      "RTE",
      "--mode",
      "bitfit",
      "--glue-dir",
      w.glue,
      "--epochs",
      "2",
      "--batch-size",
      "2",
      "--max-len",
      "24",
      "--save-every",
      "4",
      "--out",
      out,
    ];
    const straight = join(w.dir, "straight"), killed = join(w.dir, "killed");
    const a = await normtune(args(straight));
    assert.equal(a.code, 0, a.stderr);
    assert.match(a.stdout, /RTE bitfit .*120 steps/);

    // Start, wait for the first saved state, kill -9.
    const child = command(args(killed)).spawn();
    const state = join(killed, "state", "state.safetensors");
    const deadline = Date.now() + 60_000;
    while (!(await exists(state))) {
      assert.ok(Date.now() < deadline, "no state was saved within 60 s");
      await new Promise((r) => setTimeout(r, 5));
    }
    child.kill("SIGKILL");
    const status = await child.status;
    await child.stdout.cancel();
    await child.stderr.cancel();
    assert.equal(status.signal, "SIGKILL");
    assert.equal(await exists(join(killed, "delta.safetensors")), false, "the run finished before the kill");

    const b = await normtune(args(killed));
    assert.equal(b.code, 0, b.stderr);
    assert.match(b.stderr, /resuming at step [1-9]\d* of 120/);
    assert.match(b.stdout, /resumed at step/);
    assert.deepEqual(
      await Deno.readFile(join(killed, "delta.safetensors")),
      await Deno.readFile(join(straight, "delta.safetensors")),
    );

    // Finished runs are not redone.
    const c = await normtune(args(killed));
    assert.equal(c.code, 0, c.stderr);
    assert.match(c.stdout, /already finished; nothing to do/);
    // Other arguments on the same folder are refused.
    const d = await normtune([...args(killed), "--lr", "0.5"]);
    assert.equal(d.code, 1);
    assert.match(d.stderr, /other arguments \(lr: saved 0.01, now 0.5\).*--fresh/);

    // evaluate with the delta gives the run's final dev scores.
    const metrics = JSON.parse(await Deno.readTextFile(join(straight, "metrics.json")));
    const e = await normtune([
      "evaluate",
      "--model",
      w.model,
      "--delta",
      join(straight, "delta.safetensors"),
      "--task",
      "RTE",
      "--glue-dir",
      w.glue,
      "--max-len",
      "24",
    ]);
    assert.equal(e.code, 0, e.stderr);
    assert.deepEqual(JSON.parse(e.stdout).metrics, metrics.final);

    // apply-delta writes a checkpoint equal to base + delta.
    const full = join(w.dir, "full");
    const f = await normtune([
      "apply-delta",
      "--model",
      w.model,
      "--delta",
      join(straight, "delta.safetensors"),
      "--out",
      full,
    ]);
    assert.equal(f.code, 0, f.stderr);
    const written = await readSafetensors(join(full, "model.safetensors"));
    const want = await applyDelta(w.model, join(straight, "delta.safetensors"));
    assert.deepEqual([...written.keys()].sort(), [...want.keys()].sort());
    for (const [name, t] of want) assert.deepEqual(written.get(name)!.data, t.data, name);
    assert.ok(await exists(join(full, "vocab.txt")));
  } finally {
    await w.cleanup();
  }
});

Deno.test("finetune usage errors name the flag", async () => {
  const r = await normtune(["finetune", "--model", "x", "--task", "RTE", "--mode", "lora", "--out", "y"]);
  assert.equal(r.code, 2);
  assert.match(r.stderr, /--mode lora is not a tuning mode; use one of full, bitfit/);
  const i = await normtune([
    "finetune",
    "--model",
    "x",
    "--task",
    "RTE",
    "--mode",
    "head",
    "--init",
    "zeros",
    "--out",
    "y",
  ]);
  assert.equal(i.code, 2);
  assert.match(i.stderr, /--init zeros is not an initialisation; use one of pretrained, random/);
  const s = await normtune(["finetune", "--task", "RTE"]);
  assert.equal(s.code, 2);
  assert.match(s.stderr, /missing required flag --model/);
  const twice = await normtune(["finetune", "--model", "x", "--lr", "0.01", "--lr", "0.02"]);
  assert.equal(twice.code, 2);
  assert.match(twice.stderr, /--lr is given more than once/);
});

Deno.test("finetune --gemm openblas: its identity in the summary; a wrong name or a missing OpenBLAS is an error, nothing written", async () => {
  const w = await tinyWorld(16, 8);
  try {
    const args = (out: string, gemm: string) =>
      ["finetune", "--model", w.model, "--task", "RTE", "--mode", "bitfit", "--glue-dir", w.glue]
        .concat(["--max-len", "24", "--batch-size", "8", "--workers", "2", "--gemm", gemm, "--out", out]);
    const ok = await normtune(args(join(w.dir, "ok"), "openblas"));
    assert.equal(ok.code, 0, ok.stderr);
    assert.match(ok.stdout, /backend wasm\+openblas-t1\)/);
    const bad = await normtune(args(join(w.dir, "bad"), "mkl"));
    assert.equal(bad.code, 2);
    assert.match(bad.stderr, /--gemm mkl is not a product; use one of wasm, openblas, auto/);
    const missing = join(w.dir, "missing");
    const r = await normtune(args(missing, "openblas"), {
      NORMTUNE_OPENBLAS: "/nonexistent/libopenblas.so.0",
    });
    assert.equal(r.code, 1);
    assert.match(r.stderr, /OpenBLAS could not be loaded; tried \/nonexistent\/libopenblas\.so\.0 \(/);
    assert.equal(await exists(missing), false);
    // The environment's choice, as the flag's.
    const env = await normtune(args(join(w.dir, "env"), "wasm").slice(0, -4).concat(["--out", missing]), {
      NORMTUNE_GEMM: "openblas",
      NORMTUNE_OPENBLAS: "/nonexistent/libopenblas.so.0",
    });
    assert.equal(env.code, 1);
    assert.match(env.stderr, /OpenBLAS could not be loaded/);
  } finally {
    await w.cleanup();
  }
});

Deno.test("finetune's default product: OpenBLAS where it loads, else wasm, saying so; a resumed run keeps its own", async () => {
  const w = await tinyWorld(16, 8);
  try {
    const args = (out: string) =>
      ["finetune", "--model", w.model, "--task", "RTE", "--mode", "bitfit", "--glue-dir", w.glue]
        .concat(["--max-len", "24", "--batch-size", "8", "--workers", "2", "--out", out]);
    // (The tests run without NORMTUNE_GEMM, whose choice would come before the default.)
    const fast = await normtune(args(join(w.dir, "fast")));
    assert.equal(fast.code, 0, fast.stderr);
    assert.match(fast.stdout, /backend wasm\+openblas-t1\)/);
    const none = await normtune(args(join(w.dir, "none")), {
      NORMTUNE_OPENBLAS: "/nonexistent/libopenblas.so.0",
    });
    assert.equal(none.code, 0, none.stderr);
    assert.match(none.stdout, /backend wasm\)/);
    assert.match(none.stderr, /the wasm product runs \(--gemm auto\): OpenBLAS could not be loaded/);
    // The run made on wasm, asked again without --gemm where OpenBLAS loads: its saved result, not an error.
    const again = await normtune(args(join(w.dir, "none")));
    assert.equal(again.code, 0, again.stderr);
    assert.match(again.stdout, /already finished[\s\S]*backend wasm\)/);
  } finally {
    await w.cleanup();
  }
});

Deno.test("finetune --max-len beyond the model's positions: a usage error, nothing written", async () => {
  const w = await tinyWorld(16, 8);
  try {
    const out = join(w.dir, "run");
    const r = await normtune(
      ["finetune", "--model", w.model, "--task", "RTE", "--mode", "bitfit", "--glue-dir", w.glue]
        .concat(["--max-len", "40", "--out", out]),
    );
    assert.equal(r.code, 2, r.stderr);
    assert.match(r.stderr, /--max-len 40 is more than the model's max_position_embeddings 32/);
    assert.equal(await exists(out), false);
  } finally {
    await w.cleanup();
  }
});

Deno.test("finetune's worker count: the flag, else the run folder's, else the default for the batch", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const spec = { out: "string", workers: "number", "batch-size": "number", fresh: "boolean" } as const;
    const workers = (...args: string[]) => workersFlag(parseFlags(["--out", dir, ...args], spec));
    assert.equal(await workers(), "auto");
    assert.equal(autoWorkers("wasm", 32, 2), 2);
    assert.equal(autoWorkers("cpu", 32, 2), 2);
    assert.equal(autoWorkers("wasm", 4, 2), 1);
    assert.equal(autoWorkers("webgpu", 32, 2), 1, "webgpu runs the batch in one process");
    assert.equal(autoWorkers("tensorflow", 32, 2), 1, "native tensorflow has its own threads");
    assert.equal(await workers("--workers", "3"), 3);
    // A run started with one worker resumes with one, whatever the default; --fresh starts over.
    await Deno.writeTextFile(join(dir, "config.json"), JSON.stringify({ identity: { task: "RTE" } }));
    assert.equal(await workers(), 1);
    assert.equal(await workers("--fresh"), "auto");
    await Deno.writeTextFile(join(dir, "config.json"), JSON.stringify({ identity: { workers: 2 } }));
    assert.equal(await workers("--batch-size", "4"), 2);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
