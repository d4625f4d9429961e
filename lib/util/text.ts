/**
 * Quoting input inside error messages: a value read from a file or a flag can be megabytes long (a TSV
 * "header" that is really a whole file without newlines), and an error must stay readable.
 *
 * ```ts
 * quote("a".repeat(10_000)); // '"aaaa…aaa" (10000 characters)' (about 80 characters shown)
 * ```
 */

/** Characters of quoted input shown in a message before it is cut. */
export const QUOTE_MAX = 80;

/** `JSON.stringify(value)`, cut to about `max` characters with the full length said when it was longer. */
export function quote(value: unknown, max = QUOTE_MAX): string {
  const text = JSON.stringify(value) ?? String(value);
  if (text.length <= max) return text;
  const length = typeof value === "string"
    ? `${value.length} characters`
    : `${text.length} characters as JSON`;
  return `${text.slice(0, max)}… (${length})`;
}
