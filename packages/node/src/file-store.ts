/**
 * `FileStore`: a durable `OutboxStore` in one append-only log file, so a Node peer restarted on
 * the same path resends what was never acked and does not re-deliver what it already received.
 * This file is the facade: the open/close lifecycle, input checks and compaction policy. Its
 * parts live in file-store/: the records and their checksums (records.ts), the state they replay
 * to (state.ts), the write queue and fsync (queue.ts), the one-writer lock (lock.ts) and the
 * file operations (files.ts). Format and guarantees: docs/stores.md.
 */
import type { ClosedError, OutboxEntry, OutboxState, OutboxStore } from '@missive/core';
import { DEFAULT_DEDUP_STREAMS, invalidAck, invalidDedup, invalidEntry, randomToken, StoreLifecycle } from '@missive/core/internal';
import { mkdir, open, rm, type FileHandle } from 'node:fs/promises';
import { dirname } from 'node:path';
import { asideOf, openExisting, replaceLog, resolveLogPath, syncDirOf } from './file-store/files.js';
import { takeLog } from './file-store/lock.js';
import { WriteQueue, type FsyncMode } from './file-store/queue.js';
import { encodeAck, encodeAppend, encodeDedup, encodeHeader, replay } from './file-store/records.js';
import { LogState } from './file-store/state.js';

export type { FsyncMode } from './file-store/queue.js';

/** Options of {@link FileStore}. */
export interface FileStoreOptions {
  /**
   * When changes are forced to disk. Every mode survives a process crash (a change resolves
   * only after it was written to the OS); only `always` also survives a machine crash or power
   * loss for every change that resolved. See docs/stores.md.
   * @default 'always'
   */
  fsync?: FsyncMode;
  /** With `fsync: 'interval'`: most milliseconds a written change waits for fdatasync. @default 1000 */
  fsyncInterval?: number;
  /** Compact once dead bytes (acked entries, superseded dedup records) exceed this... @default 1048576 */
  compactMinBytes?: number;
  /** ...and this fraction of the file. @default 0.5 */
  compactRatio?: number;
  /** Receiver dedup streams kept (the least recently updated is forgotten first). @default 10000 */
  maxDedupStreams?: number;
}

/** A snapshot of a FileStore, for diagnostics and tests. */
export interface FileStoreStats {
  /** The log file's absolute path ('' before the first `open()`). */
  file: string;
  /** Bytes in the log file. */
  fileBytes: number;
  /** Bytes a compaction would keep; `fileBytes - liveBytes` is what it would reclaim. */
  liveBytes: number;
  /** Unacked entries. */
  entries: number;
  /** Receiver dedup streams. */
  dedupStreams: number;
  /** Compactions since this object was created. */
  compactions: number;
  /** fdatasync calls on the log since this object was created. */
  syncs: number;
  /** Bytes of a torn tail cut off by the last `open()` (0 if the log ended cleanly). */
  truncatedBytes: number;
}

/**
 * An `OutboxStore` backed by an append-only log file: pass it as a peer's `store`.
 *
 * ```ts
 * const peer = await connect(url, { name: 'alice', store: new FileStore('./data/alice') });
 * ```
 *
 * `path` is the log file, or a directory (existing, or given with a trailing slash) that holds
 * `outbox.log`; missing directories are created. Next to the log live `<log>.lock` (the owner's
 * pid, so two processes cannot open one log) and, during a compaction, `<log>.compact`.
 *
 * Every method returns a promise; `append`, `ack` and `setDedup` resolve once the change is
 * durable as the `fsync` option defines, and reject (so `send` rejects) when it could not be
 * written. After a failed fdatasync the store refuses further changes until it is reopened.
 * `close()` writes what is queued and closes the file; `open()` after `close()` reopens it.
 */
export class FileStore implements OutboxStore {
  readonly #path: string;
  readonly #mode: FsyncMode;
  readonly #interval: number;
  readonly #compactMin: number;
  readonly #compactRatio: number;

  readonly #life: StoreLifecycle<OutboxState>;
  #file = '';
  #queue: WriteQueue | undefined;
  #release: (() => Promise<void>) | undefined;
  readonly #state: LogState;
  /** After a failed automatic compaction, the next waits until the file reaches this size. */
  #retryCompactionAt = 0;

  #compactions = 0;
  /** fdatasync calls of queues this object closed (the open one counts its own). */
  #pastSyncs = 0;
  #truncated = 0;

  /** @param path the log file, or a directory to hold `outbox.log`. */
  constructor(path: string, options: FileStoreOptions = {}) {
    if (typeof path !== 'string' || path === '') throw new TypeError('FileStore needs a path');
    const mode = options.fsync ?? 'always';
    if (mode !== 'always' && mode !== 'interval' && mode !== 'never') throw new TypeError(`fsync must be 'always', 'interval' or 'never', not ${String(mode)}`);
    this.#path = path;
    this.#mode = mode;
    this.#interval = positive('fsyncInterval', options.fsyncInterval ?? 1000);
    this.#compactMin = options.compactMinBytes ?? 1024 * 1024;
    if (typeof this.#compactMin !== 'number' || !(this.#compactMin >= 0)) throw new TypeError('compactMinBytes must be a number >= 0');
    this.#compactRatio = options.compactRatio ?? 0.5;
    if (!(this.#compactRatio >= 0 && this.#compactRatio < 1)) throw new TypeError('compactRatio must be in [0, 1)');
    const max = options.maxDedupStreams ?? DEFAULT_DEDUP_STREAMS;
    if (!Number.isInteger(max) || max < 1) throw new TypeError('maxDedupStreams must be a positive integer');
    this.#state = new LogState(max);
    this.#life = new StoreLifecycle('file store', {
      open: () => this.#doOpen(),
      close: () => this.#doClose(),
      idle: () => this.#queue!.whenIdle(),
      snapshot: () => this.#state.snapshot(),
    });
  }

  /**
   * Opens (creating if needed) and replays the log: the origin, unacked entries in send order,
   * the last sequence number per destination and the dedup marks. Cuts off a torn tail, then
   * compacts if worthwhile. Rejects with NameTakenError (`NAME_TAKEN`) if another FileStore, in
   * this or another live process, has the log open; with ProtocolError (`PROTOCOL`) if the file
   * is not a missive outbox log, has an unsupported version or a malformed record (it is then
   * left untouched); or with the file system's error. Called again while open, it resolves with
   * the current state once queued writes are done.
   */
  open(): Promise<OutboxState> {
    return this.#life.open();
  }

  /**
   * Appends an unacked entry; an entry with an id already held replaces it. Rejects with
   * TypeError for an invalid entry and with LimitError (`LIMIT`) if its record would exceed 64 MiB.
   */
  append(entry: OutboxEntry): Promise<void> {
    return this.#change(() => {
      const bad = invalidEntry(entry);
      if (bad) throw new TypeError(`append: ${bad}`);
      const rec = encodeAppend(entry);
      return [rec, () => this.#state.append(entry, rec.length)];
    });
  }

  /** Removes an entry (acked, or settled as undeliverable); an unknown id changes nothing. */
  ack(id: string): Promise<void> {
    return this.#change(() => {
      const bad = invalidAck(id);
      if (bad) throw new TypeError(bad);
      return [encodeAck(id), () => this.#state.ack(id)];
    });
  }

  /** Records that receiver stream `key` has accepted every sequence number up to `seq`. */
  setDedup(key: string, seq: number): Promise<void> {
    return this.#change(() => {
      const bad = invalidDedup(key, seq);
      if (bad) throw new TypeError(bad);
      return [encodeDedup(key, seq), () => this.#state.setDedup(key, seq)];
    });
  }

  /**
   * Rewrites the log with only live state, now (compaction otherwise runs by itself when dead
   * bytes pass `compactMinBytes` and `compactRatio`). Changes made before the call are in the
   * new file; changes made after it wait for it and follow.
   */
  compact(): Promise<void> {
    const closed = this.#unusable();
    if (closed) return Promise.reject(closed);
    return this.#queue!.run(() => this.#compact());
  }

  /**
   * Writes what is queued (with a final fdatasync unless `fsync` is `never`), closes the file
   * and releases the lock. Idempotent. Changes requested after `close()` reject with CLOSED.
   */
  close(): Promise<void> {
    return this.#life.close();
  }

  /** Sizes and counters, for diagnostics and tests. */
  stats(): FileStoreStats {
    return {
      file: this.#file,
      fileBytes: this.#queue?.size ?? 0,
      liveBytes: this.#state.live,
      entries: this.#state.entries.size,
      dedupStreams: this.#state.dedup.size,
      compactions: this.#compactions,
      syncs: this.#pastSyncs + (this.#queue?.syncs ?? 0),
      truncatedBytes: this.#truncated,
    };
  }

  // ---- open / close -------------------------------------------------------------------------

  async #doOpen(): Promise<void> {
    const file = await resolveLogPath(this.#path);
    this.#file = file;
    await mkdir(dirname(file), { recursive: true });
    const release = await takeLog(file);
    let fh: FileHandle | undefined;
    try {
      // A compaction interrupted by a crash leaves its aside file; the log itself is whole.
      await rm(asideOf(file), { force: true });
      this.#state.clear();
      this.#truncated = 0;
      fh = await openExisting(file);
      if (!fh) {
        await replaceLog(file, [encodeHeader(randomToken(2))]);
        await syncDirOf(file);
        fh = await open(file, 'r+');
      }
      const size = (await fh.stat()).size;
      const end = await replay(fh, size, file, (r, bytes) => this.#state.apply(r, bytes));
      if (end < size) {
        await fh.truncate(end);
        if (this.#mode !== 'never') await fh.datasync();
        this.#truncated = size - end;
      }
      this.#queue = new WriteQueue(fh, end, this.#mode, this.#interval, { maintain: () => this.#maintain() });
      fh = undefined;
      this.#retryCompactionAt = 0;
      await this.#maintain();
    } catch (err) {
      await fh?.close().catch(() => {});
      await this.#queue?.close().catch(() => {});
      this.#queue = undefined;
      this.#state.clear();
      await release();
      throw err;
    }
    this.#release = release;
  }

  async #doClose(): Promise<void> {
    const queue = this.#queue!;
    try {
      await queue.close();
    } finally {
      this.#pastSyncs += queue.syncs;
      this.#queue = undefined;
      this.#state.clear();
      await this.#release?.();
      this.#release = undefined;
    }
  }

  /** Queues a change that `prepare` checks and encodes (it throws for bad input). */
  #change(prepare: () => [Buffer, () => void]): Promise<void> {
    const closed = this.#unusable();
    if (closed) return Promise.reject(closed);
    let rec: Buffer;
    let apply: () => void;
    try {
      [rec, apply] = prepare();
    } catch (err) {
      return Promise.reject(err);
    }
    return this.#queue!.write(rec, apply);
  }

  #unusable(): ClosedError | undefined {
    return this.#life.notOpen() ?? this.#queue!.failed;
  }

  // ---- compaction ---------------------------------------------------------------------------

  /** An automatic compaction, when dead bytes pass both thresholds: on failure the old log stays in use and it is retried later. */
  async #maintain(): Promise<void> {
    const queue = this.#queue!;
    const dead = queue.size - this.#state.live;
    if (queue.failed || queue.size < this.#retryCompactionAt || dead <= this.#compactMin || dead <= this.#compactRatio * queue.size) return;
    try {
      await this.#compact();
    } catch {
      this.#retryCompactionAt = queue.size + this.#compactMin;
    }
  }

  /**
   * Writes the live state aside and renames it over the log (files.ts: a crash at any point
   * leaves one whole log). Runs in the write queue's loop (or before open resolves), so no
   * change is applied meanwhile.
   */
  async #compact(): Promise<void> {
    const queue = this.#queue!;
    const failed = queue.failed;
    if (failed) throw failed;
    const file = this.#file;
    const bytes = await replaceLog(file, this.#state.records());
    // The log is now the new file; the queue's handle points at the unlinked old one.
    let fh: FileHandle;
    try {
      await syncDirOf(file);
      fh = await open(file, 'r+');
    } catch (err) {
      queue.fail(err);
      throw err;
    }
    await queue.swap(fh, bytes);
    this.#state.live = bytes;
    this.#compactions++;
  }
}

function positive(name: string, value: number): number {
  if (typeof value !== 'number' || !(value > 0) || !Number.isFinite(value)) throw new TypeError(`${name} must be a positive number`);
  return value;
}
