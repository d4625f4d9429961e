/**
 * The findings as text: one finding as Markdown (the notebooks and RESULTS.md), the verdict table rows,
 * and the RESULTS.md body (what produced the results, the main table with the controls at each one's best
 * learning rate, the learning-rate search, the runs that diverged if any, the six verdicts and the control
 * checks, every number with the cells it came from). The rules that reach the verdicts are in
 * lib/report/findings.ts; this module only renders their results.
 *
 * ```ts
 * const md = renderResultsMarkdown(await loadResults());
 * findingMarkdown(finding1(data));
 * ```
 */
import type { GridProgress } from "../experiments/load.ts";
import { CONTROL_NAMES } from "../experiments/profiles.ts";
import { evaluateControls, evaluateFindings, type FindingResult } from "./findings.ts";
import {
  controlScores,
  divergedRows,
  gridCommand,
  MAIN_METHODS,
  mainScores,
  mainTableRows,
  METHOD_LABELS,
  modelCaveat,
  modelName,
  rateTableRows,
  recordPath,
  type StudyData,
  studyInfo,
} from "./study_views.ts";
import { renderTable, type Row } from "./table.ts";

/** A finding as Markdown (used by the summary notebook and RESULTS.md). */
export function findingMarkdown(f: FindingResult, heading = "###"): string {
  const lines = [
    `${heading} ${
      typeof f.id === "number" ? "Finding" : "Control check"
    } ${f.id}: ${f.title} (**${f.verdict}**)`,
    "",
    `- Claim: ${f.claim}`,
    `- Rule: ${f.rule}`,
    `- Result: ${f.summary}`,
  ];
  if (f.checks.length) {
    lines.push("", "Checks:", "");
    for (const c of f.checks) {
      lines.push(
        `- ${c.pass ? "holds" : "fails"}${
          c.primary ? "" : " (secondary)"
        }: ${c.task}: ${c.what}: ${c.detail} ` +
          `[${c.sources.join(", ")}]`,
      );
    }
  }
  if (f.numbers.length) lines.push("", renderTable(f.numbers).text);
  for (const n of f.notes) lines.push("", `Note: ${n}`);
  lines.push("", `> **Model caveat.** ${f.caveat}`);
  return lines.join("\n");
}

/** One table row per finding or control check: what, verdict, and the summary without its verdict. */
export function verdictRows(results: readonly FindingResult[]): Row[] {
  return results.map((f) => ({
    finding: `${f.id}. ${f.title}`,
    verdict: f.verdict,
    result: f.summary.replace(/^[^:]*: /, ""),
  }));
}

/**
 * The RESULTS.md body: what produced the results, the main table, the six verdicts with the numbers
 * behind them. Every number names its cells; a cell id `ID` is the file `<results dir>/ID.json`.
 */
export function renderResultsMarkdown(data: StudyData, progress?: readonly GridProgress[]): string {
  const info = studyInfo(data);
  const findings = evaluateFindings(data);
  const out: string[] = [
    `## Results: profile \`${info.profile}\``,
    "",
    `Computed from the records in \`${info.dir}\`; a cell id \`ID\` below is the file ` +
    `\`${recordPath(data, "ID")}\`.`,
    "",
    ...(progress ? [progressText(progress, data.profile), ""] : []),
    `- Model: ${info.models.join(", ") || "not recorded"} (sha256 ${info.modelHashes.join(", ") || "?"}), ` +
    `backend ${info.backends.join(", ") || "?"}`,
    `- Tasks: ${info.tasks.join(", ") || "none"}; seeds: ${info.seeds.join(", ") || "none"}; epochs ` +
    `${info.epochs.join(", ") || "?"}; train examples ${
      info.trainExamples.join(", ") || "?"
    }; dev examples ` +
    `${info.devExamples.join(", ") || "?"}; Fisher N ${info.fisherExamples.join(", ") || "?"}`,
    "",
    `> **Model caveat.** ${modelCaveat(modelName(data), info.profile)}`,
    "",
    "### Main table",
    "",
  ];
  const main = mainScores(data);
  if (main.length === 0) {
    out.push(`Not enough data: run \`${gridCommand("main", data.profile)}\`.`);
  } else {
    // The controls, where the profile ran them, below the main methods of each task.
    const scores = [...main, ...controlScores(data)];
    const rows = mainTableRows(scores, [...MAIN_METHODS, ...CONTROL_NAMES]).map((row) => {
      const g = scores.find((s) => s.task === row.task && METHOD_LABELS[s.method] === row.method);
      return { ...row, sources: g ? g.ids.join(" ") : "" };
    });
    out.push(
      renderTable(rows).text,
      "",
      "Scores are the main dev metric of each task (best epoch) x100, mean ± sample std over seeds, at the " +
        "learning rate with the best mean over seeds for that task and method (lib/experiments/rates.ts; " +
        '"at the edge": the smallest or largest rate tried, so a wider search might do better). Trained ' +
        "encoder params count every `bert.*` element trained; the task head is trained in every method and " +
        "counted apart.",
      "",
      "### Learning-rate search",
      "",
      "Every rate tried per task and method, so a reader sees how much the choice mattered:",
      "",
      renderTable(rateTableRows(data)).text,
    );
  }
  const diverged = divergedRows(data);
  if (diverged.length) {
    out.push(
      "",
      "### Runs that diverged",
      "",
      `${diverged.length} fine-tuning run(s) diverged (an update was not finite) and have no score. Each is ` +
        "a finished cell, shown as `diverged` in the tables above; a rate with a diverged run ranks below " +
        "every rate with a finite mean (lib/experiments/rates.ts), and a verdict ranks a diverged group " +
        "below every finite one (lib/report/findings.ts).",
      "",
      renderTable(diverged).text,
    );
  }
  out.push("", "### Verdicts", "", renderTable(verdictRows(findings)).text);
  for (const f of findings) out.push("", findingMarkdown(f, "###"));
  const controls = evaluateControls(data);
  out.push(
    "",
    "### Control checks",
    "",
    "Whether the main methods beat the controls (head only, pooler + head, random initialisation); rules " +
      "in lib/report/findings.ts `CONTROL_CHECKS`.",
    "",
    renderTable(verdictRows(controls)).text,
  );
  for (const c of controls) out.push("", findingMarkdown(c, "###"));
  return out.join("\n") + "\n";
}

/**
 * One line on how complete the study is: every verdict below reads only the records that exist, so a
 * partly computed study must say so before its numbers.
 */
export function progressText(progress: readonly GridProgress[], profile: string): string {
  const parts = progress.map((g) =>
    g.declared === undefined ? `${g.grid} not started` : `${g.grid} ${g.finished} of ${g.declared}`
  );
  const complete = progress.every((g) => g.declared !== undefined && g.finished === g.declared);
  return complete
    ? `- Progress: every cell of the study's grids has a record (${parts.join(", ")}).`
    : `- **Progress: the study is not finished** (cells with a record per grid: ${parts.join("; ")}); the ` +
      `tables and verdicts below read only the finished cells. \`deno task reproduce --profile ${profile}\` ` +
      "resumes it.";
}
