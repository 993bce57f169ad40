/**
 * The FileStore's write queue: every change and every compaction goes through it, so records
 * reach the log in call order and a compaction never races an append. Changes made in one tick
 * share one write; with `fsync: 'always'` those arriving while a write + fdatasync is in flight
 * share the next one (group commit). A change resolves once its record is written (and synced,
 * as the mode says), and only then is it applied to the in-memory state.
 */
import { ClosedError } from '@missive/core';
import type { FileHandle } from 'node:fs/promises';
import { BATCH_BYTES, writeAll } from './files.js';

/**
 * When the store calls fdatasync:
 * - `always`: before each change resolves (changes arriving meanwhile share the next one);
 * - `interval`: every `fsyncInterval` ms while there are unsynced changes;
 * - `never`: never for appends, acks and dedup (compaction still syncs its new file).
 */
export type FsyncMode = 'always' | 'interval' | 'never';

interface WriteOp {
  kind: 'write';
  rec: Buffer;
  apply: () => void;
  resolve: () => void;
  reject: (err: unknown) => void;
}
interface RunOp {
  kind: 'run';
  fn: () => Promise<void>;
  resolve: () => void;
  reject: (err: unknown) => void;
}
type Op = WriteOp | RunOp;

/** What the queue asks of its store between two steps of its drain loop. */
export interface QueueHooks {
  /** Runs an automatic compaction if one is due (through {@link WriteQueue.swap}); never rejects. */
  maintain(): Promise<void>;
}

/** Appends records to one open log file, in call order. */
export class WriteQueue {
  readonly #mode: FsyncMode;
  readonly #interval: number;
  readonly #hooks: QueueHooks;
  #fh: FileHandle | undefined;
  #size: number;
  #queue: Op[] = [];
  #draining = false;
  #idleWaiters: (() => void)[] = [];
  #dirty = false;
  #syncWanted = false;
  #timer: ReturnType<typeof setTimeout> | undefined;
  #failed: { cause: unknown } | undefined;
  #syncs = 0;

  /** Takes over `fh`, a log of `size` bytes. */
  constructor(fh: FileHandle, size: number, mode: FsyncMode, interval: number, hooks: QueueHooks) {
    this.#fh = fh;
    this.#size = size;
    this.#mode = mode;
    this.#interval = interval;
    this.#hooks = hooks;
  }

  /** Bytes in the log. */
  get size(): number {
    return this.#size;
  }

  /** fdatasync calls on the log so far. */
  get syncs(): number {
    return this.#syncs;
  }

  /**
   * Set once the file's state is unknown (a failed fdatasync, a failed truncate, a compaction
   * that renamed the new log but could not open it): the ClosedError every change then gets.
   */
  get failed(): ClosedError | undefined {
    if (!this.#failed) return undefined;
    const { cause } = this.#failed;
    return new ClosedError(`file store refuses changes after a failed write (reopen it): ${cause instanceof Error ? cause.message : String(cause)}`, { cause });
  }

  /** Marks the file's state unknown: no more writes (the first cause is kept). */
  fail(cause: unknown): void {
    this.#failed ??= { cause };
  }

  /** Appends `rec`; runs `apply` once it is written (and synced as the mode says), then resolves. */
  write(rec: Buffer, apply: () => void): Promise<void> {
    return new Promise<void>((resolve, reject) => {
      this.#queue.push({ kind: 'write', rec, apply, resolve, reject });
      this.#kick();
    });
  }

  /** Runs `fn` in the drain loop after every change queued before it, and before those queued after it. */
  run(fn: () => Promise<void>): Promise<void> {
    return new Promise<void>((resolve, reject) => {
      this.#queue.push({ kind: 'run', fn, resolve, reject });
      this.#kick();
    });
  }

  /**
   * Puts the log replaced under the queue (by a compaction, inside {@link run} or `maintain`):
   * `fh` is the new file of `size` bytes, all of it synced. The old handle is closed.
   */
  async swap(fh: FileHandle, size: number): Promise<void> {
    const old = this.#fh;
    this.#fh = fh;
    this.#size = size;
    this.#dirty = false;
    await old?.close().catch(() => {});
  }

  /** Resolves once everything queued so far is written (or has failed). */
  whenIdle(): Promise<void> {
    return this.#draining ? new Promise((resolve) => this.#idleWaiters.push(resolve)) : Promise.resolve();
  }

  /**
   * Waits for what is queued, does a last fdatasync (unless the mode is `never` or the queue
   * failed) and closes the file; rejects with the first error of those, once the file is closed.
   */
  async close(): Promise<void> {
    await this.whenIdle();
    clearTimeout(this.#timer);
    this.#timer = undefined;
    let error: unknown;
    if (this.#dirty && this.#mode !== 'never' && !this.#failed) {
      try {
        await this.#sync();
      } catch (err) {
        error = err;
      }
    }
    try {
      await this.#fh?.close();
    } catch (err) {
      error ??= err;
    }
    this.#fh = undefined;
    if (error !== undefined) throw error;
  }

  /** Starts the drain loop after this tick, so changes made in one tick share a write. */
  #kick(): void {
    if (this.#draining) return;
    this.#draining = true;
    queueMicrotask(() => void this.#drain());
  }

  async #drain(): Promise<void> {
    try {
      for (;;) {
        const head = this.#queue[0];
        if (head?.kind === 'run') {
          this.#queue.shift();
          await head.fn().then(head.resolve, head.reject);
        } else if (head) {
          await this.#writeBatch(this.#takeBatch());
        } else if (this.#syncWanted) {
          this.#syncWanted = false;
          if (this.#dirty && !this.#failed) await this.#sync().catch((err: unknown) => this.fail(err));
        } else break;
        await this.#hooks.maintain();
      }
    } finally {
      this.#draining = false;
      for (const w of this.#idleWaiters.splice(0)) w();
    }
  }

  #takeBatch(): WriteOp[] {
    const batch: WriteOp[] = [];
    let bytes = 0;
    while (bytes < BATCH_BYTES) {
      const op = this.#queue[0];
      if (op?.kind !== 'write') break;
      this.#queue.shift();
      batch.push(op);
      bytes += op.rec.length;
    }
    return batch;
  }

  async #writeBatch(batch: WriteOp[]): Promise<void> {
    const fh = this.#fh;
    if (this.#failed || !fh) {
      const err = this.failed ?? new ClosedError('file store is closed');
      for (const op of batch) op.reject(err);
      return;
    }
    const buf = batch.length === 1 ? batch[0]!.rec : Buffer.concat(batch.map((op) => op.rec));
    try {
      await writeAll(fh, buf, this.#size);
    } catch (err) {
      // Part of the batch may have reached the file: cut it off, so the next write follows the
      // last whole record. If even that fails, the file is in an unknown state.
      await fh.truncate(this.#size).catch((e: unknown) => this.fail(e));
      for (const op of batch) op.reject(err);
      return;
    }
    this.#size += buf.length;
    this.#dirty = true;
    if (this.#mode === 'always') {
      try {
        await this.#sync();
      } catch (err) {
        // After a failed fdatasync the kernel may have dropped the dirty pages: nothing written
        // since the last good sync can be trusted, so the store stops here.
        this.fail(err);
        for (const op of batch) op.reject(err);
        return;
      }
    } else if (this.#mode === 'interval' && this.#timer === undefined) {
      this.#timer = setTimeout(() => {
        this.#timer = undefined;
        this.#syncWanted = true;
        this.#kick();
      }, this.#interval);
      this.#timer.unref();
    }
    for (const op of batch) op.apply();
    for (const op of batch) op.resolve();
  }

  async #sync(): Promise<void> {
    await this.#fh!.datasync();
    this.#syncs++;
    this.#dirty = false;
  }
}
