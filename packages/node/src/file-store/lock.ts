/**
 * One writer per log. Two FileStores appending to one file would interleave and corrupt it, so
 * a log is taken for the time it is open: within this process by a set of open paths, across
 * processes by `<log>.lock`, a file holding the owner's pid. Either refusal is NameTakenError,
 * the error of "someone else holds this name". A same-machine lock: it does not protect a log on
 * a network file system, or one shared by containers with separate pid namespaces.
 */
import { NameTakenError } from '@missive/core';
import { randomHex } from '@missive/core/internal';
import { link, readFile, rm, writeFile } from 'node:fs/promises';
import { errnoCode } from './files.js';

/** Paths open in this process. */
const openFiles = new Set<string>();

/** The lock file of `file`. */
export function lockOf(file: string): string {
  return `${file}.lock`;
}

/**
 * Takes `file` for this store: rejects with NameTakenError if another FileStore in this process,
 * or another live process, holds it; a lock left by a process that is gone (crashed) is taken
 * over. Resolves with the function that gives it back (it never rejects).
 */
export async function takeLog(file: string): Promise<() => Promise<void>> {
  if (openFiles.has(file)) throw new NameTakenError(`${file} is already open in this process`);
  openFiles.add(file);
  try {
    await acquireLockFile(file);
  } catch (err) {
    openFiles.delete(file);
    throw err;
  }
  return async () => {
    await rm(lockOf(file), { force: true }).catch(() => {});
    openFiles.delete(file);
  };
}

/**
 * Creates `<file>.lock` atomically: a hard link to a file already holding our pid, so the lock
 * is never seen empty. Where the file system has no hard links, an exclusive create must do.
 */
async function acquireLockFile(file: string): Promise<void> {
  const lock = lockOf(file);
  const mine = `${lock}.${process.pid}.${randomHex(4)}`;
  await writeFile(mine, String(process.pid), { flag: 'wx' });
  try {
    for (let attempt = 0; ; attempt++) {
      try {
        await link(mine, lock);
        return;
      } catch (err) {
        const code = errnoCode(err);
        if (code === 'EPERM' || code === 'ENOTSUP' || code === 'ENOSYS') {
          await writeFile(lock, String(process.pid), { flag: 'wx' });
          return;
        }
        if (code !== 'EEXIST') throw err;
      }
      const owner = Number.parseInt(await readFile(lock, 'utf8').catch(() => ''), 10);
      if (attempt > 0 || (owner > 0 && owner !== process.pid && alive(owner))) {
        throw new NameTakenError(`${file} is in use by process ${Number.isNaN(owner) ? '?' : owner} (lock file ${lock})`);
      }
      await rm(lock, { force: true });
    }
  } finally {
    await rm(mine, { force: true });
  }
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return errnoCode(err) === 'EPERM';
  }
}
