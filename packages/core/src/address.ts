/** Addresses are `name` or `name/port`; names are peer names, group names or relay-assigned ids. */

/** The default port: a peer's main mailbox. */
export const DEFAULT_PORT = 'inbox';
/** Relay-assigned peer ids start with this character, which names may not. */
export const ID_PREFIX = '~';
export const MAX_NAME_LENGTH = 128;

/** Splits `name/port` (port defaults to `inbox`). */
export function splitAddress(address: string): { name: string; port: string } {
  const i = address.indexOf('/');
  if (i < 0) return { name: address, port: DEFAULT_PORT };
  return { name: address.slice(0, i), port: address.slice(i + 1) || DEFAULT_PORT };
}

/** Why `name` cannot be a peer or group name, or undefined if it can. */
export function checkName(name: string, what = 'name'): string | undefined {
  if (typeof name !== 'string' || name.length === 0) return `${what} must be a non-empty string`;
  if (name.length > MAX_NAME_LENGTH) return `${what} longer than ${MAX_NAME_LENGTH} characters`;
  if (name.startsWith(ID_PREFIX)) return `${what} may not start with "${ID_PREFIX}" (reserved for peer ids)`;
  // eslint-disable-next-line no-control-regex
  if (/[\s/\u0000-\u001f\u007f]/.test(name)) return `${what} "${name}" contains "/", whitespace or a control character`;
  return undefined;
}

/** Why `address` is not a valid address, or undefined. Ids (`~…`) are allowed as the name part. */
export function checkAddress(address: string): string | undefined {
  if (typeof address !== 'string' || address.length === 0) return 'address must be a non-empty string';
  const { name, port } = splitAddress(address);
  if (!name.startsWith(ID_PREFIX)) {
    const bad = checkName(name);
    if (bad) return bad;
  } else if (name.length < 2 || name.length > MAX_NAME_LENGTH) return `bad peer id "${name}"`;
  if (port.length > MAX_NAME_LENGTH || /[\s/]/.test(port)) return `bad port "${port}"`;
  return undefined;
}
