/** Structured logs: one JSON object per line, or a readable line on a TTY. */

export type LogLevel = 'debug' | 'info' | 'warn' | 'error' | 'silent';
const rank: Record<LogLevel, number> = { debug: 10, info: 20, warn: 30, error: 40, silent: 100 };

export interface Logger {
  /** Whether `debug` lines are written (so costly fields can be skipped). */
  readonly debugEnabled?: boolean;
  debug(msg: string, fields?: Record<string, unknown>): void;
  info(msg: string, fields?: Record<string, unknown>): void;
  warn(msg: string, fields?: Record<string, unknown>): void;
  error(msg: string, fields?: Record<string, unknown>): void;
}

export interface LoggerOptions {
  /** @default 'info' */
  level?: LogLevel;
  /** Human-readable lines instead of JSON. @default whether the stream is a TTY */
  pretty?: boolean;
  stream?: NodeJS.WritableStream & { isTTY?: boolean };
}

export function isLogLevel(s: string): s is LogLevel {
  return Object.prototype.hasOwnProperty.call(rank, s);
}

export function createLogger(options: LoggerOptions = {}): Logger {
  const stream = options.stream ?? process.stderr;
  const min = rank[options.level ?? 'info'];
  const pretty = options.pretty ?? stream.isTTY === true;
  const write = (level: Exclude<LogLevel, 'silent'>, msg: string, fields?: Record<string, unknown>): void => {
    if (rank[level] < min) return;
    const time = new Date().toISOString();
    if (pretty) {
      const extra = fields ? Object.entries(fields).map(([k, v]) => `${k}=${typeof v === 'string' ? v : JSON.stringify(v)}`).join(' ') : '';
      stream.write(`${time.slice(11, 23)} ${level.toUpperCase().padEnd(5)} ${msg}${extra ? ` ${extra}` : ''}\n`);
    } else {
      stream.write(`${JSON.stringify({ time, level, msg, ...fields })}\n`);
    }
  };
  return {
    debugEnabled: min <= rank.debug,
    debug: (m, f) => write('debug', m, f),
    info: (m, f) => write('info', m, f),
    warn: (m, f) => write('warn', m, f),
    error: (m, f) => write('error', m, f),
  };
}

/** A logger that discards everything (the default for `createRelay`). */
export const silentLogger: Logger = { debug() {}, info() {}, warn() {}, error() {} };
