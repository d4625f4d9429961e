// AssemblyScript source of lib/backend/adamw_wasm.ts (built by tools/build_wasm.ts with plain SIMD only,
// no relaxed SIMD; excluded from deno's fmt, lint and check in deno.json: it is not TypeScript for Deno).
//
// One AdamW update of one parameter on TensorFlow.js's own wasm heap (the module imports that memory),
// a non-finite check, and the clipping norm's sums of squares. `adamw` performs, per element and in the
// same order, the float32 operations of the tfjs op sequence in lib/tuning/optimizer.ts (written out
// there); each f32x4 / f32 multiply, add, subtract, divide and square root is IEEE-754 correctly rounded
// in wasm, as each tfjs kernel's float32 result is, so the results are the op sequence's bits. No fused
// multiply-add: relaxed SIMD is not enabled for this module.

/**
 * New p, m, v (at po, mo, vo) of `n` float32 elements from p, m, v and gradient g. `mask` (0: none) is a
 * float mask: g is multiplied by it, and the new p is taken only where mask > 0 (else p's bits).
 * `scale` (when `scaled`) multiplies g first; `decay` (when `decays`) multiplies p.
 */
export function adamw(
  p: usize,
  m: usize,
  v: usize,
  g: usize,
  mask: usize,
  po: usize,
  mo: usize,
  vo: usize,
  n: i32,
  scale: f32,
  scaled: i32,
  beta1: f32,
  oneMinusBeta1: f32,
  beta2: f32,
  oneMinusBeta2: f32,
  decay: f32,
  decays: i32,
  bc2Sqrt: f32,
  eps: f32,
  stepSize: f32,
): void {
  const sc = f32x4.splat(scale);
  const b1 = f32x4.splat(beta1), c1 = f32x4.splat(oneMinusBeta1);
  const b2 = f32x4.splat(beta2), c2 = f32x4.splat(oneMinusBeta2);
  const d = f32x4.splat(decay), s2 = f32x4.splat(bc2Sqrt), e = f32x4.splat(eps), ss = f32x4.splat(stepSize);
  const zero = f32x4.splat(0);
  const vec = n & ~3;
  for (let i = 0; i < vec; i += 4) {
    const o = <usize>i << 2;
    let gv = v128.load(g + o);
    if (scaled) gv = f32x4.mul(gv, sc);
    let mk = zero;
    if (mask) {
      mk = v128.load(mask + o);
      gv = f32x4.mul(gv, mk);
    }
    const mv = f32x4.add(f32x4.mul(v128.load(m + o), b1), f32x4.mul(gv, c1));
    const vv = f32x4.add(f32x4.mul(v128.load(v + o), b2), f32x4.mul(f32x4.mul(gv, gv), c2));
    const p0 = v128.load(p + o);
    let pv = decays ? f32x4.mul(p0, d) : p0;
    const den = f32x4.add(f32x4.div(f32x4.sqrt(vv), s2), e);
    pv = f32x4.sub(pv, f32x4.mul(f32x4.div(mv, den), ss));
    if (mask) pv = v128.bitselect(pv, p0, f32x4.gt(mk, zero));
    v128.store(po + o, pv);
    v128.store(mo + o, mv);
    v128.store(vo + o, vv);
  }
  for (let i = vec; i < n; i++) {
    const o = <usize>i << 2;
    let gs = load<f32>(g + o);
    if (scaled) gs = gs * scale;
    let mk: f32 = 0;
    if (mask) {
      mk = load<f32>(mask + o);
      gs = gs * mk;
    }
    const ms: f32 = load<f32>(m + o) * beta1 + gs * oneMinusBeta1;
    const vs: f32 = load<f32>(v + o) * beta2 + (gs * gs) * oneMinusBeta2;
    const p0 = load<f32>(p + o);
    let ps: f32 = decays ? p0 * decay : p0;
    const den: f32 = sqrt<f32>(vs) / bc2Sqrt + eps;
    ps = ps - (ms / den) * stepSize;
    if (mask && !(mk > 0)) ps = p0;
    store<f32>(po + o, ps);
    store<f32>(mo + o, ms);
    store<f32>(vo + o, vs);
  }
}

/** 1 if any of the `n` float32 values at x is NaN or infinite, else 0 (x * 0 is 0 only when x is finite). */
export function nonFinite(x: usize, n: i32): i32 {
  const zero = f32x4.splat(0);
  let acc = zero;
  const vec = n & ~3;
  for (let i = 0; i < vec; i += 4) acc = f32x4.add(acc, f32x4.mul(v128.load(x + (<usize>i << 2)), zero));
  let s: f32 = 0;
  for (let i = vec; i < n; i++) s += load<f32>(x + (<usize>i << 2)) * 0;
  // NaN != NaN: a lane (or s) that is not equal to itself saw a non-finite value.
  return !i32x4.all_true(f32x4.eq(acc, acc)) || s != s ? 1 : 0;
}

/**
 * The float32 sum of the squares of the `n` float32 values at x, added one by one in index order: the
 * bits of tfjs-wasm's Square (x * x, rounded to float32) then Sum (a float32 sum in index order) over the
 * whole tensor. Blocks of sixteen zeros (then of four) are skipped: each would add +0 to a sum that
 * starts at +0 and never turns -0, which changes nothing. An embedding's gradient is mostly zero rows.
 */
export function sumSquares(x: usize, n: i32): f32 {
  let s: f32 = 0;
  const blocks = n & ~15;
  for (let i = 0; i < blocks; i += 16) {
    const p = x + (<usize>i << 2);
    const a = v128.load(p), b = v128.load(p, 16), c = v128.load(p, 32), d = v128.load(p, 48);
    if (!v128.any_true(v128.or(v128.or(a, b), v128.or(c, d)))) continue;
    s = addSquares(s, a);
    s = addSquares(s, b);
    s = addSquares(s, c);
    s = addSquares(s, d);
  }
  for (let i = blocks; i < n; i++) {
    const a = load<f32>(x + (<usize>i << 2));
    s += a * a;
  }
  return s;
}

/** s plus the squares of a's four lanes, in lane order (nothing to add where all four are zero). */
// @ts-ignore: decorator
@inline function addSquares(s: f32, a: v128): f32 {
  if (!v128.any_true(a)) return s;
  const q = f32x4.mul(a, a);
  s += f32x4.extract_lane(q, 0);
  s += f32x4.extract_lane(q, 1);
  s += f32x4.extract_lane(q, 2);
  s += f32x4.extract_lane(q, 3);
  return s;
}
