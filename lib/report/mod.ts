/**
 * What notebooks import: figure builders, tables and `show*` helpers. Notebooks under `notebooks/` import it
 * relatively (`import { showFigure } from "../lib/report/mod.ts"`): the Deno kernel resolves relative
 * imports against its cwd, which Jupyter (JupyterLab and `jupyter nbconvert --execute`) sets to the
 * notebook's folder. The HTML export (`export.ts`) is not re-exported: notebooks never need it.
 */
export * from "./plot.ts";
export * from "./table.ts";
export * from "./display.ts";
