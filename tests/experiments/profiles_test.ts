import assert from "node:assert/strict";
import { TASK_NAMES } from "../../lib/glue/tasks.ts";
import { MODES } from "../../lib/tuning/modes.ts";
import {
  epochsFor,
  getProfile,
  MAIN_MODES,
  maxTrainFor,
  PROFILE_NAMES,
  profileName,
  PROFILES,
} from "../../lib/experiments/profiles.ts";

function withEnv(vars: Record<string, string | undefined>, f: () => void): void {
  const saved = Object.fromEntries(Object.keys(vars).map((k) => [k, Deno.env.get(k)]));
  try {
    for (const [k, v] of Object.entries(vars)) v === undefined ? Deno.env.delete(k) : Deno.env.set(k, v);
    f();
  } finally {
    for (const [k, v] of Object.entries(saved)) v === undefined ? Deno.env.delete(k) : Deno.env.set(k, v);
  }
}

Deno.test("the profile comes from the flag, then NORMTUNE_PROFILE, then cpu", () => {
  withEnv({ NORMTUNE_PROFILE: undefined }, () => assert.equal(profileName(), "cpu"));
  withEnv({ NORMTUNE_PROFILE: "smoke" }, () => {
    assert.equal(profileName(), "smoke");
    assert.equal(profileName("paper"), "paper");
  });
  assert.throws(() => profileName("huge"), /unknown profile "huge"; use one of smoke, cpu, paper/);
});

Deno.test("NORMTUNE_MODEL and --model replace the profile's model", () => {
  withEnv({ NORMTUNE_MODEL: undefined }, () => assert.equal(getProfile("cpu").model, "bert-tiny-mlm"));
  withEnv({ NORMTUNE_MODEL: "/models/mine" }, () => {
    assert.equal(getProfile("cpu").model, "/models/mine");
    assert.equal(getProfile("cpu", "flagged").model, "flagged");
  });
  assert.equal(PROFILES.cpu.model, "bert-tiny-mlm", "the table itself is not modified");
});

Deno.test("profiles are sized as the study needs", () => {
  const smoke = PROFILES.smoke, cpu = PROFILES.cpu, paper = PROFILES.paper;
  assert.equal(smoke.tasks.length, 2);
  assert.deepEqual(smoke.seeds, [0]);
  assert.deepEqual(smoke.topk, [10, 100]);
  assert.equal(maxTrainFor(smoke.train, "SST-2"), 64);
  assert.equal(smoke.train.maxDev, 64);
  assert.equal(smoke.train.maxLen, 64);
  assert.deepEqual(cpu.tasks, ["CoLA", "SST-2", "MRPC", "STS-B", "RTE"]);
  assert.equal(cpu.seeds.length, 3);
  assert.equal(maxTrainFor(cpu.train, "SST-2"), 8000);
  assert.equal(maxTrainFor(cpu.train, "RTE"), undefined);
  assert.deepEqual([...paper.tasks].sort(), [...TASK_NAMES].sort());
  assert.equal(paper.seeds.length, 5);
  assert.equal(paper.model, "bert-base-uncased");
  assert.equal(epochsFor(paper.train, "MNLI", "layernorm"), 3);
  assert.equal(epochsFor(paper.train, "RTE", "layernorm"), 10);
  assert.equal(epochsFor(paper.train, "MNLI", "full"), 3);
  for (const name of PROFILE_NAMES) {
    const p = PROFILES[name];
    assert.ok(p.tasks.length >= 2, `${name}: cross-task masks need two tasks`);
    assert.ok(p.topk.includes(p.crossTaskK), `${name}: cross-task own/random cells are shared with topk`);
    for (const mode of [...MAIN_MODES, "mask", "head", "head-pooler"] as const) {
      assert.ok(MODES[mode], `${mode} is a tuning mode`);
      assert.ok(p.train.lr[mode] > 0 && p.train.epochs[mode] >= 1, `${name}: ${mode} has lr and epochs`);
    }
    for (const cls of ["finetune/full", "finetune/sparse", "fisher", "change", "mask"]) {
      assert.ok(p.nominalSecondsPerUnit[cls] > 0, `${name}: nominal rate for ${cls}`);
    }
  }
});
