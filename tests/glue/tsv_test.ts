import assert from "node:assert/strict";
import { join } from "node:path";
import { loadFile, loadSplit } from "../../lib/glue/tsv.ts";
import { type GlueTask, TASKS } from "../../lib/glue/tasks.ts";
import { sharedGlue, tempDir } from "../env.ts";

Deno.test("row counts of the shared GLUE files", async () => {
  const glueDir = sharedGlue();
  const expected: [GlueTask, string, number][] = [
    [TASKS.CoLA, "train", 8551],
    [TASKS.CoLA, "dev", 1043],
    [TASKS["SST-2"], "train", 67349],
    [TASKS["SST-2"], "dev", 872],
    [TASKS.MRPC, "train", 3668],
    [TASKS.MRPC, "dev", 408],
    [TASKS["STS-B"], "train", 5749],
    [TASKS["STS-B"], "dev", 1500],
    [TASKS.RTE, "train", 2490],
    [TASKS.RTE, "dev", 277],
    [TASKS.WNLI, "train", 635],
    [TASKS.WNLI, "dev", 71],
    [TASKS.QNLI, "dev", 5463],
  ];
  for (const [task, split, count] of expected) {
    const { examples, skipped, file } = await loadSplit(task, split, { glueDir });
    assert.equal(examples.length, count, `${task.name} ${split}`);
    assert.equal(skipped, 0);
    assert.ok(file.endsWith(join(task.folder, split === "train" ? "train.tsv" : "dev.tsv")));
    // Both classes (or a spread of scores) occur, and pair tasks have their second text.
    const labels = new Set(examples.map((e) => e.label));
    assert.ok(labels.size >= 2, `${task.name} ${split}: labels ${[...labels]}`);
    if (task.textB !== undefined) assert.ok(examples.every((e) => typeof e.textB === "string"));
    else assert.ok(examples.every((e) => e.textB === undefined));
  }
});

Deno.test("shared files: first rows decode as the GLUE processors read them", async () => {
  const glueDir = sharedGlue();
  // CoLA has no header: its first example is on line 1; label column 1, sentence column 3.
  const cola = (await loadSplit(TASKS.CoLA, "dev", { glueDir })).examples[0];
  assert.equal(cola.line, 1);
  assert.equal(cola.textA, "The sailors rode the breeze clear of the rocks.");
  assert.equal(cola.label, 1);
  // MRPC starts with a BOM and keeps unbalanced quotes as text.
  const mrpc = (await loadSplit(TASKS.MRPC, "dev", { glueDir })).examples[0];
  assert.equal(mrpc.line, 2);
  assert.equal(mrpc.label, 1);
  assert.ok(mrpc.textB!.startsWith('"The foodservice pie business'));
  const sts = (await loadSplit(TASKS["STS-B"], "dev", { glueDir })).examples[1];
  assert.deepEqual(sts, {
    textA: "A young child is riding a horse.",
    textB: "A child is riding a horse.",
    label: 4.75,
    line: 3,
  });
  const qnli = (await loadSplit(TASKS.QNLI, "dev", { glueDir })).examples;
  assert.deepEqual(qnli.slice(0, 2).map((e) => e.label), [0, 1]); // entailment, not_entailment
});

/** Writes `text` as TASK/file under a fresh GLUE root. */
async function withFile(
  task: GlueTask,
  file: string,
  text: string | Uint8Array,
  fn: (root: string) => Promise<void>,
): Promise<void> {
  const [root, cleanup] = await tempDir();
  try {
    await Deno.mkdir(join(root, task.folder));
    const path = join(root, task.folder, file);
    if (typeof text === "string") await Deno.writeTextFile(path, text);
    else await Deno.writeFile(path, text);
    await fn(root);
  } finally {
    await cleanup();
  }
}

Deno.test("BOM, \\r\\n endings, no final newline, unbalanced quotes and empty lines", async () => {
  const rte = '\ufeffindex\tsentence1\tsentence2\tlabel\r\n0\t"He said\tso.\tentailment\r\n\r\n' +
    '1\tA "quoted" one\tB"\tnot_entailment';
  await withFile(TASKS.RTE, "dev.tsv", rte, async (glueDir) => {
    const { examples } = await loadSplit(TASKS.RTE, "dev", { glueDir });
    assert.deepEqual(examples, [
      { textA: '"He said', textB: "so.", label: 0, line: 2 },
      { textA: 'A "quoted" one', textB: 'B"', label: 1, line: 4 },
    ]);
  });
  // The BOM sits on the first column's name, which SST-2 uses.
  await withFile(TASKS["SST-2"], "dev.tsv", "\ufeffsentence\tlabel\r\nnice .\t1\r\n", async (glueDir) => {
    const { examples } = await loadSplit(TASKS["SST-2"], "dev", { glueDir });
    assert.deepEqual(examples, [{ textA: "nice .", label: 1, line: 2 }]);
  });
});

Deno.test("headerless CoLA layout: column 1 is the label, column 3 the sentence", async () => {
  const cola = "src1\t0\t*\tBad sentence .\nsrc2\t1\t\tGood sentence .";
  await withFile(TASKS.CoLA, "train.tsv", cola, async (glueDir) => {
    const { examples } = await loadSplit(TASKS.CoLA, "train", { glueDir });
    assert.deepEqual(examples, [
      { textA: "Bad sentence .", label: 0, line: 1 },
      { textA: "Good sentence .", label: 1, line: 2 },
    ]);
  });
});

Deno.test("malformed rows are errors naming file:line, or counted with skipBadRows", async () => {
  const sst = "sentence\tlabel\ngood .\t1\ntwo\ttabs\t0\nfine .\t0\nbad label\t2\n";
  await withFile(TASKS["SST-2"], "train.tsv", sst, async (glueDir) => {
    const file = join(glueDir, "SST-2", "train.tsv");
    await assert.rejects(
      loadSplit(TASKS["SST-2"], "train", { glueDir }),
      // The advice names no flag: no command has one for this.
      (err: Error) =>
        err.message === `${file}:3: expected 2 tab-separated columns, found 3; fix or remove that line`,
    );
    const r = await loadSplit(TASKS["SST-2"], "train", { glueDir, skipBadRows: true });
    assert.deepEqual(r.examples.map((e) => [e.textA, e.label, e.line]), [["good .", 1, 2], ["fine .", 0, 4]]);
    assert.equal(r.skipped, 2);
    assert.equal(r.skipReasons.length, 2);
    assert.match(r.skipReasons[1], /train\.tsv:5: label "2" is not one of \["0","1"\]/);
  });
  const header = "index\tgenre\tfilename\tyear\told_index\tsource1\tsource2\tsentence1\tsentence2\tscore\n";
  const sts = header + "0\tg\tf\ty\t0\ts\ts\tA\tB\t3.2\n1\tg\tf\ty\t0\ts\ts\tA\tB\tn/a\n";
  await withFile(TASKS["STS-B"], "dev.tsv", sts, async (glueDir) => {
    await assert.rejects(
      loadSplit(TASKS["STS-B"], "dev", { glueDir }),
      /dev\.tsv:3: score "n\/a" is not a number/,
    );
    const r = await loadSplit(TASKS["STS-B"], "dev", { glueDir, skipBadRows: true });
    assert.deepEqual(r.examples.map((e) => e.label), [3.2]);
    assert.equal(r.skipped, 1);
  });
});

Deno.test("a header without the task's columns, and a file that is not UTF-8, are errors", async () => {
  await withFile(TASKS.RTE, "dev.tsv", "index\tpremise\thypothesis\tlabel\n", async (glueDir) => {
    await assert.rejects(
      loadSplit(TASKS.RTE, "dev", { glueDir }),
      /dev\.tsv:1: no column "sentence1" in the header/,
    );
  });
  // A 10 MB "header" (a file without newlines) is cut in the message, not echoed whole.
  await withFile(TASKS.RTE, "dev.tsv", "x".repeat(10_000_000) + "\tlabel\n", async (glueDir) => {
    await assert.rejects(
      loadSplit(TASKS.RTE, "dev", { glueDir }),
      (err: Error) =>
        /dev\.tsv:1: no column "sentence1" in the header \(found \["x+… \(10000012 characters as JSON\)\); /
          .test(
            err.message,
          ) &&
        err.message.length < 500,
    );
  });
  await withFile(
    TASKS["SST-2"],
    "dev.tsv",
    "sentence\tlabel\nok\t" + "7".repeat(10_000_000) + "\n",
    async (glueDir) => {
      await assert.rejects(
        loadSplit(TASKS["SST-2"], "dev", { glueDir }),
        (err: Error) =>
          /dev\.tsv:2: label "777+… \(10000000 characters\) is not one of/.test(err.message) &&
          err.message.length < 500,
      );
    },
  );
  const bytes = new Uint8Array([...new TextEncoder().encode("sentence\tlabel\nok\t1\n"), 0xff, 0xfe, 0x0a]);
  await withFile(TASKS["SST-2"], "dev.tsv", bytes, async (glueDir) => {
    await assert.rejects(
      loadSplit(TASKS["SST-2"], "dev", { glueDir }),
      /dev\.tsv: cannot decode as UTF-8 near line \d+/,
    );
  });
});

Deno.test("a missing task folder or file says how to get the data", async () => {
  const [root, cleanup] = await tempDir();
  try {
    await assert.rejects(
      loadSplit(TASKS.QQP, "train", { glueDir: root }),
      /GLUE task QQP not found: no folder .*QQP\. Run `deno task normtune glue download QQP`.*GLUE_DIR/,
    );
    await Deno.mkdir(join(root, "QQP"));
    await assert.rejects(loadSplit(TASKS.QQP, "dev", { glueDir: root }), /QQP[/\\]dev\.tsv: no such file/);
    await assert.rejects(loadSplit(TASKS.QQP, "test", { glueDir: root }), /QQP has no split "test"/);
  } finally {
    await cleanup();
  }
});

Deno.test("GLUE_DIR is the default root", async () => {
  await withFile(TASKS.WNLI, "dev.tsv", "index\tsentence1\tsentence2\tlabel\n0\ta\tb\t1\n", async (root) => {
    const before = Deno.env.get("GLUE_DIR");
    Deno.env.set("GLUE_DIR", root);
    try {
      const { examples, file } = await loadSplit(TASKS.WNLI, "dev");
      assert.equal(file, join(root, "WNLI", "dev.tsv"));
      assert.equal(examples.length, 1);
    } finally {
      if (before === undefined) Deno.env.delete("GLUE_DIR");
      else Deno.env.set("GLUE_DIR", before);
    }
  });
});

Deno.test("maxExamples keeps a seeded random subset in file order", async () => {
  const rows = Array.from({ length: 200 }, (_, i) => `s${i}\t${i % 2}`).join("\n");
  await withFile(TASKS["SST-2"], "train.tsv", "sentence\tlabel\n" + rows, async (glueDir) => {
    const load = (maxExamples?: number, seed?: number) =>
      loadSplit(TASKS["SST-2"], "train", { glueDir, maxExamples, seed }).then((r) =>
        r.examples.map((e) => e.line)
      );
    const a = await load(20, 7);
    assert.equal(a.length, 20);
    assert.equal(new Set(a).size, 20);
    assert.deepEqual(a, [...a].sort((x, y) => x - y), "file order");
    assert.deepEqual(await load(20, 7), a, "same seed, same subset");
    assert.notDeepEqual(await load(20, 8), a, "another seed, another subset");
    assert.deepEqual(await load(20), await load(20, 0), "seed defaults to 0");
    assert.notDeepEqual(a, Array.from({ length: 20 }, (_, i) => i + 2), "not just the first rows");
    assert.equal((await load(500)).length, 200, "more than there are: all");
    await assert.rejects(load(0), /maxExamples must be a positive integer/);
  });
});

Deno.test("loadFile reads any file laid out like the task's", async () => {
  await withFile(
    TASKS.RTE,
    "custom.tsv",
    "index\tsentence1\tsentence2\tlabel\n0\ta\tb\tentailment\n",
    async (root) => {
      const r = await loadFile(TASKS.RTE, join(root, "RTE", "custom.tsv"));
      assert.deepEqual(r.examples, [{ textA: "a", textB: "b", label: 0, line: 2 }]);
    },
  );
});
