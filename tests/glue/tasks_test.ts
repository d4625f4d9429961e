import assert from "node:assert/strict";
import { join } from "node:path";
import { getTask, splitFile, splitNames, TASK_NAMES, TASKS } from "../../lib/glue/tasks.ts";
import { sharedGlue } from "../env.ts";

Deno.test("getTask ignores case and separators, and lists the names when unknown", () => {
  for (const n of ["sst2", "sst-2", "SST-2", "Sst_2"]) assert.equal(getTask(n).name, "SST-2");
  assert.equal(getTask("stsb").name, "STS-B");
  assert.equal(getTask("mnli").name, "MNLI");
  assert.equal(getTask("cola"), TASKS.CoLA);
  assert.throws(() => getTask("squad"), /unknown GLUE task "squad"; use one of CoLA, SST-2, .*WNLI/);
});

Deno.test("every task is self-consistent", () => {
  assert.equal(TASK_NAMES.length, 9);
  for (const name of TASK_NAMES) {
    const t = TASKS[name];
    assert.equal(t.name, name);
    assert.ok(t.metrics.includes(t.mainMetric), `${name}: main metric among its metrics`);
    assert.ok(t.mainSplit in t.dev, `${name}: main split is a dev split`);
    assert.equal(t.numLabels, t.labels === null ? 1 : t.labels.length, name);
    // Headerless files address columns by index, headed ones by name.
    for (const c of [t.textA, t.textB, t.label]) {
      if (c !== undefined) assert.equal(typeof c, t.header ? "string" : "number", name);
    }
  }
});

Deno.test("label sets, metrics and splits follow the standard GLUE processors", () => {
  assert.deepEqual(TASKS.MNLI.labels, ["contradiction", "entailment", "neutral"]);
  assert.deepEqual(TASKS.MNLI.dev, { dev_matched: "dev_matched.tsv", dev_mismatched: "dev_mismatched.tsv" });
  assert.equal(TASKS.MNLI.mainSplit, "dev_matched");
  for (const n of ["RTE", "QNLI"] as const) {
    assert.deepEqual(TASKS[n].labels, ["entailment", "not_entailment"]);
  }
  for (const n of ["CoLA", "SST-2", "MRPC", "QQP", "WNLI"] as const) {
    assert.deepEqual(TASKS[n].labels, ["0", "1"]);
  }
  assert.equal(TASKS["STS-B"].labels, null);
  assert.deepEqual([TASKS.CoLA.metrics, TASKS.CoLA.mainMetric], [["mcc"], "mcc"]);
  assert.deepEqual([TASKS["STS-B"].metrics, TASKS["STS-B"].mainMetric], [["pearson", "spearman"], "pearson"]);
  for (const n of ["MRPC", "QQP"] as const) {
    assert.deepEqual([TASKS[n].metrics, TASKS[n].mainMetric], [["f1", "accuracy"], "f1"]);
  }
  assert.deepEqual([TASKS.CoLA.header, TASKS.CoLA.textA, TASKS.CoLA.label], [false, 3, 1]);
  assert.deepEqual([TASKS.QQP.textA, TASKS.QQP.textB, TASKS.QQP.label], [
    "question1",
    "question2",
    "is_duplicate",
  ]);
});

Deno.test("splitFile maps split names to files and lists the splits when unknown", () => {
  assert.equal(splitFile(TASKS.RTE, "train"), "train.tsv");
  assert.equal(splitFile(TASKS.MNLI, "dev_mismatched"), "dev_mismatched.tsv");
  assert.deepEqual(splitNames(TASKS.MNLI), ["train", "dev_matched", "dev_mismatched"]);
  assert.throws(() => splitFile(TASKS.MNLI, "dev"), /MNLI has no split "dev"; use one of train, dev_matched/);
});

Deno.test("header columns named in the registry exist in the shared GLUE files", async () => {
  const root = sharedGlue();
  let checked = 0;
  for (const name of TASK_NAMES) {
    const t = TASKS[name];
    for (const file of [t.train, ...Object.values(t.dev)]) {
      let text: string;
      try {
        text = await Deno.readTextFile(join(root, t.folder, file));
      } catch {
        continue; // not every task is in the shared copy (QQP, MNLI, QNLI train are not)
      }
      const first = text.slice(0, text.indexOf("\n")).replace(/^\ufeff/, "").split("\t");
      if (t.header) {
        for (const c of [t.textA, t.textB, t.label]) {
          if (c !== undefined) {
            assert.ok(first.includes(c as string), `${name}/${file}: column ${c} in ${first}`);
          }
        }
      } else {
        assert.equal(first.length, t.columns, `${name}/${file}: column count`);
        assert.ok(t.labels!.includes(first[t.label as number]), `${name}/${file}: label column`);
      }
      checked++;
    }
  }
  assert.ok(checked >= 12, `checked ${checked} shared files`);
});
