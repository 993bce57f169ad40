/**
 * Addresses are `name` or `name/port`; names are peer names, group names or relay-assigned ids.
 *
 * One character rule covers every identifier a peer chooses (names, namespaces, groups, ports,
 * tunnel protocols and the tokens of topics and patterns): see {@link badChar}. It is documented
 * in docs/protocol.md ("Names and topics"), and the Router and the Peer both check it here.
 */

/** The default port: a peer's main mailbox. */
export const DEFAULT_PORT = 'inbox';
/** Relay-assigned peer ids start with this character, which names may not. */
export const ID_PREFIX = '~';
export const MAX_NAME_LENGTH = 128;
/**
 * Names, groups, namespaces, ports and topics that start with this character are the relay's:
 * `$relay` (its admin channel), `$admin` (the admin sessions' namespace), `$inspect` and
 * `$purge` (the control ports of an inspectable peer), `$relay.trace` (the live trace).
 */
export const RESERVED_PREFIX = '$';
/** The relay itself, as an address: admin sessions send it requests (`$relay/peers`). */
export const RELAY_NAME = '$relay';

/**
 * Whether `c` (a UTF-16 code unit at or above U+007F) is refused in identifiers: DEL and the C1
 * controls (U+007F–U+009F), and the Unicode white space characters (what `\s` matches).
 */
function badHigh(c: number): boolean {
  return (
    c <= 0x9f ||
    c === 0xa0 ||
    c === 0x1680 ||
    (c >= 0x2000 && c <= 0x200a) ||
    c === 0x2028 ||
    c === 0x2029 ||
    c === 0x202f ||
    c === 0x205f ||
    c === 0x3000 ||
    c === 0xfeff
  );
}

/**
 * Why `s` breaks the identifier character rule, or undefined when it does not. Refused: control
 * characters (C0 U+0000–U+001F, DEL U+007F, C1 U+0080–U+009F), white space (ASCII and Unicode),
 * `/` where `slash` is false, and unpaired surrogates (the string would not survive UTF-8).
 * A scan over the code units, no regex: it runs for every publish, at the peer and the relay.
 */
export function badChar(s: string, slash = false): string | undefined {
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    if (c < 0x7f) {
      if (c <= 0x20) return c === 0x20 ? 'white space' : 'a control character';
      if (c === 0x2f && !slash) return '"/"';
      continue;
    }
    if (badHigh(c)) return c <= 0x9f ? 'a control character' : 'white space';
    if (c >= 0xd800 && c <= 0xdfff) {
      // A high surrogate must be followed by a low one; a low one never comes first.
      const next = s.charCodeAt(i + 1);
      if (c >= 0xdc00 || !(next >= 0xdc00 && next <= 0xdfff)) return 'an unpaired surrogate';
      i++;
    }
  }
  return undefined;
}

/** Splits `name/port` (port defaults to `inbox`). */
export function splitAddress(address: string): { name: string; port: string } {
  const i = address.indexOf('/');
  if (i < 0) return { name: address, port: DEFAULT_PORT };
  return { name: address.slice(0, i), port: address.slice(i + 1) || DEFAULT_PORT };
}

/** Why `name` cannot be a peer or group name (or a namespace, port, protocol), or undefined if it can. */
export function checkName(name: string, what = 'name'): string | undefined {
  if (typeof name !== 'string' || name.length === 0) return `${what} must be a non-empty string`;
  if (name.length > MAX_NAME_LENGTH) return `${what} longer than ${MAX_NAME_LENGTH} characters`;
  if (name.startsWith(ID_PREFIX)) return `${what} may not start with "${ID_PREFIX}" (reserved for peer ids)`;
  if (name.startsWith(RESERVED_PREFIX)) return `${what} may not start with "${RESERVED_PREFIX}" (reserved for the relay)`;
  const bad = badChar(name);
  if (bad) return `${what} ${JSON.stringify(name)} contains ${bad}`;
  return undefined;
}

/** Why `address` is not a valid address, or undefined. Ids (`~…`) are allowed as the name part. */
export function checkAddress(address: string): string | undefined {
  if (typeof address !== 'string' || address.length === 0) return 'address must be a non-empty string';
  const { name, port } = splitAddress(address);
  if (name === RELAY_NAME) {
    // The relay's admin channel: its operations are its ports.
  } else if (!name.startsWith(ID_PREFIX)) {
    const bad = checkName(name);
    if (bad) return bad;
  } else if (name.length < 2 || name.length > MAX_NAME_LENGTH || badChar(name) !== undefined) return `bad peer id ${JSON.stringify(name)}`;
  if (port.length > MAX_NAME_LENGTH) return `port longer than ${MAX_NAME_LENGTH} characters`;
  const bad = badChar(port);
  if (bad) return `port ${JSON.stringify(port)} contains ${bad}`;
  return undefined;
}
