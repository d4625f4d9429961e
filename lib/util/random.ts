/**
 * A small seeded PRNG, so that initialisation, shuffling and dropout are reproducible from a seed on any
 * backend (Math.random cannot be seeded).
 *
 * ```ts
 * const rng = mulberry32(42);
 * rng();         // uniform in [0, 1)
 * normal(rng);   // standard normal
 * ```
 */

/** mulberry32: a 32-bit state generator, uniform in [0, 1). Good enough for init and shuffles. */
export function mulberry32(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** One standard normal sample by Box-Muller (the second value is dropped to keep the state simple). */
export function normal(rng: () => number): number {
  // 1 - u keeps the argument of log in (0, 1].
  const u = 1 - rng();
  const v = rng();
  return Math.sqrt(-2 * Math.log(u)) * Math.cos(2 * Math.PI * v);
}
