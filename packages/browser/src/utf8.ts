const utf8 = new TextEncoder();

/** `s` cut to at most `max` bytes of UTF-8, on a character boundary (close reasons: 123 bytes). */
export function truncateUtf8(s: string, max: number): string {
  if (s.length * 3 <= max || utf8.encode(s).length <= max) return s;
  let out = '';
  let bytes = 0;
  for (const ch of s) {
    const n = utf8.encode(ch).length;
    if (bytes + n > max) break;
    out += ch;
    bytes += n;
  }
  return out;
}
