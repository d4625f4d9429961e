/**
 * The results as a polars DataFrame: one row per fine-tuning cell (`finetuneRows` in load.ts: task,
 * method, mode, init, k, lr, seed, metric, score, ...), for filtering, grouping and pivoting in a notebook
 * cell. A run that diverged has score NaN (not null, so a polars mean over it is NaN, as in
 * lib/experiments/rates.ts) and the update it diverged at in `divergedAt` (null for the others). Only
 * notebooks and their users import this module; the views and the verdict rules read the plain rows, so
 * they never depend on the DataFrame library.
 *
 * Why polars (`nodejs-polars`, pinned): it installs with `deno install` and runs under Deno (a native
 * addon per platform, all on npm). danfojs does not install (a dependency outside npm and a native
 * tfjs-node 3); arquero 8.0.3 fails `deno install` too (README).
 *
 * The import is the bare `nodejs-polars` of the project's deno.json: a Deno kernel finds that file from
 * the notebook's folder upwards, so notebooks inside the project (notebooks/) can use this module; one
 * in a folder outside it gets `Import "nodejs-polars" not a dependency`.
 *
 * ```ts
 * import pl from "nodejs-polars";
 * const df = resultsFrame(await loadResults());
 * df.filter(pl.col("grid").eq(pl.lit("main")))
 *   .groupBy("task", "method")
 *   .agg(pl.col("score").mean().alias("mean"), pl.col("score").std().alias("std"))
 *   .sort(["task", "method"]);                            // groups come in no fixed order
 * df.pivot("score", { index: ["task", "lr", "seed"], on: "method" }); // one row per rate tried
 * await showFrame(df, { caption: "Fine-tuning cells" }); // lib/report/display.ts
 * ```
 */
import pl from "nodejs-polars";
import { FINETUNE_COLUMNS, type FinetuneRow, finetuneRows, type Results } from "./load.ts";

export { pl };

/** Column types, so that a column of nulls (no masked runs) still has its type. */
const TYPES: Record<keyof FinetuneRow, "str" | "f64" | "i64"> = {
  id: "str",
  grid: "str",
  task: "str",
  method: "str",
  mode: "str",
  init: "str",
  k: "f64",
  maskSeed: "i64",
  lr: "f64",
  epochs: "i64",
  seed: "i64",
  metric: "str",
  score: "f64",
  finalScore: "f64",
  divergedAt: "i64",
  bestEpoch: "i64",
  steps: "i64",
  trainSeconds: "f64",
  encoderTrainable: "i64",
  encoderShare: "f64",
};

const DTYPES = { str: pl.Utf8, f64: pl.Float64, i64: pl.Int64 } as const;

/** Rows as a DataFrame with `FINETUNE_COLUMNS` in order and fixed types; NaN integers become null. */
export function rowsFrame(rows: readonly FinetuneRow[]): pl.DataFrame {
  return pl.DataFrame(FINETUNE_COLUMNS.map((c) => {
    const values = rows.map((r) => {
      const v = r[c];
      return typeof v === "number" && TYPES[c] === "i64" && !Number.isFinite(v) ? null : v;
    });
    return pl.Series(c, values, DTYPES[TYPES[c]]);
  }));
}

/** The fine-tuning cells of loaded results as a DataFrame (one row per cell). */
export function resultsFrame(
  data: Pick<Results, "finetune"> & Partial<Pick<Results, "grids">>,
): pl.DataFrame {
  return rowsFrame(finetuneRows(data));
}
