/** Shapes as plain number arrays. */

/** Number of elements of a tensor of this shape (1 for a scalar's []). */
export function elementCount(shape: readonly number[]): number {
  return shape.reduce((a, b) => a * b, 1);
}
