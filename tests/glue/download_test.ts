import assert from "node:assert/strict";
import { join } from "node:path";
import { buildMrpc, downloadTask } from "../../lib/glue/download.ts";
import { loadSplit } from "../../lib/glue/tsv.ts";
import { TASKS } from "../../lib/glue/tasks.ts";
import { run } from "../../lib/cli/glue.ts";
import { UsageError } from "../../lib/cli/flags.ts";
import { tempDir } from "../env.ts";
import { makeZip } from "./zip_writer.ts";

const RTE_HEADER = "index\tsentence1\tsentence2\tlabel\n";
const rteRows = (n: number) =>
  Array.from(
    { length: n },
    (_, i) => `${i}\tpremise ${i}\thypothesis ${i}\t${i % 3 ? "entailment" : "not_entailment"}`,
  )
    .join("\n") + "\n";

/** MSR paraphrase files as the SentEval mirror serves them: BOM header, CRLF endings. */
const MSR_HEADER = "\ufeffQuality\t#1 ID\t#2 ID\t#1 String\t#2 String";
const MSR_TRAIN = [
  MSR_HEADER,
  '1\t11\t12\tA one.\tA "one.',
  "0\t21\t22\tB two.\tB 2.",
  "1\t31\t32\tC.\tC!",
  "",
]
  .join("\r\n");
const MSR_TEST = [MSR_HEADER, "0\t41\t42\tD.\tD?", ""].join("\r\n");
const DEV_IDS = "21\t22\n";

/** A hub-like server: the official paths, served from memory; anything else is a 404. */
async function serveGlue(): Promise<{ base: string; close: () => Promise<void>; hits: string[] }> {
  const files: Record<string, Uint8Array | string> = {
    "/glue/data/RTE.zip": await makeZip([
      { name: "RTE/" },
      { name: "RTE/train.tsv", data: RTE_HEADER + rteRows(30), deflate: true },
      { name: "RTE/dev.tsv", data: RTE_HEADER + rteRows(7), deflate: true },
      { name: "RTE/test.tsv", data: "index\tsentence1\tsentence2\n0\ta\tb\n" },
    ]),
    // Stored entries, no directory entry, headerless like the real CoLA.
    "/glue/data/CoLA.zip": await makeZip([
      { name: "CoLA/train.tsv", data: "s\t1\t\tGood .\ns\t0\t*\tBad .\n" },
      { name: "CoLA/dev.tsv", data: "s\t1\t\tFine ." },
    ]),
    // QNLI's archive name differs from its folder; a stray top-level file must not hide the folder.
    "/glue/data/QNLIv2.zip": await makeZip([
      { name: "README.txt", data: "about" },
      { name: "QNLI/train.tsv", data: "index\tquestion\tsentence\tlabel\n0\tq?\ts.\tnot_entailment\n" },
      { name: "QNLI/dev.tsv", data: "index\tquestion\tsentence\tlabel\n", deflate: true },
    ]),
    // A zip without dev.tsv, and bytes that are no zip at all.
    "/glue/data/STS-B.zip": await makeZip([{ name: "STS-B/train.tsv", data: "x\n" }]),
    "/glue/data/SST-2.zip": "<html>not a zip</html>",
    "/senteval/senteval_data/msr_paraphrase_train.txt": MSR_TRAIN,
    "/senteval/senteval_data/msr_paraphrase_test.txt": MSR_TEST,
    "/glue/data/mrpc_dev_ids.tsv": DEV_IDS,
  };
  const hits: string[] = [];
  const server = Deno.serve({ hostname: "127.0.0.1", port: 0, onListen() {} }, (req) => {
    const path = new URL(req.url).pathname;
    hits.push(path);
    const body = files[path];
    return body === undefined
      ? new Response("no such file", { status: 404, statusText: "Not Found" })
      : new Response(body as BodyInit);
  });
  return { base: `http://127.0.0.1:${server.addr.port}`, close: () => server.shutdown(), hits };
}

/** Names in the GLUE root: task folders only, never a leftover temporary folder. */
async function listing(root: string): Promise<string[]> {
  const names: string[] = [];
  for await (const e of Deno.readDir(root)) names.push(e.name);
  return names.sort();
}

Deno.test("download from a local server: files in place and loadable, then left alone or replaced", async () => {
  const server = await serveGlue();
  const [root, cleanup] = await tempDir();
  try {
    const logs: string[] = [];
    const r = await downloadTask("rte", { glueDir: root, baseUrl: server.base, log: (m) => logs.push(m) });
    assert.equal(r.status, "downloaded");
    assert.equal(r.dir, join(root, "RTE"));
    assert.deepEqual(r.files.sort(), ["dev.tsv", "test.tsv", "train.tsv"]);
    assert.deepEqual(await listing(root), ["RTE"]);
    assert.ok(server.hits.includes("/glue/data/RTE.zip"));
    assert.ok(logs.some((l) => l.includes(`${server.base}/glue/data/RTE.zip`)));
    const train = await loadSplit(TASKS.RTE, "train", { glueDir: root });
    const dev = await loadSplit(TASKS.RTE, "dev", { glueDir: root });
    assert.equal(train.examples.length, 30);
    assert.deepEqual(dev.examples[1], { textA: "premise 1", textB: "hypothesis 1", label: 0, line: 3 });

    // Already complete: nothing fetched.
    const hits = server.hits.length;
    assert.equal((await downloadTask("RTE", { glueDir: root, baseUrl: server.base })).status, "present");
    assert.equal(server.hits.length, hits);
    // --force replaces it (a stray file in the old folder disappears).
    await Deno.writeTextFile(join(root, "RTE", "stray.txt"), "x");
    const again = await downloadTask("RTE", { glueDir: root, baseUrl: server.base + "/", force: true });
    assert.equal(again.status, "downloaded");
    await assert.rejects(Deno.stat(join(root, "RTE", "stray.txt")), Deno.errors.NotFound);
    assert.deepEqual(await listing(root), ["RTE"]);

    // Stored entries and no directory entry in the zip.
    await downloadTask("CoLA", { glueDir: root, baseUrl: server.base });
    const cola = await loadSplit(TASKS.CoLA, "train", { glueDir: root });
    assert.deepEqual(cola.examples.map((e) => [e.textA, e.label]), [["Good .", 1], ["Bad .", 0]]);

    await downloadTask("QNLI", { glueDir: root, baseUrl: server.base });
    const qnli = await loadSplit(TASKS.QNLI, "train", { glueDir: root });
    assert.deepEqual(qnli.examples, [{ textA: "q?", textB: "s.", label: 1, line: 2 }]);
    assert.deepEqual(await listing(root), ["CoLA", "QNLI", "RTE"]);
  } finally {
    await cleanup();
    await server.close();
  }
});

Deno.test("a 404, a corrupt zip or a zip lacking files is a clear error and leaves nothing behind", async () => {
  const server = await serveGlue();
  const [root, cleanup] = await tempDir();
  try {
    await assert.rejects(
      downloadTask("WNLI", { glueDir: root, baseUrl: server.base }),
      (err: Error) =>
        err.message.includes(`GET ${server.base}/glue/data/WNLI.zip failed: 404 Not Found`) &&
        err.message.includes("NORMTUNE_GLUE_URL"),
    );
    await assert.rejects(downloadTask("SST-2", { glueDir: root, baseUrl: server.base }), /not a zip file/);
    await assert.rejects(
      downloadTask("STS-B", { glueDir: root, baseUrl: server.base }),
      /STS-B: the download lacks dev\.tsv; nothing was installed/,
    );
    assert.deepEqual(await listing(root), []);
    // A failed --force keeps the old folder.
    await Deno.mkdir(join(root, "WNLI"));
    await Deno.writeTextFile(join(root, "WNLI", "train.tsv"), "old");
    await assert.rejects(
      downloadTask("WNLI", { glueDir: root, baseUrl: server.base }),
      /lacks dev\.tsv; pass --force/,
    );
    await assert.rejects(downloadTask("WNLI", { glueDir: root, baseUrl: server.base, force: true }), /404/);
    assert.equal(await Deno.readTextFile(join(root, "WNLI", "train.tsv")), "old");
    assert.deepEqual(await listing(root), ["WNLI"]);
  } finally {
    await cleanup();
    await server.close();
  }
});

Deno.test("MRPC is built from the MSR files and the dev ids", async () => {
  const server = await serveGlue();
  const [root, cleanup] = await tempDir();
  try {
    await downloadTask("MRPC", { glueDir: root, baseUrl: server.base });
    assert.deepEqual(await listing(join(root, "MRPC")), ["dev.tsv", "test.tsv", "train.tsv"]);
    const dev = await Deno.readTextFile(join(root, "MRPC", "dev.tsv"));
    // The header keeps its BOM, as download_glue_data.py writes it.
    assert.equal(dev, `${MSR_HEADER}\n0\t21\t22\tB two.\tB 2.\n`);
    const train = await loadSplit(TASKS.MRPC, "train", { glueDir: root });
    assert.deepEqual(train.examples.map((e) => [e.textA, e.textB, e.label]), [
      ["A one.", 'A "one.', 1],
      ["C.", "C!", 1],
    ]);
    assert.equal(
      await Deno.readTextFile(join(root, "MRPC", "test.tsv")),
      "index\t#1 ID\t#2 ID\t#1 String\t#2 String\n0\t41\t42\tD.\tD?\n",
    );
  } finally {
    await cleanup();
    await server.close();
  }
});

Deno.test("buildMrpc rejects malformed rows and dev ids that match nothing", () => {
  assert.throws(
    () => buildMrpc(`${MSR_HEADER}\n1\t2\tonly three`, MSR_TEST, DEV_IDS),
    /train\.txt:2: expected 5/,
  );
  assert.throws(() => buildMrpc(MSR_TRAIN, MSR_TEST, "99\t98\n"), /no dev id pair matches/);
});

Deno.test("CLI: `glue download` reads NORMTUNE_GLUE_URL and reports the tasks it could not get", async () => {
  const server = await serveGlue();
  const [root, cleanup] = await tempDir();
  const before = Deno.env.get("NORMTUNE_GLUE_URL");
  Deno.env.set("NORMTUNE_GLUE_URL", server.base);
  const quiet = console.error;
  console.error = () => {};
  try {
    await assert.rejects(run(["download", "rte", "wnli", "--glue-dir", root]), /could not download WNLI/);
    assert.deepEqual(await listing(root), ["RTE"]);
    await run(["download", "RTE", `--glue-dir=${root}`]); // already there: fine
    await assert.rejects(run(["download", "squad", "--glue-dir", root]), UsageError);
    await assert.rejects(run(["fetch"]), UsageError);
    const out: string[] = [];
    const log = console.log;
    console.log = (m: string) => out.push(m);
    try {
      await run(["list", "--glue-dir", root]);
    } finally {
      console.log = log;
    }
    assert.ok(out.some((l) => /RTE\s+RTE\/\s+ok/.test(l)), out.join("\n"));
    assert.ok(out.some((l) => /WNLI\s+WNLI\/\s+missing train\.tsv, dev\.tsv/.test(l)), out.join("\n"));
  } finally {
    console.error = quiet;
    if (before === undefined) Deno.env.delete("NORMTUNE_GLUE_URL");
    else Deno.env.set("NORMTUNE_GLUE_URL", before);
    await cleanup();
    await server.close();
  }
});
