/**
 * File operations of the FileStore: where the log is, writing a buffer whole, and replacing the
 * log atomically (written aside, synced, renamed over it, the directory synced), which both
 * creates a new log and finishes a compaction.
 */
import { ProtocolError } from '@missive/core';
import { open, rename, rm, stat, type FileHandle } from 'node:fs/promises';
import { dirname, join, resolve } from 'node:path';

/** The log's name inside a directory given as the store's path. */
export const LOG_NAME = 'outbox.log';
/** Writes are cut into batches of about this many bytes. */
export const BATCH_BYTES = 1024 * 1024;

/** The temporary file a new log is written to before it is renamed over `file`. */
export function asideOf(file: string): string {
  return `${file}.compact`;
}

/**
 * The log's absolute path: `path` itself, or `outbox.log` in it if it is a directory (existing,
 * or written with a trailing slash). Rejects with ProtocolError if `path` is something else.
 */
export async function resolveLogPath(path: string): Promise<string> {
  const abs = resolve(path);
  const st = await stat(abs).catch((err: unknown) => {
    if (errnoCode(err) === 'ENOENT') return undefined;
    throw err;
  });
  if (st?.isDirectory() || (!st && /[\\/]$/.test(path))) return join(abs, LOG_NAME);
  if (st && !st.isFile()) throw new ProtocolError(`${abs} is not a regular file or a directory, so not a missive outbox log`);
  return abs;
}

/** Opens an existing, non-empty log for reading and writing; undefined if there is none yet. */
export async function openExisting(file: string): Promise<FileHandle | undefined> {
  let fh: FileHandle;
  try {
    fh = await open(file, 'r+');
  } catch (err) {
    if (errnoCode(err) === 'ENOENT') return undefined;
    throw err;
  }
  if ((await fh.stat()).size > 0) return fh;
  await fh.close();
  return undefined;
}

/**
 * Writes `records` to the aside file, fdatasyncs it and renames it over `file`: a crash at any
 * point leaves either the old log or the new one, whole. Resolves with the bytes written. On a
 * failure before the rename, the aside file is removed and `file` is untouched. The rename is
 * made durable by {@link syncDir}, which the caller runs next.
 */
export async function replaceLog(file: string, records: Iterable<Buffer>): Promise<number> {
  const aside = asideOf(file);
  const out = await open(aside, 'w');
  let bytes = 0;
  try {
    let parts: Buffer[] = [];
    let pending = 0;
    const flush = async (): Promise<void> => {
      const buf = Buffer.concat(parts, pending);
      parts = [];
      pending = 0;
      await writeAll(out, buf, bytes);
      bytes += buf.length;
    };
    for (const rec of records) {
      parts.push(rec);
      pending += rec.length;
      if (pending >= BATCH_BYTES) await flush();
    }
    if (pending > 0) await flush();
    await out.datasync();
  } catch (err) {
    await out.close().catch(() => {});
    await rm(aside, { force: true }).catch(() => {});
    throw err;
  }
  await out.close();
  await rename(aside, file);
  return bytes;
}

/** Makes a rename or a new file in `dir` durable. Not possible (nor needed) on Windows. */
export async function syncDir(dir: string): Promise<void> {
  if (process.platform === 'win32') return;
  const fh = await open(dir, 'r');
  try {
    await fh.sync();
  } finally {
    await fh.close();
  }
}

/** {@link syncDir} of the directory holding `file`. */
export function syncDirOf(file: string): Promise<void> {
  return syncDir(dirname(file));
}

/**
 * Writes all of `buf` at `position`. A write that makes no progress (no file system does this
 * for a regular file; it would otherwise loop forever) fails like the file system would, with
 * an errno-style error of code `EIO`.
 */
export async function writeAll(fh: FileHandle, buf: Buffer, position: number): Promise<void> {
  let done = 0;
  while (done < buf.length) {
    const { bytesWritten } = await fh.write(buf, done, buf.length - done, position + done);
    if (bytesWritten <= 0) throw Object.assign(new Error('EIO: the file system accepted no bytes of a write'), { code: 'EIO', syscall: 'write' });
    done += bytesWritten;
  }
}

/** The `code` of a file system error (`ENOENT`, `EEXIST`, ...), or undefined. */
export function errnoCode(err: unknown): unknown {
  return err instanceof Error ? (err as NodeJS.ErrnoException).code : undefined;
}
