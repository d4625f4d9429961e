import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { join } from "node:path";
import {
  checkModelId,
  downloadModel,
  etagKind,
  fileDigest,
  hubUrl,
  modelCacheDir,
} from "../../lib/bert/hub.ts";
import { loadCheckpoint } from "../../lib/bert/checkpoint.ts";
import { run } from "../../lib/cli/download.ts";
import { tempDir } from "../env.ts";

/** Serves a hub-like layout on 127.0.0.1: small files directly, LFS weights by redirect to a "CDN". */
interface Hub {
  endpoint: string;
  /** Every request: path and Range header. */
  log: { path: string; range: string | null }[];
  /** Knobs the tests turn. */
  ignoreRange: boolean;
  corruptWeights: boolean;
  dropWeightsAfter: number;
  badVocabEtag: boolean;
  files: Map<string, Uint8Array<ArrayBuffer>>;
  close(): Promise<void>;
}

const ID = "acme/tiny-bert";
const sha256 = (b: Uint8Array) => createHash("sha256").update(b).digest("hex");
const gitSha1 = (b: Uint8Array) => createHash("sha1").update(`blob ${b.length}\0`).update(b).digest("hex");

function startHub(): Hub {
  const weights = new Uint8Array(100_000).map((_, i) => (i * 31 + 7) & 255);
  const enc = new TextEncoder();
  const files = new Map<string, Uint8Array<ArrayBuffer>>([
    [
      "config.json",
      enc.encode(
        JSON.stringify({
          model_type: "bert",
          vocab_size: 10,
          hidden_size: 8,
          num_hidden_layers: 1,
          num_attention_heads: 2,
          intermediate_size: 16,
        }),
      ),
    ],
    ["vocab.txt", enc.encode("[PAD]\n[UNK]\n[CLS]\n[SEP]\n[MASK]\na\nb\n")],
    ["model.safetensors", weights],
  ]);
  const hub: Hub = {
    endpoint: "",
    log: [],
    ignoreRange: false,
    corruptWeights: false,
    dropWeightsAfter: 0,
    badVocabEtag: false,
    files,
    close: () => server.shutdown(),
  };
  const server = Deno.serve({ hostname: "127.0.0.1", port: 0, onListen: () => {} }, (req) => {
    const path = new URL(req.url).pathname;
    hub.log.push({ path, range: req.headers.get("range") });
    const prefix = `/${ID}/resolve/main/`;
    if (path.startsWith(prefix)) {
      const name = path.slice(prefix.length);
      const body = files.get(name);
      if (!body) return new Response("Entry not found", { status: 404 });
      if (name.endsWith(".safetensors") || name.endsWith(".bin")) {
        // LFS: the hub answers with a redirect carrying the sha256, as huggingface.co does.
        return new Response(null, {
          status: 302,
          headers: {
            location: `/cdn/${name}`,
            "x-linked-etag": `"${sha256(body)}"`,
            etag: `"${gitSha1(body)}"`,
          },
        });
      }
      const etag = hub.badVocabEtag && name === "vocab.txt" ? "0".repeat(40) : gitSha1(body);
      return new Response(body, { headers: { etag: `"${etag}"` } });
    }
    if (path.startsWith("/cdn/")) {
      let body = files.get(path.slice(5))!;
      if (hub.corruptWeights) body = body.map((x, i) => (i === 500 ? x ^ 1 : x));
      const range = /^bytes=(\d+)-$/.exec(req.headers.get("range") ?? "");
      // The CDN's own ETag is not the checksum: the client must use X-Linked-Etag.
      const headers: Record<string, string> = { etag: `"cdn-opaque-etag"`, "accept-ranges": "bytes" };
      let status = 200, start = 0;
      if (range && !hub.ignoreRange) {
        start = Number(range[1]);
        status = 206;
        headers["content-range"] = `bytes ${start}-${body.length - 1}/${body.length}`;
      }
      const slice = body.slice(start);
      if (hub.dropWeightsAfter > 0) {
        // Promise the whole length, then fail mid-way: the connection drops.
        const cut = hub.dropWeightsAfter;
        const stream = new ReadableStream<Uint8Array>({
          start(c) {
            c.enqueue(slice.slice(0, cut));
          },
          pull(c) {
            c.error(new Error("connection dropped"));
          },
        });
        headers["content-length"] = String(slice.length);
        return new Response(stream, { status, headers });
      }
      return new Response(slice, { status, headers });
    }
    return new Response("no", { status: 404 });
  });
  hub.endpoint = `http://127.0.0.1:${server.addr.port}`;
  return hub;
}

async function withHub(fn: (hub: Hub, cache: string) => Promise<void>): Promise<void> {
  const hub = startHub();
  const [cache, cleanup] = await tempDir();
  try {
    await fn(hub, cache);
  } finally {
    await hub.close();
    await cleanup();
  }
}

const listDir = (dir: string) => [...Deno.readDirSync(dir)].map((e) => e.name).sort();

Deno.test("ids, urls, cache folders and etag kinds", () => {
  assert.equal(hubUrl("a/b", "main", "config.json", "http://h/"), "http://h/a/b/resolve/main/config.json");
  assert.equal(hubUrl("a/b", "refs/pr/1", "x", "http://h"), "http://h/a/b/resolve/refs%2Fpr%2F1/x");
  assert.equal(modelCacheDir("org/name", "/c"), "/c/org--name");
  checkModelId("bert-base-uncased");
  assert.throws(() => checkModelId("../etc"), /not a hub model id/);
  assert.throws(() => checkModelId("a/b/c"), /not a hub model id/);
  assert.equal(etagKind("a".repeat(64)), "sha256");
  assert.equal(etagKind("0".repeat(40)), "sha1");
  assert.equal(etagKind("cdn-opaque-etag"), "none");
  assert.equal(etagKind(undefined), "none");
});

Deno.test("downloads a model, verifying sha256 (LFS) and git sha1, optional file 404 tolerated", async () => {
  await withHub(async (hub, cache) => {
    const { dir, files } = await downloadModel(ID, { endpoint: hub.endpoint, cache, quiet: true });
    assert.equal(dir, join(cache, "acme--tiny-bert"));
    assert.deepEqual(listDir(dir), ["config.json", "model.safetensors", "vocab.txt"]);
    for (const name of ["config.json", "vocab.txt", "model.safetensors"]) {
      assert.deepEqual(await Deno.readFile(join(dir, name)), hub.files.get(name), name);
    }
    const by = Object.fromEntries(files.map((f) => [f.name, f]));
    assert.equal(by["model.safetensors"].verified, "sha256");
    assert.equal(by["model.safetensors"].bytes, 100_000);
    assert.equal(by["config.json"].verified, "sha1");
    assert.equal(by["tokenizer_config.json"].status, "missing");
    // A second run finds everything in place and fetches only the optional file again.
    hub.log.length = 0;
    const again = await downloadModel(ID, { endpoint: hub.endpoint, cache, quiet: true });
    assert.deepEqual(again.files.map((f) => f.status), ["present", "present", "missing", "present"]);
    assert.deepEqual(hub.log.map((r) => r.path), [`/${ID}/resolve/main/tokenizer_config.json`]);
  });
});

Deno.test("resumes a partial file with a Range request", async () => {
  await withHub(async (hub, cache) => {
    const dir = modelCacheDir(ID, cache);
    await Deno.mkdir(dir, { recursive: true });
    await Deno.writeFile(
      join(dir, "model.safetensors.part"),
      hub.files.get("model.safetensors")!.subarray(0, 40_000),
    );
    const { files } = await downloadModel(ID, { endpoint: hub.endpoint, cache, quiet: true });
    assert.deepEqual(hub.log.find((r) => r.path === "/cdn/model.safetensors")?.range, "bytes=40000-");
    assert.deepEqual(await Deno.readFile(join(dir, "model.safetensors")), hub.files.get("model.safetensors"));
    assert.equal(files.find((f) => f.name === "model.safetensors")!.verified, "sha256");
    assert.ok(!listDir(dir).some((n) => n.endsWith(".part")));
  });
});

Deno.test("a server that ignores Range (200) restarts the file from scratch", async () => {
  await withHub(async (hub, cache) => {
    hub.ignoreRange = true;
    const dir = modelCacheDir(ID, cache);
    await Deno.mkdir(dir, { recursive: true });
    // Garbage in the partial file: only a full restart gives the right checksum.
    await Deno.writeFile(join(dir, "model.safetensors.part"), new Uint8Array(30_000).fill(9));
    await downloadModel(ID, { endpoint: hub.endpoint, cache, quiet: true });
    assert.equal(hub.log.find((r) => r.path === "/cdn/model.safetensors")?.range, "bytes=30000-");
    assert.deepEqual(await Deno.readFile(join(dir, "model.safetensors")), hub.files.get("model.safetensors"));
  });
});

Deno.test("a checksum mismatch is an error and leaves no bad file", async () => {
  await withHub(async (hub, cache) => {
    hub.corruptWeights = true;
    await assert.rejects(
      () => downloadModel(ID, { endpoint: hub.endpoint, cache, quiet: true }),
      /model\.safetensors: checksum mismatch \(sha256 [0-9a-f]{64}, the hub says [0-9a-f]{64}\)/,
    );
    const dir = modelCacheDir(ID, cache);
    assert.deepEqual(listDir(dir), ["config.json", "vocab.txt"]);
  });
});

Deno.test("a dropped connection keeps the .part file; the next run resumes and finishes", async () => {
  await withHub(async (hub, cache) => {
    hub.dropWeightsAfter = 25_000;
    await assert.rejects(
      () => downloadModel(ID, { endpoint: hub.endpoint, cache, quiet: true }),
      /model\.safetensors: download interrupted after 25000 bytes.*run the same command again/,
    );
    const dir = modelCacheDir(ID, cache);
    assert.equal((await Deno.stat(join(dir, "model.safetensors.part"))).size, 25_000);
    hub.dropWeightsAfter = 0;
    await downloadModel(ID, { endpoint: hub.endpoint, cache, quiet: true });
    assert.equal(hub.log.filter((r) => r.path === "/cdn/model.safetensors").at(-1)?.range, "bytes=25000-");
    assert.deepEqual(await Deno.readFile(join(dir, "model.safetensors")), hub.files.get("model.safetensors"));
  });
});

Deno.test("a missing required file is a clear error; so are weights in none of the three formats", async () => {
  await withHub(async (hub, cache) => {
    hub.files.delete("vocab.txt");
    await assert.rejects(
      () => downloadModel(ID, { endpoint: hub.endpoint, cache, quiet: true }),
      /acme\/tiny-bert@main has no vocab\.txt \(HTTP 404/,
    );
    hub.files.set("vocab.txt", new TextEncoder().encode("[PAD]\n"));
    hub.files.delete("model.safetensors");
    await assert.rejects(
      () => downloadModel(ID, { endpoint: hub.endpoint, cache, quiet: true }),
      new RegExp(
        "acme/tiny-bert@main has no weights in a format normtune reads: tried model\\.safetensors " +
          "\\(HTTP 404\\), model\\.safetensors\\.index\\.json \\(HTTP 404\\), pytorch_model\\.bin \\(HTTP 404\\)",
      ),
    );
    await assert.rejects(
      () => downloadModel("acme/other", { endpoint: hub.endpoint, cache, quiet: true }),
      /acme\/other@main has no config\.json/,
    );
  });
});

Deno.test("a non-BERT config stops before the weights are fetched; git blob sha1 is checked", async () => {
  await withHub(async (hub, cache) => {
    hub.files.set("config.json", new TextEncoder().encode('{"model_type": "gpt2", "vocab_size": 5}'));
    await assert.rejects(
      () => downloadModel(ID, { endpoint: hub.endpoint, cache, quiet: true }),
      /config\.json: model_type is "gpt2"/,
    );
    assert.ok(!hub.log.some((r) => r.path.includes("safetensors")));
  });
  await withHub(async (hub, cache) => {
    hub.badVocabEtag = true;
    await assert.rejects(
      () => downloadModel(ID, { endpoint: hub.endpoint, cache, quiet: true }),
      /vocab\.txt: checksum mismatch \(sha1 [0-9a-f]{40}, the hub says 0{40}\)/,
    );
    assert.deepEqual(listDir(modelCacheDir(ID, cache)), ["config.json"]);
  });
  const [dir, cleanup] = await tempDir();
  try {
    const p = join(dir, "f");
    await Deno.writeTextFile(p, "hello\n");
    // `git hash-object` of "hello\n"
    assert.equal(await fileDigest(p, "sha1"), "ce013625030ba8dba906f756967f9e9ca394464a");
  } finally {
    await cleanup();
  }
});

Deno.test("the download command uses NORMTUNE_HF_ENDPOINT and --cache, and prints the folder", async () => {
  await withHub(async (hub, cache) => {
    const before = Deno.env.get("NORMTUNE_HF_ENDPOINT");
    Deno.env.set("NORMTUNE_HF_ENDPOINT", hub.endpoint);
    const logged: string[] = [];
    const [log, error] = [console.log, console.error];
    console.log = (...a: unknown[]) => void logged.push(a.join(" "));
    console.error = () => {};
    try {
      await run([ID, "--cache", cache, "--quiet"]);
      await assert.rejects(() => run([]), /usage: deno task normtune download MODEL_ID/);
    } finally {
      [console.log, console.error] = [log, error];
      if (before === undefined) Deno.env.delete("NORMTUNE_HF_ENDPOINT");
      else Deno.env.set("NORMTUNE_HF_ENDPOINT", before);
    }
    assert.deepEqual(logged, [modelCacheDir(ID, cache)]);
    assert.deepEqual(listDir(logged[0]), ["config.json", "model.safetensors", "vocab.txt"]);
  });
});

// --- Weights formats: the fixtures of tools/make_formats.py served by the loopback hub -------------------

const FORMATS = new URL("../fixtures/formats/", import.meta.url).pathname;
const WEIGHT_NAMES = [
  "model.safetensors",
  "model.safetensors.index.json",
  "model-00001-of-00002.safetensors",
  "model-00002-of-00002.safetensors",
  "pytorch_model.bin",
];

/** Replaces the hub's weights with the fixture folders' files (e.g. `["pytorch"]`). */
function serveFormats(hub: Hub, folders: string[]): void {
  for (const name of WEIGHT_NAMES) hub.files.delete(name);
  for (const folder of folders) {
    for (const e of Deno.readDirSync(join(FORMATS, folder))) {
      if (e.name !== "config.json") hub.files.set(e.name, Deno.readFileSync(join(FORMATS, folder, e.name)));
    }
  }
  hub.files.set("config.json", Deno.readFileSync(join(FORMATS, "safetensors", "config.json")));
}

const weightRequests = (hub: Hub) =>
  hub.log.map((r) => r.path.split("/").at(-1)!).filter((n) => WEIGHT_NAMES.includes(n));

/** The checkpoint of a downloaded folder equals the fixture's model.safetensors, tensor for tensor. */
async function assertLoadsLikeFixture(dir: string): Promise<void> {
  const got = await loadCheckpoint(dir, { numLabels: 2, quiet: true });
  const want = await loadCheckpoint(join(FORMATS, "safetensors"), { numLabels: 2, quiet: true });
  assert.deepEqual(got.initialized, []);
  assert.deepEqual([...got.tensors.keys()], [...want.tensors.keys()]);
  for (const [name, t] of want.tensors) assert.deepEqual(got.tensors.get(name), t, name);
}

Deno.test("download falls back to pytorch_model.bin when the repo has no safetensors, and it loads", async () => {
  await withHub(async (hub, cache) => {
    serveFormats(hub, ["pytorch"]);
    const { dir, format, files } = await downloadModel(ID, { endpoint: hub.endpoint, cache, quiet: true });
    assert.equal(format, "pytorch_model.bin");
    // Asked in order of preference; the two 404s moved on, the third was fetched through the CDN redirect.
    assert.deepEqual(
      hub.log.filter((r) => !r.path.startsWith("/cdn/")).map((r) => r.path.split("/").at(-1)),
      [
        "config.json",
        "vocab.txt",
        "tokenizer_config.json",
        "model.safetensors",
        "model.safetensors.index.json",
        "pytorch_model.bin",
      ],
    );
    const bin = files.find((f) => f.name === "pytorch_model.bin")!;
    assert.deepEqual([bin.status, bin.verified], ["downloaded", "sha256"]);
    assert.deepEqual(listDir(dir), ["config.json", "pytorch_model.bin", "vocab.txt"]);
    await assertLoadsLikeFixture(dir);
    // Again: the cached .bin is kept and no other format is asked for.
    hub.log.length = 0;
    const again = await downloadModel(ID, { endpoint: hub.endpoint, cache, quiet: true });
    assert.equal(again.format, "pytorch_model.bin");
    assert.deepEqual(weightRequests(hub), []);
  });
});

Deno.test("download takes sharded safetensors before pytorch_model.bin: index, then every shard", async () => {
  await withHub(async (hub, cache) => {
    serveFormats(hub, ["sharded", "pytorch"]);
    const { dir, format, files } = await downloadModel(ID, { endpoint: hub.endpoint, cache, quiet: true });
    assert.equal(format, "sharded safetensors");
    assert.deepEqual(files.slice(3).map((f) => [f.name, f.verified]), [
      ["model.safetensors.index.json", "sha1"],
      ["model-00001-of-00002.safetensors", "sha256"],
      ["model-00002-of-00002.safetensors", "sha256"],
    ]);
    assert.ok(!hub.log.some((r) => r.path.endsWith("pytorch_model.bin")));
    await assertLoadsLikeFixture(dir);

    // A run cut off after the first shard resumes with only the second.
    await Deno.remove(join(dir, "model-00002-of-00002.safetensors"));
    hub.log.length = 0;
    const again = await downloadModel(ID, { endpoint: hub.endpoint, cache, quiet: true });
    assert.deepEqual(again.files.slice(3).map((f) => f.status), ["present", "present", "downloaded"]);
    assert.deepEqual(hub.log.filter((r) => r.path.startsWith("/cdn/")).map((r) => r.path), [
      "/cdn/model-00002-of-00002.safetensors",
    ]);
    await assertLoadsLikeFixture(dir);
  });
});

Deno.test("download prefers model.safetensors and never asks for the other formats", async () => {
  await withHub(async (hub, cache) => {
    serveFormats(hub, ["safetensors", "sharded", "pytorch"]);
    const { dir, format } = await downloadModel(ID, { endpoint: hub.endpoint, cache, quiet: true });
    assert.equal(format, "safetensors");
    assert.ok(!hub.log.some((r) => r.path.endsWith(".json") && r.path.includes("index")));
    assert.ok(!hub.log.some((r) => r.path.endsWith(".bin") || r.path.includes("-of-")));
    await assertLoadsLikeFixture(dir);
  });
});

Deno.test("a shard index naming a missing shard or a path outside the folder is an error", async () => {
  await withHub(async (hub, cache) => {
    serveFormats(hub, ["sharded"]);
    hub.files.delete("model-00002-of-00002.safetensors");
    await assert.rejects(
      () => downloadModel(ID, { endpoint: hub.endpoint, cache, quiet: true }),
      /model\.safetensors\.index\.json lists model-00002-of-00002\.safetensors, which the hub does not have/,
    );
    // The loader says the same of the folder the failed download left.
    await assert.rejects(
      () => loadCheckpoint(modelCacheDir(ID, cache), { numLabels: 2, quiet: true }),
      /model-00002-of-00002\.safetensors: not found, but .*model\.safetensors\.index\.json lists it/,
    );
  });
  await withHub(async (hub, cache) => {
    serveFormats(hub, ["sharded"]);
    const index = { weight_map: { "bert.embeddings.word_embeddings.weight": "../../escape.safetensors" } };
    hub.files.set("model.safetensors.index.json", new TextEncoder().encode(JSON.stringify(index)));
    await assert.rejects(
      () => downloadModel(ID, { endpoint: hub.endpoint, cache, quiet: true }),
      /maps to "\.\.\/\.\.\/escape\.safetensors", not a \.safetensors file name in the same folder/,
    );
    assert.ok(!hub.log.some((r) => r.path.includes("escape")));
    assert.deepEqual(
      listDir(modelCacheDir(ID, cache)),
      ["config.json", "vocab.txt"],
      "the bad index is not kept",
    );
  });
});

Deno.test("the download command says which weights format it used", async () => {
  await withHub(async (hub, cache) => {
    serveFormats(hub, ["pytorch"]);
    const messages: string[] = [];
    const [log, error] = [console.log, console.error];
    console.log = () => {};
    console.error = (...a: unknown[]) => void messages.push(a.join(" "));
    const before = Deno.env.get("NORMTUNE_HF_ENDPOINT");
    Deno.env.set("NORMTUNE_HF_ENDPOINT", hub.endpoint);
    try {
      await run([ID, "--cache", cache, "--quiet"]);
    } finally {
      [console.log, console.error] = [log, error];
      if (before === undefined) Deno.env.delete("NORMTUNE_HF_ENDPOINT");
      else Deno.env.set("NORMTUNE_HF_ENDPOINT", before);
    }
    assert.ok(messages.includes("weights: pytorch_model.bin (pytorch_model.bin)"), messages.join("\n"));
  });
});
