/**
 * Ends a command with `code` by letting the event loop finish, not with `Deno.exit`: the data-parallel
 * workers (lib/parallel/engine.ts) are terminated when training ends, and exiting while their threads were
 * still tearing down crashed about 1 in 20 two-worker `finetune` runs at exit with a glibc heap error
 * ("corrupted size vs. prev_size in fastbins"; none in 120 runs ending this way). Should anything keep the
 * loop alive, the process exits anyway after `graceMs`.
 *
 * ```ts
 * if (import.meta.main) exitWhenDone(await main(Deno.args));
 * ```
 */
export function exitWhenDone(code: number, graceMs = 5000): void {
  Deno.exitCode = code;
  Deno.unrefTimer(setTimeout(() => Deno.exit(code), graceMs));
}
