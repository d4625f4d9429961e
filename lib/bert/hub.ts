/**
 * Downloads a BERT model from the Hugging Face hub (for users with internet) into the cache folder
 * `cacheDir()/org--name/`, where `--model org/name` finds it (lib/util/paths.ts).
 *
 * Weights are fetched in the first format the repo has, in the order the loader prefers them
 * (lib/bert/weights.ts): `model.safetensors`, else `model.safetensors.index.json` and every shard it
 * names, else `pytorch_model.bin`. A 404 moves on to the next format; any other failure stops.
 *
 * Files come from `${endpoint}/${id}/resolve/${revision}/${file}`. Each download goes to `file.part`
 * first; an interrupted one resumes with an HTTP Range request (a server that ignores Range and answers
 * 200 starts it over). The finished file is checked against the hub's ETag (sha256 of LFS files, sent as
 * `X-Linked-Etag` on the redirect to the CDN; git blob sha1 of small files) and only then renamed into
 * place, so the cache never holds a partial or corrupt file under its final name.
 */
import { createHash } from "node:crypto";
import { join } from "node:path";
import { readConfig } from "./config.ts";
import { parseShardIndex } from "./sharded.ts";
import { WEIGHTS_FILES, type WeightsFormat } from "./weights.ts";
import { cacheDir, exists } from "../util/paths.ts";
import { progress } from "../util/progress.ts";

export const DEFAULT_ENDPOINT = "https://huggingface.co";

/** The files of a model folder besides its weights (which come in one of `WEIGHTS_FILES`' formats). */
export const MODEL_FILES: readonly { name: string; required: boolean }[] = [
  { name: "config.json", required: true },
  { name: "vocab.txt", required: true },
  { name: "tokenizer_config.json", required: false },
];

export function hubEndpoint(): string {
  return (Deno.env.get("NORMTUNE_HF_ENDPOINT") ?? DEFAULT_ENDPOINT).replace(/\/+$/, "");
}

/** Checks a hub id (`name` or `org/name`) so it cannot escape the cache folder. */
export function checkModelId(id: string): void {
  if (
    !/^[A-Za-z0-9_.-]+(\/[A-Za-z0-9_.-]+)?$/.test(id) || id.split("/").some((p) => p === "." || p === "..")
  ) {
    throw new Error(`"${id}" is not a hub model id (expected ORG/NAME, e.g. google-bert/bert-base-uncased)`);
  }
}

export function hubUrl(id: string, revision: string, file: string, endpoint = hubEndpoint()): string {
  return `${endpoint.replace(/\/+$/, "")}/${id}/resolve/${encodeURIComponent(revision)}/${file}`;
}

/** `cache/org--name`, the folder `modelDir()` looks for. */
export function modelCacheDir(id: string, cache = cacheDir()): string {
  return join(cache, id.replaceAll("/", "--"));
}

export type Verified = "sha256" | "sha1" | "none";

export interface FileResult {
  name: string;
  status: "downloaded" | "present" | "missing";
  bytes: number;
  verified: Verified;
}

export interface DownloadOptions {
  revision?: string;
  /** The cache root (default `cacheDir()`). */
  cache?: string;
  /** The hub (default NORMTUNE_HF_ENDPOINT or https://huggingface.co). */
  endpoint?: string;
  /** Download again even when the file is already in the cache. */
  force?: boolean;
  /** No progress output. */
  quiet?: boolean;
}

/** Thrown for a 404 (or 401, which the hub answers for repos that do not exist or are gated). */
class NotFound extends Error {}

const MAX_REDIRECTS = 10;

/** `"abc"`, `W/"abc"` -> `abc`, lower case. */
function cleanEtag(etag: string | null): string | undefined {
  if (!etag) return undefined;
  return etag.trim().replace(/^W\//, "").replace(/^"|"$/g, "").toLowerCase();
}

/**
 * GET with redirects followed by hand: the hub's own response carries the checksum (`X-Linked-Etag`
 * for LFS files) that the CDN's final response lacks, and the token must not be sent to the CDN.
 */
async function fetchFollowing(
  url: string,
  headers: Record<string, string>,
): Promise<{ res: Response; etag?: string; finalUrl: string }> {
  let etag: string | undefined;
  const origin = new URL(url).origin;
  const token = Deno.env.get("HF_TOKEN");
  for (let i = 0; i <= MAX_REDIRECTS; i++) {
    const h = { ...headers };
    if (token && new URL(url).origin === origin) h.Authorization = `Bearer ${token}`;
    let res: Response;
    try {
      res = await fetch(url, { headers: h, redirect: "manual" });
    } catch (err) {
      throw new Error(
        `${url}: request failed (${(err as Error).message}); check the network or the endpoint`,
      );
    }
    etag ??= cleanEtag(res.headers.get("x-linked-etag"));
    if (res.status >= 300 && res.status < 400 && res.headers.has("location")) {
      etag ??= cleanEtag(res.headers.get("etag"));
      await res.body?.cancel();
      url = new URL(res.headers.get("location")!, url).href;
      continue;
    }
    etag ??= cleanEtag(res.headers.get("etag"));
    return { res, etag, finalUrl: url };
  }
  throw new Error(`${url}: more than ${MAX_REDIRECTS} redirects`);
}

/** Size in bytes of the file at `path`, 0 when there is none (a download not yet started). */
async function fileSize(path: string): Promise<number> {
  try {
    return (await Deno.stat(path)).size;
  } catch (err) {
    if (err instanceof Deno.errors.NotFound) return 0;
    throw err;
  }
}

/** sha256 of the file (an LFS oid), or git's blob sha1 (`sha1("blob <size>\0" + content)`). */
export async function fileDigest(path: string, kind: "sha256" | "sha1"): Promise<string> {
  const hash = createHash(kind);
  if (kind === "sha1") hash.update(`blob ${await fileSize(path)}\0`);
  const file = await Deno.open(path);
  for await (const chunk of file.readable) hash.update(chunk);
  return hash.digest("hex");
}

/** Which checksum an ETag is: a 64-hex sha256, a 40-hex git sha1, or neither (not checked). */
export function etagKind(etag: string | undefined): Verified {
  if (etag && /^[0-9a-f]{64}$/.test(etag)) return "sha256";
  if (etag && /^[0-9a-f]{40}$/.test(etag)) return "sha1";
  return "none";
}

/**
 * Downloads `url` to `dest` through `dest.part` (resuming it), verifies the checksum and renames it into
 * place. A 404/401 throws NotFound. A connection that drops leaves `.part` for the next run to resume.
 */
async function downloadFile(url: string, dest: string, label: string, quiet: boolean): Promise<FileResult> {
  const part = `${dest}.part`;
  let have = await fileSize(part);
  let { res, etag } = await fetchFollowing(url, have > 0 ? { Range: `bytes=${have}-` } : {});
  if (res.status === 416 && have > 0) {
    // The partial file is already complete or longer than the file now is: start over.
    await res.body?.cancel();
    await Deno.remove(part);
    have = 0;
    ({ res, etag } = await fetchFollowing(url, {}));
  }
  if (res.status === 404 || res.status === 401) {
    await res.body?.cancel();
    throw new NotFound(`HTTP ${res.status}`);
  }
  if (res.status !== 200 && res.status !== 206) {
    await res.body?.cancel();
    throw new Error(`${url}: HTTP ${res.status} ${res.statusText}`);
  }
  let append = false;
  if (res.status === 206) {
    const start = Number(/^bytes (\d+)-/.exec(res.headers.get("content-range") ?? "")?.[1]);
    if (start !== have) {
      await res.body?.cancel();
      await Deno.remove(part).catch(() => {});
      throw new Error(
        `${url}: server resumed at byte ${res.headers.get("content-range")} but ${have} were on disk; ` +
          `removed ${part}, run again`,
      );
    }
    append = true;
  } else {
    have = 0; // 200: the server ignored Range (or there was nothing to resume); the body is the whole file
  }
  const length = Number(res.headers.get("content-length") ?? NaN);
  const total = Number.isFinite(length) ? have + length : 0;
  const bar = quiet ? undefined : progress(label, total, { unit: "B", initial: have });
  const file = await Deno.open(part, { write: true, create: true, append, truncate: !append });
  let got = have;
  try {
    for await (const chunk of res.body!) {
      let off = 0;
      while (off < chunk.length) off += await file.write(chunk.subarray(off));
      got += chunk.length;
      bar?.update(got);
    }
  } catch (err) {
    bar?.done("interrupted");
    throw new Error(
      `${url}: download interrupted after ${got} bytes (${(err as Error).message}); ` +
        `run the same command again to resume from ${part}`,
    );
  } finally {
    file.close();
  }
  if (total > 0 && got !== total) {
    bar?.done("incomplete");
    throw new Error(
      `${url}: got ${got} of ${total} bytes; run the same command again to resume from ${part}`,
    );
  }
  bar?.done();
  const kind = etagKind(etag);
  if (kind !== "none") {
    const actual = await fileDigest(part, kind);
    if (actual !== etag) {
      await Deno.remove(part).catch(() => {});
      throw new Error(
        `${url}: checksum mismatch (${kind} ${actual}, the hub says ${etag}); removed the download, ` +
          `run again`,
      );
    }
  }
  await Deno.rename(part, dest);
  return { name: label, status: "downloaded", bytes: got, verified: kind };
}

/** Fetches `name` into `dir` unless it is there already (and not `force`); 404/401 throw NotFound. */
async function fetchOne(name: string, dir: string, ctx: FetchContext): Promise<FileResult> {
  const dest = join(dir, name);
  if (!ctx.force && await exists(dest)) {
    return { name, status: "present", bytes: await fileSize(dest), verified: "none" };
  }
  return await downloadFile(hubUrl(ctx.id, ctx.revision, name, ctx.endpoint), dest, name, ctx.quiet);
}

interface FetchContext {
  id: string;
  revision: string;
  endpoint: string;
  force: boolean;
  quiet: boolean;
}

/**
 * The weights, in the first format the repo has. A sharded index is read once fetched, and each shard it
 * names is fetched (or kept, when already here) after it: a run interrupted between shards resumes.
 */
async function fetchWeights(
  dir: string,
  ctx: FetchContext,
): Promise<{ format: WeightsFormat; files: FileResult[] }> {
  // Weights already in the cache (in any format) are kept unless forced, as the other files are.
  let formats = WEIGHTS_FILES;
  if (!ctx.force) {
    for (const w of WEIGHTS_FILES) {
      if (await exists(join(dir, w.file))) {
        formats = [w];
        break;
      }
    }
  }
  const tried: string[] = [];
  for (const { format, file } of formats) {
    let first: FileResult;
    try {
      first = await fetchOne(file, dir, ctx);
    } catch (err) {
      if (!(err instanceof NotFound)) throw err;
      tried.push(`${file} (${err.message})`);
      continue;
    }
    const files = [first];
    if (format === "sharded safetensors") {
      const indexPath = join(dir, file);
      let index;
      try {
        index = parseShardIndex(await Deno.readTextFile(indexPath), indexPath);
      } catch (err) {
        // A bad index just fetched is not kept: the next run would take it for a download in progress.
        if (first.status === "downloaded") await Deno.remove(indexPath).catch(() => {});
        throw err;
      }
      for (const shard of index.shards) {
        try {
          files.push(await fetchOne(shard, dir, ctx));
        } catch (err) {
          if (!(err instanceof NotFound)) throw err;
          throw new Error(
            `${ctx.id}@${ctx.revision}: ${file} lists ${shard}, which the hub does not have (${err.message})`,
          );
        }
      }
    }
    return { format, files };
  }
  throw new Error(
    `${ctx.id}@${ctx.revision} has no weights in a format normtune reads: tried ${tried.join(", ")}. ` +
      `Check the model id and revision (--revision); for a gated or private model set HF_TOKEN.`,
  );
}

/**
 * Downloads a model's config, vocabulary, tokenizer config (optional) and weights (safetensors, else
 * sharded safetensors, else pytorch_model.bin) into `cache/org--name`. Files already there are kept
 * unless `force`. Returns the folder, the weights' format and what happened to each file.
 */
export async function downloadModel(
  id: string,
  opts: DownloadOptions = {},
): Promise<{ dir: string; format: WeightsFormat; files: FileResult[] }> {
  checkModelId(id);
  const ctx: FetchContext = {
    id,
    revision: opts.revision ?? "main",
    endpoint: opts.endpoint ?? hubEndpoint(),
    force: opts.force ?? false,
    quiet: opts.quiet ?? false,
  };
  const dir = modelCacheDir(id, opts.cache);
  await Deno.mkdir(dir, { recursive: true });
  const files: FileResult[] = [];
  for (const { name, required } of MODEL_FILES) {
    try {
      files.push(await fetchOne(name, dir, ctx));
    } catch (err) {
      if (!(err instanceof NotFound)) throw err;
      if (!required) {
        files.push({ name, status: "missing", bytes: 0, verified: "none" });
        continue;
      }
      throw new Error(
        `${id}@${ctx.revision} has no ${name} (${err.message} from ` +
          `${hubUrl(id, ctx.revision, name, ctx.endpoint)}). ` +
          `Check the model id and revision; for a gated or private model set HF_TOKEN.`,
      );
    }
    // Check the config before fetching hundreds of MB of weights for a model we cannot run.
    if (name === "config.json") await readConfig(join(dir, name));
  }
  const weights = await fetchWeights(dir, ctx);
  return { dir, format: weights.format, files: [...files, ...weights.files] };
}
