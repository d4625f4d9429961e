/**
 * The check `Io.product` (lib/backend/kernel_io.ts) runs before every product: each operand's elements
 * lie inside its own tensor. A wrong offset or stride in a kernel then throws a `RangeError` that says
 * which operand, instead of reading another tensor's data or writing over it: the products work on raw
 * heap addresses (wasm, and OpenBLAS through FFI, which has no trap at all).
 */
import { elementCount } from "../util/shape.ts";
import type { Mat, Out, TI } from "./kernel_io.ts";

const size = (t: TI) => elementCount(t.shape);

function fail(what: string, detail: string, t: TI): never {
  throw new RangeError(`product: ${what} ${detail} of a tensor of ${size(t)} elements [${t.shape}]`);
}

/** Throws unless a [rows, cols] strided operand lies inside its tensor. */
function checkMat(x: Mat, rows: number, cols: number, what: string): void {
  if (rows === 0 || cols === 0) return;
  const ints = [x.off, x.rs, x.cs].every((v) => Number.isInteger(v) && v >= 0);
  const last = x.off + (rows - 1) * x.rs + (cols - 1) * x.cs;
  if (!ints || last >= size(x.t)) {
    fail(
      what,
      `[${rows} x ${cols}] at offset ${x.off}, strides (${x.rs}, ${x.cs}) reaches element ${last}`,
      x.t,
    );
  }
}

/** Throws unless A [m, k], B [k, n], C [m, n] (row stride `ld`) and the bias [n] lie inside their tensors. */
export function checkOperands(a: Mat, b: Mat, c: Out, m: number, k: number, n: number, bias?: TI): void {
  if (![m, k, n].every((v) => Number.isInteger(v) && v >= 0)) {
    throw new RangeError(`product: sizes must be integers >= 0, got m ${m}, k ${k}, n ${n}`);
  }
  checkMat(a, m, k, "A");
  checkMat(b, k, n, "B");
  if (m > 0 && n > 0) {
    const ints = [c.off, c.ld].every((v) => Number.isInteger(v) && v >= 0);
    const last = c.off + (m - 1) * c.ld + n - 1;
    if (!ints || last >= size(c.t)) {
      fail("C", `[${m} x ${n}] at offset ${c.off}, row stride ${c.ld} reaches element ${last}`, c.t);
    }
  }
  if (bias && n > size(bias)) fail("the bias", `needs ${n} elements`, bias);
}
