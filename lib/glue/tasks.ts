/**
 * The nine GLUE tasks: where their files are, which columns hold the texts and the label, the label set in
 * the order the standard GLUE processors (Hugging Face `transformers` glue processors) use, the official
 * metrics and the one score used to rank runs.
 *
 * Main scores (what `computeMetrics(...).main` returns and what runs are ranked by):
 * - CoLA: Matthews correlation (`mcc`).
 * - STS-B: Pearson correlation (`pearson`), not the mean with Spearman: the single official number most
 *   papers quote first.
 * - MRPC, QQP: F1 of class 1 (`f1`), not the mean with accuracy.
 * - all others: accuracy. MNLI has two dev splits scored separately; its main split is `dev_matched`
 *   (`mainSplit`), and `dev_mismatched` is reported beside it.
 *
 * ```ts
 * const task = getTask("sst2"); // TASKS["SST-2"]
 * task.dev; // { dev: "dev.tsv" }
 * ```
 */

export type TaskName = "CoLA" | "SST-2" | "MRPC" | "STS-B" | "QQP" | "MNLI" | "QNLI" | "RTE" | "WNLI";

export interface GlueTask {
  name: TaskName;
  /** The folder under the GLUE root. */
  folder: string;
  /** The training file name inside the folder. */
  train: string;
  /** Dev split name -> file name. */
  dev: Record<string, string>;
  /** The dev split whose main score ranks runs (`dev_matched` for MNLI, else `dev`). */
  mainSplit: string;
  /** Whether the first line names the columns (CoLA has no header). */
  header: boolean;
  /** The exact number of tab-separated columns of a headerless file (with a header, the header decides). */
  columns?: number;
  /** A header name, or a 0-based column index for headerless files. */
  textA: string | number;
  textB?: string | number;
  label: string | number;
  /** Label strings in class-index order; null for regression (STS-B). */
  labels: string[] | null;
  /** Classes, or 1 for regression. */
  numLabels: number;
  /** The official metrics, names as `computeMetrics` returns them. */
  metrics: string[];
  /** The metric that ranks runs; one of `metrics`. */
  mainMetric: string;
}

export const TASK_NAMES: readonly TaskName[] = [
  "CoLA",
  "SST-2",
  "MRPC",
  "STS-B",
  "QQP",
  "MNLI",
  "QNLI",
  "RTE",
  "WNLI",
];

const BINARY = ["0", "1"];
const ENTAILMENT = ["entailment", "not_entailment"];

export const TASKS: Record<TaskName, GlueTask> = {
  "CoLA": {
    name: "CoLA",
    folder: "CoLA",
    train: "train.tsv",
    dev: { dev: "dev.tsv" },
    mainSplit: "dev",
    // source, label, original label (empty unless starred), sentence
    header: false,
    columns: 4,
    textA: 3,
    label: 1,
    labels: BINARY,
    numLabels: 2,
    metrics: ["mcc"],
    mainMetric: "mcc",
  },
  "SST-2": {
    name: "SST-2",
    folder: "SST-2",
    train: "train.tsv",
    dev: { dev: "dev.tsv" },
    mainSplit: "dev",
    header: true,
    textA: "sentence",
    label: "label",
    labels: BINARY,
    numLabels: 2,
    metrics: ["accuracy"],
    mainMetric: "accuracy",
  },
  "MRPC": {
    name: "MRPC",
    folder: "MRPC",
    train: "train.tsv",
    dev: { dev: "dev.tsv" },
    mainSplit: "dev",
    header: true,
    textA: "#1 String",
    textB: "#2 String",
    label: "Quality",
    labels: BINARY,
    numLabels: 2,
    metrics: ["f1", "accuracy"],
    mainMetric: "f1",
  },
  "STS-B": {
    name: "STS-B",
    folder: "STS-B",
    train: "train.tsv",
    dev: { dev: "dev.tsv" },
    mainSplit: "dev",
    header: true,
    textA: "sentence1",
    textB: "sentence2",
    label: "score",
    labels: null,
    numLabels: 1,
    metrics: ["pearson", "spearman"],
    mainMetric: "pearson",
  },
  "QQP": {
    name: "QQP",
    folder: "QQP",
    train: "train.tsv",
    dev: { dev: "dev.tsv" },
    mainSplit: "dev",
    header: true,
    textA: "question1",
    textB: "question2",
    label: "is_duplicate",
    labels: BINARY,
    numLabels: 2,
    metrics: ["f1", "accuracy"],
    mainMetric: "f1",
  },
  "MNLI": {
    name: "MNLI",
    folder: "MNLI",
    train: "train.tsv",
    dev: { dev_matched: "dev_matched.tsv", dev_mismatched: "dev_mismatched.tsv" },
    mainSplit: "dev_matched",
    header: true,
    textA: "sentence1",
    textB: "sentence2",
    label: "gold_label",
    labels: ["contradiction", "entailment", "neutral"],
    numLabels: 3,
    metrics: ["accuracy"],
    mainMetric: "accuracy",
  },
  "QNLI": {
    name: "QNLI",
    folder: "QNLI",
    train: "train.tsv",
    dev: { dev: "dev.tsv" },
    mainSplit: "dev",
    header: true,
    textA: "question",
    textB: "sentence",
    label: "label",
    labels: ENTAILMENT,
    numLabels: 2,
    metrics: ["accuracy"],
    mainMetric: "accuracy",
  },
  "RTE": {
    name: "RTE",
    folder: "RTE",
    train: "train.tsv",
    dev: { dev: "dev.tsv" },
    mainSplit: "dev",
    header: true,
    textA: "sentence1",
    textB: "sentence2",
    label: "label",
    labels: ENTAILMENT,
    numLabels: 2,
    metrics: ["accuracy"],
    mainMetric: "accuracy",
  },
  "WNLI": {
    name: "WNLI",
    folder: "WNLI",
    train: "train.tsv",
    dev: { dev: "dev.tsv" },
    mainSplit: "dev",
    header: true,
    textA: "sentence1",
    textB: "sentence2",
    label: "label",
    labels: BINARY,
    numLabels: 2,
    metrics: ["accuracy"],
    mainMetric: "accuracy",
  },
};

/** One example: texts, the class index (or the score for STS-B), and its 1-based line in the file. */
export interface Example {
  textA: string;
  textB?: string;
  label: number;
  line: number;
}

/** Lower-case without `-`, `_`, spaces or dots, so "sst2", "SST-2" and "sst_2" all match. */
function squash(name: string): string {
  return name.toLowerCase().replace(/[-_ .]/g, "");
}

/** Finds a task by name, ignoring case and separators ("sst2", "sst-2", "SST-2", "stsb"). */
export function getTask(name: string): GlueTask {
  const key = squash(name);
  for (const task of TASK_NAMES) {
    if (squash(task) === key) return TASKS[task];
  }
  throw new Error(`unknown GLUE task "${name}"; use one of ${TASK_NAMES.join(", ")}`);
}

/** The split names of a task: `train` and its dev splits. */
export function splitNames(task: GlueTask): string[] {
  return ["train", ...Object.keys(task.dev)];
}

/** The file name of a split, or an error listing the task's splits. */
export function splitFile(task: GlueTask, split: string): string {
  if (split === "train") return task.train;
  const file = task.dev[split];
  if (file === undefined) {
    throw new Error(`${task.name} has no split "${split}"; use one of ${splitNames(task).join(", ")}`);
  }
  return file;
}
