/** Test helper: a study context without files (identities made up, sizes as given), for grid tests. */
import { PROFILES } from "../../lib/experiments/profiles.ts";
import type { StudyContext } from "../../lib/experiments/study.ts";

/** A context without files: identities made up, every task 1,000 train and 200 dev examples. */
export function fakeContext(profile = PROFILES.cpu, over: Partial<StudyContext> = {}): StudyContext {
  const file = (tag: string, examples: number) => ({
    sha256: tag.padEnd(64, "0"),
    bytes: 100,
    examples,
    tokens: 32,
  });
  const data: StudyContext["data"] = {};
  for (const t of profile.tasks) data[t] = { train: file(`${t}tr`, 1000), dev: file(`${t}dv`, 200) };
  return {
    profile,
    modelDir: "/models/x",
    model: { sha256: "ab".repeat(32), bytes: 1 },
    backend: "wasm",
    glueDir: "/glue",
    data,
    ...over,
  };
}
