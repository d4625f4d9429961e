/**
 * The experiment runner: grids of cells identified by configuration hashes, a result store of small JSON
 * records plus git-ignored artefacts, a resumable runner, the study's profiles and grids, and the
 * notebooks' loader. Notebooks should import `./load.ts` alone (it loads no TensorFlow.js), and `./frame.ts`
 * for the results as a polars DataFrame (not re-exported here, so nothing else loads the DataFrame library).
 *
 * ```ts
 * import { findGrid, openStudy, studyRunner } from "./experiments/mod.ts";
 * const study = await openStudy({ profile: "smoke" });
 * await (await studyRunner(study)).runAll(findGrid(study.grids, "main").cells);
 * ```
 */
export * from "./hash.ts";
export * from "./grid.ts";
export * from "./store.ts";
export * from "./runner.ts";
export * from "./profiles.ts";
export * from "./study.ts";
export * from "./cells.ts";
export * from "./session.ts";
export * from "./load.ts";
