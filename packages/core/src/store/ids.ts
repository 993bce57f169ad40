/**
 * Random identifiers, all from `crypto.getRandomValues` (a web-standard global in Node 20 and
 * browsers): one helper for the relay's id prefix, a store's origin and a peer's session token.
 */

/** A random base-36 token of about 6 characters per `words` (each word is 32 random bits). */
export function randomToken(words = 2): string {
  const a = new Uint32Array(words);
  crypto.getRandomValues(a);
  let s = '';
  for (const n of a) s += n.toString(36);
  return s;
}

/** `bytes` random bytes as lowercase hex (2 characters per byte). */
export function randomHex(bytes = 16): string {
  const b = crypto.getRandomValues(new Uint8Array(bytes));
  let s = '';
  for (const x of b) s += x.toString(16).padStart(2, '0');
  return s;
}

/** A random integer in [0, 2^31): a starting point for counters that must not repeat across sessions. */
export function randomStart(): number {
  return crypto.getRandomValues(new Uint32Array(1))[0]! >>> 1;
}
