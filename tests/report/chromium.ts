/**
 * Test helper: load a page in headless Chromium and return its DOM after scripts ran (and optionally a
 * screenshot). Chromium is required: a missing binary fails the test with what to install.
 */
export interface ChromiumOptions {
  /** Write a PNG screenshot here. */
  screenshot?: string;
  /** `WIDTH,HEIGHT` (default 1200,1400). */
  windowSize?: string;
  /** Virtual time for scripts, timers and loads to settle (default 5000 ms). */
  budgetMs?: number;
}

export async function chromiumDom(url: string, opts: ChromiumOptions = {}): Promise<string> {
  const bin = Deno.env.get("CHROMIUM") ?? "chromium";
  // A profile of its own: two Chromiums sharing the default profile can wait on each other forever.
  const profile = await Deno.makeTempDir({ prefix: "normtune-chromium-" });
  const args = [
    `--user-data-dir=${profile}`,
    "--headless",
    "--disable-gpu",
    "--no-sandbox",
    "--no-first-run",
    "--disable-dev-shm-usage",
    `--virtual-time-budget=${opts.budgetMs ?? 5000}`,
    `--window-size=${opts.windowSize ?? "1200,1400"}`,
    ...(opts.screenshot ? [`--screenshot=${opts.screenshot}`] : []),
    "--dump-dom",
    url,
  ];
  let out;
  try {
    // A hung browser fails the test after two minutes instead of stalling CI.
    const signal = AbortSignal.timeout(120_000);
    out = await new Deno.Command(bin, { args, stdout: "piped", stderr: "piped", signal }).output();
  } catch (err) {
    if (err instanceof Deno.errors.NotFound) {
      throw new Error(`${bin} not found: install Chromium (Debian: apt install chromium) or set CHROMIUM`);
    }
    throw err;
  } finally {
    await Deno.remove(profile, { recursive: true }).catch(() => {});
  }
  const dom = new TextDecoder().decode(out.stdout);
  if (!out.success || !dom.includes("<html")) {
    throw new Error(`${bin} failed on ${url} (exit ${out.code}):\n${new TextDecoder().decode(out.stderr)}`);
  }
  return dom;
}

/** Elements whose class list includes `cls` (counted in the dumped DOM). */
export function countClass(dom: string, cls: string): number {
  return [...dom.matchAll(/class="([^"]*)"/g)].filter((m) => m[1].split(/\s+/).includes(cls)).length;
}
