import assert from "node:assert/strict";
import { TASK_NAMES } from "../../lib/glue/tasks.ts";
import { MODES } from "../../lib/tuning/modes.ts";
import {
  CONTROL_NAMES,
  epochsFor,
  getProfile,
  MAIN_MODES,
  maxTrainFor,
  PROFILE_NAMES,
  profileName,
  PROFILES,
  ratesFor,
  sparseEpochs,
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
  withEnv({ NORMTUNE_MODEL: undefined }, () => assert.equal(getProfile("cpu").model, "bert-tiny-v2"));
  withEnv({ NORMTUNE_MODEL: "/models/mine" }, () => {
    assert.equal(getProfile("cpu").model, "/models/mine");
    assert.equal(getProfile("cpu", "flagged").model, "flagged");
  });
  assert.equal(PROFILES.cpu.model, "bert-tiny-v2", "the table itself is not modified");
});

Deno.test("profiles are sized as the study needs", () => {
  const smoke = PROFILES.smoke, cpu = PROFILES.cpu, paper = PROFILES.paper;
  assert.equal(smoke.tasks.length, 2);
  assert.deepEqual(smoke.seeds, [0]);
  assert.deepEqual(smoke.topk, [10, 100]);
  assert.equal(maxTrainFor(smoke.train, "SST-2"), 64);
  assert.equal(smoke.train.maxDev, 64);
  assert.equal(smoke.train.maxLen, 64);
  assert.equal(smoke.model, "bert-tiny-mlm", "smoke keeps the model the golden tests use");
  assert.deepEqual(cpu.tasks, ["CoLA", "SST-2", "MRPC", "STS-B", "RTE"]);
  assert.equal(cpu.model, "bert-tiny-v2");
  assert.equal(maxTrainFor(cpu.train, "SST-2"), 4000);
  assert.equal(maxTrainFor(cpu.train, "RTE"), undefined);
  assert.deepEqual([...paper.tasks].sort(), [...TASK_NAMES].sort());
  assert.equal(paper.seeds.length, 5);
  assert.equal(paper.model, "bert-base-uncased");
  // The published grids: BERT's for full fine-tuning, BitFit's for the sparse methods.
  assert.deepEqual(paper.train.lr.full, [2e-5, 3e-5, 5e-5]);
  for (const cls of ["bitfit", "layernorm", "layernorm-output", "head", "head-pooler"] as const) {
    assert.deepEqual(paper.train.lr[cls], [1e-4, 4e-4, 7e-4, 1e-3], cls);
  }
  for (const name of PROFILE_NAMES) {
    const p = PROFILES[name];
    assert.ok(p.tasks.length >= 2, `${name}: cross-task masks need two tasks`);
    assert.ok(p.topk.includes(p.crossTaskK), `${name}: cross-task own/random cells are shared with topk`);
    assert.deepEqual(p.controls, [...CONTROL_NAMES], `${name}: every control beside the main methods`);
    for (const mode of [...MAIN_MODES, "mask", "head", "head-pooler"] as const) {
      assert.ok(MODES[mode], `${mode} is a tuning mode`);
      assert.ok(epochsFor(p.train, mode) >= 1, `${name}: ${mode} has epochs`);
      if (mode === "mask") {
        assert.deepEqual(ratesFor(p.train, mode), [], "masks train at the chosen LayerNorm rate");
        continue;
      }
      const rates = ratesFor(p.train, mode);
      assert.ok(rates.length >= 2, `${name}: ${mode} searches at least two rates`);
      assert.ok(rates.every((lr, i) => lr > 0 && (i === 0 || lr > rates[i - 1])), `${name}: ascending`);
      // The epoch rule, the same in every profile: sparse classes train more than full fine-tuning.
      if (mode !== "full") {
        assert.ok(epochsFor(p.train, mode) > epochsFor(p.train, "full"), `${name} ${mode}`);
      }
    }
    for (
      const cls of ["full", "sparse", "head", "mask"].map((c) => `finetune/${c}`).concat([
        "fisher",
        "change",
        "mask",
      ])
    ) {
      assert.ok(p.nominalSecondsPerUnit[cls] > 0, `${name}: nominal rate for ${cls}`);
    }
  }
  assert.deepEqual([1, 2, 3].map(sparseEpochs), [2, 3, 5]);
  assert.deepEqual([epochsFor(cpu.train, "full"), epochsFor(cpu.train, "layernorm")], [2, 3]);
});
