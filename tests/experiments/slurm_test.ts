/**
 * The Slurm route for real: a one-node cluster on this machine (munged, slurmctld and slurmd started as
 * root from a slurm.conf written here, on free ports, every file in a temporary folder), then
 * tools/slurm/study.sh, the script docs/slurm.md shows, submits the `smoke` profile's grids as job arrays
 * chained by `afterok` plus the reports job. The records must equal a local run's. tools/setup.sh installs
 * slurm-wlm and munge; the daemons are stopped at the end, whether the test passed or not.
 */
import assert from "node:assert/strict";
import { hostname } from "node:os";
import { join } from "node:path";
import { type CellRecord, ResultStore } from "../../lib/experiments/store.ts";
import { ROOT } from "../../lib/util/paths.ts";
import { sharedGlue, sharedModel, tempDir } from "../env.ts";

const GRIDS = ["fisher", "main", "change", "topk", "crosstask"];
/**
 * How long the submitted study may take before the test gives up (255 s here with the learning-rate
 * search's 32 main cells, on two cores shared with other work).
 */
const DEADLINE_MS = 8 * 60_000;

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

async function sh(cmd: string[], env: Record<string, string>, cwd = ROOT): Promise<string> {
  const out = await new Deno.Command(cmd[0], {
    args: cmd.slice(1),
    env,
    cwd,
    stdout: "piped",
    stderr: "piped",
  })
    .output();
  const text = new TextDecoder().decode(out.stdout);
  if (!out.success) {
    throw new Error(
      `${cmd.join(" ")} failed (exit ${out.code}):\n${text}${new TextDecoder().decode(out.stderr)}`,
    );
  }
  return text;
}

/** Ports nothing listens on now (all held open until chosen, so they differ). */
function freePorts(n: number): number[] {
  const listeners = Array.from({ length: n }, () => Deno.listen({ hostname: "127.0.0.1", port: 0 }));
  const ports = listeners.map((l) => (l.addr as Deno.NetAddr).port);
  for (const l of listeners) l.close();
  return ports;
}

function alive(pid: number): boolean {
  try {
    Deno.statSync(`/proc/${pid}`);
    return true;
  } catch {
    return false;
  }
}

/** A one-node cluster whose every file (key, sockets, state, logs, config) lives in `dir`. */
class Cluster {
  readonly env: Record<string, string>;
  readonly node = hostname();
  #pidFiles: string[] = [];

  constructor(readonly dir: string) {
    this.env = { SLURM_CONF: join(dir, "slurm.conf") };
  }

  async start(): Promise<void> {
    if (Deno.uid() !== 0) {
      throw new Error("the Slurm test starts munged, slurmctld and slurmd: run it as root");
    }
    for (const tool of ["munged", "slurmctld", "slurmd", "sbatch", "squeue", "scontrol", "scancel"]) {
      const found = await new Deno.Command("sh", { args: ["-c", `command -v ${tool}`], stdout: "null" })
        .output();
      if (!found.success) {
        throw new Error(`${tool} not found: run tools/setup.sh (it installs slurm-wlm and munge)`);
      }
    }
    const d = this.dir;
    for (const sub of ["state", "spool", "log"]) await Deno.mkdir(join(d, sub));
    const key = join(d, "munge.key");
    await Deno.writeFile(key, crypto.getRandomValues(new Uint8Array(1024)), { mode: 0o400 });
    // --force: munged refuses a key and socket outside its own folders otherwise.
    this.#pidFiles.push(join(d, "munged.pid"));
    await sh([
      "munged",
      "--force",
      `--key-file=${key}`,
      `--socket=${join(d, "munge.sock")}`,
      `--pid-file=${join(d, "munged.pid")}`,
      `--log-file=${join(d, "log", "munged.log")}`,
      `--seed-file=${join(d, "munged.seed")}`,
    ], {});
    const [ctldPort, slurmdPort] = freePorts(2);
    // linuxproc / task none: no cgroups needed (containers); batch_sched_delay=0 starts each queued job at
    // once instead of after 3 s; config_overrides takes CPUs and memory from here, whatever the machine
    // has: 4 CPUs run two 2-CPU jobs of cell.sh at a time, which keeps two cores busy between job starts.
    await Deno.writeTextFile(
      this.env.SLURM_CONF,
      [
        "ClusterName=normtune-test",
        `SlurmctldHost=${this.node}(127.0.0.1)`,
        `SlurmctldPort=${ctldPort}`,
        `SlurmdPort=${slurmdPort}`,
        "SlurmUser=root",
        "SlurmdUser=root",
        "AuthType=auth/munge",
        "CredType=cred/munge",
        `AuthInfo=socket=${join(d, "munge.sock")}`,
        `StateSaveLocation=${join(d, "state")}`,
        `SlurmdSpoolDir=${join(d, "spool")}`,
        `SlurmctldPidFile=${join(d, "slurmctld.pid")}`,
        `SlurmdPidFile=${join(d, "slurmd.pid")}`,
        `SlurmctldLogFile=${join(d, "log", "slurmctld.log")}`,
        `SlurmdLogFile=${join(d, "log", "slurmd.log")}`,
        "ProctrackType=proctrack/linuxproc",
        "TaskPlugin=task/none",
        "SchedulerType=sched/backfill",
        "SchedulerParameters=batch_sched_delay=0,sched_min_interval=0",
        "SelectType=select/cons_tres",
        "SelectTypeParameters=CR_Core",
        "SlurmdParameters=config_overrides",
        "MinJobAge=3600",
        "ReturnToService=2",
        "MpiDefault=none",
        "JobCompType=jobcomp/none",
        "AccountingStorageType=accounting_storage/none",
        "JobAcctGatherType=jobacct_gather/none",
        `NodeName=${this.node} NodeAddr=127.0.0.1 CPUs=4 RealMemory=8192 State=UNKNOWN`,
        `PartitionName=test Nodes=${this.node} Default=YES MaxTime=INFINITE State=UP`,
      ].join("\n") + "\n",
    );
    this.#pidFiles.push(join(d, "slurmctld.pid"), join(d, "slurmd.pid"));
    await sh(["slurmctld", "-f", this.env.SLURM_CONF], this.env);
    await sh(["slurmd", "-f", this.env.SLURM_CONF, "-N", this.node], this.env);
    const until = Date.now() + 60_000;
    while ((await sh(["sinfo", "-h", "-o", "%T"], this.env).catch(() => "")).trim() !== "idle") {
      if (Date.now() > until) throw new Error(`the node did not become idle in 60 s:\n${await this.logs()}`);
      await sleep(250);
    }
  }

  /** Jobs still queued or running: `id state reason` lines. */
  async queue(): Promise<string[]> {
    const text = await sh(["squeue", "-h", "-o", "%i %T %r"], this.env);
    return text.split("\n").filter((l) => l.trim() !== "");
  }

  /** Every job and array task the controller remembers, as `scontrol show job -o` fields. */
  async jobs(): Promise<Record<string, string>[]> {
    const text = await sh(["scontrol", "show", "job", "-o"], this.env);
    return text.split("\n").filter((l) => l.startsWith("JobId=")).map((line) =>
      Object.fromEntries(
        line.split(" ").filter((f) => f.includes("=")).map((f) => {
          const i = f.indexOf("=");
          return [f.slice(0, i), f.slice(i + 1)];
        }),
      )
    );
  }

  /** The daemons' logs (for a failure message). */
  async logs(): Promise<string> {
    const parts = [];
    for (const name of ["munged.log", "slurmctld.log", "slurmd.log"]) {
      const text = await Deno.readTextFile(join(this.dir, "log", name)).catch(() => "(none)");
      parts.push(`--- ${name}\n${text.slice(-2000)}`);
    }
    return parts.join("\n");
  }

  /** Cancels every job, then stops slurmd, slurmctld and munged (the processes this test started). */
  async stop(): Promise<void> {
    await sh(["scancel", "--user", "root"], this.env).catch(() => {});
    for (const file of this.#pidFiles.reverse()) {
      const pid = Number(await Deno.readTextFile(file).catch(() => ""));
      if (!(pid > 0) || !alive(pid)) continue;
      Deno.kill(pid, "SIGTERM");
      const until = Date.now() + 10_000;
      while (alive(pid) && Date.now() < until) await sleep(100);
      if (alive(pid)) Deno.kill(pid, "SIGKILL");
    }
  }
}

/** What a record says about the science, without when, where and how fast it ran. */
function stable(rec: CellRecord) {
  const { timings: _t, finishedAt: _f, host: _h, result, ...rest } = rec;
  const { trainSeconds: _ts, evalSeconds: _es, secondsPerStep: _sp, seconds: _s, ...science } = result;
  return { ...rest, result: science };
}

async function logTails(dir: string): Promise<string> {
  const parts = [];
  for await (const e of Deno.readDir(dir)) {
    const text = await Deno.readTextFile(join(dir, e.name));
    parts.push(`--- ${e.name}\n${text.slice(-1500)}`);
  }
  return parts.join("\n");
}

Deno.test("docs/slurm.md shows tools/slurm's scripts exactly", async () => {
  const doc = await Deno.readTextFile(join(ROOT, "docs", "slurm.md"));
  for (const script of ["cell.sh", "study.sh"]) {
    const text = await Deno.readTextFile(join(ROOT, "tools", "slurm", script));
    assert.ok(
      doc.includes("```bash\n" + text + "```"),
      `docs/slurm.md must show tools/slurm/${script} as it is`,
    );
  }
});

Deno.test("the smoke study through a real slurmctld and slurmd equals a local run", async () => {
  const [dir, cleanup] = await tempDir();
  const study = {
    GLUE_DIR: sharedGlue(),
    NORMTUNE_MODELS_DIR: join(sharedModel(), ".."),
    NORMTUNE_BACKEND: "wasm",
    NORMTUNE_PROFILE: "smoke",
  };
  const cluster = new Cluster(join(dir, "cluster"));
  let reference: Promise<string> | undefined;
  try {
    // The reference: the same grids in one local process, run meanwhile (the jobs leave gaps).
    const local = { results: join(dir, "local", "results"), runs: join(dir, "local", "runs") };
    reference = sh(
      [Deno.execPath(), "run", "-A", "lib/cli/main.ts", "reproduce", "--skip-notebooks"]
        .concat(["--results", local.results, "--runs", local.runs]),
      study,
    );
    reference.catch(() => {}); // awaited below; a failure before then must not be unhandled

    await Deno.mkdir(cluster.dir);
    await cluster.start();
    const slurm = {
      NORMTUNE_RESULTS: join(dir, "slurm", "results"),
      NORMTUNE_RUNS: join(dir, "slurm", "runs"),
      NORMTUNE_LOGS: join(dir, "slurm", "logs"),
      NORMTUNE_REPORTS: join(dir, "slurm", "reports"),
    };
    const t0 = performance.now();
    const submitted = await sh(["bash", "tools/slurm/study.sh"], { ...study, ...slurm, ...cluster.env });
    for (const grid of GRIDS) assert.match(submitted, new RegExp(`^${grid}: \\d+ cells, job \\d+$`, "m"));
    const until = Date.now() + DEADLINE_MS;
    while (true) {
      const queue = await cluster.queue();
      if (queue.length === 0) break;
      const stuck = queue.find((l) => l.includes("DependencyNeverSatisfied"));
      if (stuck || Date.now() > until) {
        throw new Error(
          `${stuck ? `a job can never start (${stuck})` : `not finished in ${DEADLINE_MS / 1000} s`}:\n` +
            `${queue.join("\n")}\n${await logTails(slurm.NORMTUNE_LOGS)}`,
        );
      }
      await sleep(1000);
    }
    const seconds = (performance.now() - t0) / 1000;
    console.error(`slurm: the smoke study ran in ${seconds.toFixed(0)} s`);

    // Every job and array task completed; each grid's tasks started after the grid before had ended.
    const jobs = await cluster.jobs();
    const failed = jobs.filter((j) => j.JobState !== "COMPLETED");
    assert.deepEqual(
      failed.map((j) => `${j.JobName} ${j.JobId}: ${j.JobState}`),
      [],
      await logTails(slurm.NORMTUNE_LOGS),
    );
    let previousEnd = "", cells = 0;
    for (const grid of [...GRIDS, "reports"]) {
      const tasks = jobs.filter((j) => j.JobName === `normtune-${grid}`);
      const count = grid === "reports" ? 1 : Number(
        /^\w+: (\d+) cells/m.exec(
          submitted.split("\n")
            .find((l) => l.startsWith(`${grid}:`))!,
        )![1],
      );
      assert.equal(tasks.length, count, `${grid}: one job per cell`);
      if (grid !== "reports") cells += count;
      const starts = tasks.map((j) => j.StartTime).sort(), ends = tasks.map((j) => j.EndTime).sort();
      assert.ok(starts[0] >= previousEnd, `${grid} started at ${starts[0]}, before ${previousEnd}`);
      previousEnd = ends.at(-1)!;
    }

    // The same cells, the same results and the same artefact bytes as the local run.
    await reference;
    const want = await new ResultStore(local.results, local.runs).list();
    const got = await new ResultStore(slurm.NORMTUNE_RESULTS, slurm.NORMTUNE_RUNS).list();
    // A record per submitted cell, and one per mask the topk and crosstask cells built as dependencies.
    assert.ok(want.length >= cells, `${want.length} records for ${cells} submitted cells`);
    assert.deepEqual(got.map((r) => r.id), want.map((r) => r.id));
    for (let i = 0; i < want.length; i++) assert.deepEqual(stable(got[i]), stable(want[i]), want[i].label);
    assert.ok(want.some((r) => r.checksums !== undefined), "artefact checksums are compared too");
    // The last job executed the notebooks on those results.
    const index = await Deno.readTextFile(join(slurm.NORMTUNE_REPORTS, "index.html"));
    assert.match(index, /07-findings\.html/);
  } finally {
    await cluster.stop();
    await reference?.catch(() => {});
    await cleanup();
  }
});
