/** Number, byte, time and duration formatting for tables and cards. */

const intFmt = new Intl.NumberFormat('en');
const oneDecimal = new Intl.NumberFormat('en', { maximumFractionDigits: 1 });

export function num(n: number | undefined): string {
  return n === undefined ? '—' : intFmt.format(n);
}

export function rate(n: number | undefined): string {
  return n === undefined ? '—' : `${oneDecimal.format(n)}/s`;
}

export function bytes(n: number | undefined): string {
  if (n === undefined) return '—';
  if (n < 1024) return `${n} B`;
  const units = ['KiB', 'MiB', 'GiB', 'TiB'];
  let v = n / 1024;
  let i = 0;
  while (v >= 1024 && i < units.length - 1) {
    v /= 1024;
    i++;
  }
  return `${oneDecimal.format(v)} ${units[i]}`;
}

export function duration(ms: number | undefined): string {
  if (ms === undefined) return '—';
  if (ms < 1000) return `${Math.round(ms)} ms`;
  let s = Math.floor(ms / 1000);
  const d = Math.floor(s / 86400);
  s -= d * 86400;
  const h = Math.floor(s / 3600);
  s -= h * 3600;
  const m = Math.floor(s / 60);
  s -= m * 60;
  if (d > 0) return `${d}d ${h}h ${m}m`;
  if (h > 0) return `${h}h ${m}m ${s}s`;
  if (m > 0) return `${m}m ${s}s`;
  return `${s}s`;
}

export function ms(n: number | undefined): string {
  if (n === undefined) return '—';
  return n < 10 ? `${n.toFixed(2)} ms` : `${Math.round(n)} ms`;
}

export function clock(at: number, millis = false): string {
  const d = new Date(at);
  const hms = d.toLocaleTimeString('en-GB', { hour12: false });
  return millis ? `${hms}.${String(d.getMilliseconds()).padStart(3, '0')}` : hms;
}

export function since(at: number, now = Date.now()): string {
  return `${duration(Math.max(0, now - at))} ago`;
}

export function dateTime(at: number): string {
  return new Date(at).toLocaleString('en-GB', { hour12: false });
}

export function shortId(id: string): string {
  return id.length > 10 ? `${id.slice(0, 8)}…` : id;
}
