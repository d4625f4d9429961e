/**
 * GLUE: the task registry, TSV loading, metrics and the downloader, in one import.
 *
 * ```ts
 * import { computeMetrics, getTask, loadSplit } from "./glue/mod.ts";
 * const task = getTask("RTE");
 * const { examples } = await loadSplit(task, task.mainSplit);
 * ```
 */
export {
  type Example,
  getTask,
  type GlueTask,
  splitFile,
  splitNames,
  TASK_NAMES,
  type TaskName,
  TASKS,
} from "./tasks.ts";
export { loadFile, type LoadOptions, type LoadResult, loadSplit } from "./tsv.ts";
export { accuracy, averageRanks, computeMetrics, f1, matthews, pearson, spearman } from "./metrics.ts";
export {
  buildMrpc,
  DEFAULT_GLUE_URL,
  type DownloadOptions,
  type DownloadResult,
  downloadTask,
  glueBaseUrl,
  MRPC_PATHS,
  ZIP_PATHS,
} from "./download.ts";
export { crc32, extractZip, listZip, type ZipEntry } from "./zip.ts";
