/**
 * The paper's analyses as library functions: the component taxonomy, parameter change between
 * checkpoints, empirical Fisher information, and Fisher-based masks. Notebooks and the experiment runner
 * import from here.
 */
export * from "./components.ts";
export * from "./change.ts";
export * from "./fisher.ts";
export * from "./masks.ts";
