/**
 * Fetches the official GLUE files, as the standard `download_glue_data.py` does: one zip per task from
 * `https://dl.fbaipublicfiles.com/glue/data/`, and MRPC rebuilt from the MSR paraphrase corpus
 * (`senteval/senteval_data/msr_paraphrase_{train,test}.txt`) split into train/dev by `mrpc_dev_ids.tsv`.
 * QQP comes from `QQP-clean.zip` and QNLI from `QNLIv2.zip`, the current names of those archives.
 *
 * The server root is overridable with NORMTUNE_GLUE_URL (or `baseUrl`), which must serve the same paths
 * (`glue/data/RTE.zip`, ...): a mirror, or a local server in the tests.
 *
 * Writes are atomic per task: everything is downloaded and extracted into a temporary folder beside the
 * target (`GLUE_DIR/.tmp-RTE-xxxx`), checked to hold the task's train and dev files, and only then renamed
 * to `GLUE_DIR/RTE`. A failure removes the temporary folder, so no half-written task folder is ever left.
 *
 * ```ts
 * await downloadTask("RTE", { glueDir: "data/glue" }); // -> data/glue/RTE/{train,dev,test}.tsv
 * ```
 */
import { join } from "node:path";
import { exists, glueDir as defaultGlueDir } from "../util/paths.ts";
import { getTask, type GlueTask, type TaskName } from "./tasks.ts";
import { extractZip } from "./zip.ts";

export const DEFAULT_GLUE_URL = "https://dl.fbaipublicfiles.com";

/** Zip paths under the server root, for every task but MRPC. */
export const ZIP_PATHS: Record<Exclude<TaskName, "MRPC">, string> = {
  "CoLA": "glue/data/CoLA.zip",
  "SST-2": "glue/data/SST-2.zip",
  "QQP": "glue/data/QQP-clean.zip",
  "STS-B": "glue/data/STS-B.zip",
  "MNLI": "glue/data/MNLI.zip",
  "QNLI": "glue/data/QNLIv2.zip",
  "RTE": "glue/data/RTE.zip",
  "WNLI": "glue/data/WNLI.zip",
};

/** MRPC's sources under the server root. */
export const MRPC_PATHS = {
  train: "senteval/senteval_data/msr_paraphrase_train.txt",
  test: "senteval/senteval_data/msr_paraphrase_test.txt",
  devIds: "glue/data/mrpc_dev_ids.tsv",
};

export interface DownloadOptions {
  /** The GLUE root; default `glueDir()` (GLUE_DIR, else data/glue). */
  glueDir?: string;
  /** The server root; default NORMTUNE_GLUE_URL, else https://dl.fbaipublicfiles.com. */
  baseUrl?: string;
  /** Replace a task folder that is already there. */
  force?: boolean;
  /** Progress lines; default none. */
  log?: (message: string) => void;
}

export interface DownloadResult {
  task: TaskName;
  dir: string;
  /** `present`: the folder was already complete and was left alone. */
  status: "downloaded" | "present";
  files: string[];
}

/** The server root: NORMTUNE_GLUE_URL, else the official one. */
export function glueBaseUrl(): string {
  return Deno.env.get("NORMTUNE_GLUE_URL") ?? DEFAULT_GLUE_URL;
}

/** The train and dev files a task folder must hold. */
function requiredFiles(task: GlueTask): string[] {
  return [task.train, ...Object.values(task.dev)];
}

function missingFiles(task: GlueTask, dir: string): string[] {
  return requiredFiles(task).filter((f) => {
    try {
      return !Deno.statSync(join(dir, f)).isFile;
    } catch {
      return true;
    }
  });
}

/** Bytes between progress lines of a long download. */
const PROGRESS_STEP = 50e6;

/** GET `url` into `target`, streaming; a non-2xx status or a network failure is a clear error. */
async function fetchTo(url: string, target: string, log: (m: string) => void = () => {}): Promise<number> {
  let res: Response;
  try {
    res = await fetch(url);
  } catch (err) {
    throw new Error(
      `cannot reach ${url} (${(err as Error).message}). Without internet, copy the GLUE task folders ` +
        `by hand and set GLUE_DIR; with a mirror, set NORMTUNE_GLUE_URL.`,
    );
  }
  if (!res.ok || !res.body) {
    await res.body?.cancel();
    throw new Error(
      `GET ${url} failed: ${res.status} ${res.statusText}. Check the task name, or set NORMTUNE_GLUE_URL ` +
        `to a server holding the GLUE files.`,
    );
  }
  const out = await Deno.open(target, { write: true, create: true, truncate: true });
  let bytes = 0, nextReport = PROGRESS_STEP;
  const counter = new TransformStream<Uint8Array, Uint8Array>({
    transform(chunk, ctrl) {
      bytes += chunk.length;
      if (bytes >= nextReport) {
        log(`  ${(bytes / 1e6).toFixed(0)} MB`);
        nextReport += PROGRESS_STEP;
      }
      ctrl.enqueue(chunk);
    },
  });
  try {
    await res.body.pipeThrough(counter).pipeTo(out.writable); // closes `out`
  } catch (err) {
    throw new Error(`GET ${url}: download interrupted after ${bytes} bytes (${(err as Error).message})`);
  }
  return bytes;
}

/**
 * The folder of an extracted archive that holds the task's files: the archive root itself, or the
 * top-level folder that has them (its name varies: `QNLI/` comes from `QNLIv2.zip`).
 */
async function taskRoot(task: GlueTask, extracted: string): Promise<string> {
  if (missingFiles(task, extracted).length === 0) return extracted;
  const dirs: string[] = [];
  for await (const e of Deno.readDir(extracted)) {
    if (e.isDirectory && e.name !== "__MACOSX") dirs.push(join(extracted, e.name));
  }
  const complete = dirs.filter((d) => missingFiles(task, d).length === 0);
  if (complete.length === 1) return complete[0];
  // Name the likeliest folder in the "lacks ..." error that follows.
  return dirs.find((d) => d.endsWith(task.folder)) ?? dirs[0] ?? extracted;
}

function lines(text: string): string[] {
  return text.split(/\r?\n/);
}

/**
 * Builds MRPC's train/dev/test TSVs from the MSR files exactly as `download_glue_data.py` does: the train
 * file's header (BOM included) heads both train.tsv and dev.tsv, and a pair goes to dev when its
 * (id1, id2) is in the dev ids file.
 */
export function buildMrpc(trainText: string, testText: string, devIdsText: string): Record<string, string> {
  const devIds = new Set(lines(devIdsText).map((l) => l.trim()).filter((l) => l !== ""));
  const rows = (text: string, file: string) => {
    const all = lines(text);
    const out: string[][] = [];
    for (let i = 1; i < all.length; i++) {
      const row = all[i].trim();
      if (row === "") continue;
      const cols = row.split("\t");
      if (cols.length !== 5) {
        throw new Error(`${file}:${i + 1}: expected 5 tab-separated columns, found ${cols.length}`);
      }
      out.push(cols);
    }
    return [all[0], out] as const;
  };
  const [header, trainRows] = rows(trainText, "msr_paraphrase_train.txt");
  const [, testRows] = rows(testText, "msr_paraphrase_test.txt");
  let train = header + "\n", dev = header + "\n", devCount = 0;
  for (const [label, id1, id2, s1, s2] of trainRows) {
    const line = `${label}\t${id1}\t${id2}\t${s1}\t${s2}\n`;
    if (devIds.has(`${id1}\t${id2}`)) {
      dev += line;
      devCount++;
    } else {
      train += line;
    }
  }
  if (devCount === 0) throw new Error(`mrpc_dev_ids.tsv: no dev id pair matches msr_paraphrase_train.txt`);
  let test = "index\t#1 ID\t#2 ID\t#1 String\t#2 String\n";
  testRows.forEach(([, id1, id2, s1, s2], i) => test += `${i}\t${id1}\t${id2}\t${s1}\t${s2}\n`);
  return { "train.tsv": train, "dev.tsv": dev, "test.tsv": test };
}

/** Downloads MRPC's three sources into `work` and writes the task files into `work/MRPC`. */
async function fetchMrpc(base: string, work: string, log: (m: string) => void): Promise<string> {
  const texts: Record<string, string> = {};
  for (const [key, path] of Object.entries(MRPC_PATHS)) {
    const url = `${base}/${path}`;
    log(`MRPC: GET ${url}`);
    const file = join(work, key);
    await fetchTo(url, file);
    // ignoreBOM keeps the train header's BOM, as the Python script does.
    texts[key] = new TextDecoder("utf-8", { ignoreBOM: true }).decode(await Deno.readFile(file));
  }
  const dir = join(work, "MRPC");
  await Deno.mkdir(dir);
  for (const [name, text] of Object.entries(buildMrpc(texts.train, texts.test, texts.devIds))) {
    await Deno.writeTextFile(join(dir, name), text);
  }
  return dir;
}

/** Downloads one task into the GLUE root, atomically; an already complete folder is left alone. */
export async function downloadTask(
  name: string | GlueTask,
  opts: DownloadOptions = {},
): Promise<DownloadResult> {
  const task = typeof name === "string" ? getTask(name) : name;
  const log = opts.log ?? (() => {});
  const root = defaultGlueDir(opts.glueDir);
  const target = join(root, task.folder);
  const base = (opts.baseUrl ?? glueBaseUrl()).replace(/\/+$/, "");
  if (!opts.force && await exists(target)) {
    const missing = missingFiles(task, target);
    if (missing.length === 0) {
      log(`${task.name}: already in ${target} (pass --force to download again)`);
      return { task: task.name, dir: target, status: "present", files: requiredFiles(task) };
    }
    throw new Error(`${target} exists but lacks ${missing.join(", ")}; pass --force to replace it`);
  }
  await Deno.mkdir(root, { recursive: true });
  const work = await Deno.makeTempDir({ dir: root, prefix: `.tmp-${task.folder}-` });
  try {
    let src: string;
    if (task.name === "MRPC") {
      src = await fetchMrpc(base, work, log);
    } else {
      const url = `${base}/${ZIP_PATHS[task.name]}`;
      log(`${task.name}: GET ${url}`);
      const zip = join(work, "archive.zip");
      const bytes = await fetchTo(url, zip, log);
      log(`${task.name}: ${(bytes / 1e6).toFixed(1)} MB, extracting`);
      const extracted = join(work, "extracted");
      await extractZip(zip, extracted);
      src = await taskRoot(task, extracted);
    }
    const missing = missingFiles(task, src);
    if (missing.length > 0) {
      throw new Error(`${task.name}: the download lacks ${missing.join(", ")}; nothing was installed`);
    }
    const files: string[] = [];
    for await (const e of Deno.readDir(src)) files.push(e.name);
    // Move an old folder (--force) aside first; put it back if the new one cannot take its place.
    const old = join(work, "old");
    const hadOld = await exists(target);
    if (hadOld) await Deno.rename(target, old);
    try {
      await Deno.rename(src, target);
    } catch (err) {
      if (hadOld) await Deno.rename(old, target);
      throw err;
    }
    log(`${task.name}: ${target} (${files.sort().join(", ")})`);
    return { task: task.name, dir: target, status: "downloaded", files };
  } finally {
    await Deno.remove(work, { recursive: true }).catch(() => {});
  }
}
