/**
 * `FileStore`: a durable `OutboxStore` in one append-only log file, so a Node peer restarted on
 * the same path resends what was never acked and does not re-deliver what it already received.
 *
 * The log is a sequence of self-delimiting, checksummed records (format in docs/stores.md):
 *
 *   crc32 u32le | length u32le | payload (length bytes; payload[0] is the record type)
 *
 * where the CRC-32 covers the length field and the payload. Replaying stops at the first record
 * that is incomplete or fails its checksum, and the file is cut there: that is the torn tail of
 * a write interrupted by a crash, and it is never misparsed. All writes (appends, acks, dedup
 * updates, compaction) go through one queue, so they reach the file in call order and a
 * compaction never races an append.
 */
import { ClosedError, LimitError, type OutboxEntry, type OutboxState, type OutboxStore } from '@missive/core';
import { randomBytes } from 'node:crypto';
import { link, mkdir, open, readFile, rename, rm, stat, writeFile, type FileHandle } from 'node:fs/promises';
import { dirname, join, resolve } from 'node:path';
import * as zlib from 'node:zlib';

/**
 * When the store calls fdatasync:
 * - `always`: before each change resolves (changes arriving meanwhile share the next one);
 * - `interval`: every `fsyncInterval` ms while there are unsynced changes;
 * - `never`: never for appends, acks and dedup (compaction still syncs its new file).
 */
export type FsyncMode = 'always' | 'interval' | 'never';

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

/** The log's name inside a directory given as the store's path. */
const FILE_STORE_LOG_NAME = 'outbox.log';

const MAGIC = 'missive-outbox';
const VERSION = 1;
const HEAD = 8;
/** Largest record payload (an entry's body and addresses): more rejects the append with LIMIT. */
const MAX_RECORD = 64 * 1024 * 1024;
/** Writes are cut into batches of about this many bytes. */
const BATCH_BYTES = 1024 * 1024;
const READ_CHUNK = 1024 * 1024;

const Rec = { Header: 1, Append: 2, Ack: 3, Dedup: 4, Seq: 5 } as const;

/** Paths open in this process: a second FileStore on the same file would corrupt it. */
const openFiles = new Set<string>();

type State = 'new' | 'opening' | 'open' | 'closing' | 'closed';

interface WriteOp {
  kind: 'write';
  rec: Buffer;
  apply: () => void;
  resolve: () => void;
  reject: (err: unknown) => void;
}
interface CompactOp {
  kind: 'compact';
  resolve: () => void;
  reject: (err: unknown) => void;
}
type Op = WriteOp | CompactOp;

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
  readonly #maxDedup: number;

  #state: State = 'new';
  #opening: Promise<OutboxState> | undefined;
  #closing: Promise<void> | undefined;
  #file = '';
  #fh: FileHandle | undefined;
  /** Set when the file's state is unknown (a failed fdatasync or truncate): no more writes. */
  #failed: Error | undefined;

  #origin = '';
  readonly #entries = new Map<string, { entry: OutboxEntry; size: number }>();
  readonly #seqs = new Map<string, number>();
  readonly #dedup = new Map<string, { seq: number; size: number }>();
  /** Bytes in the file, and the bytes of it that are still live. */
  #size = 0;
  #live = 0;
  /** After a failed automatic compaction, the next waits until the file reaches this size. */
  #retryCompactionAt = 0;

  #queue: Op[] = [];
  #draining = false;
  #idleWaiters: (() => void)[] = [];
  #dirty = false;
  #syncWanted = false;
  #timer: ReturnType<typeof setTimeout> | undefined;

  #compactions = 0;
  #syncs = 0;
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
    this.#maxDedup = positive('maxDedupStreams', options.maxDedupStreams ?? 10_000);
  }

  /**
   * Opens (creating if needed) and replays the log: the origin, unacked entries in send order,
   * the last sequence number per destination and the dedup map. Cuts off a torn tail, then
   * compacts if worthwhile. Rejects with code `EBUSY` if another FileStore (in this or another
   * live process) has the log open, `EBADLOG` if the file is not a missive log (it is then left
   * untouched), or the file system's error. Called again while open, it resolves with the
   * current state once queued writes are done.
   */
  open(): Promise<OutboxState> {
    switch (this.#state) {
      case 'opening':
        return this.#opening!;
      case 'open':
        return this.#whenIdle().then(() => this.#snapshot());
      case 'closing':
        return this.#closing!.then(
          () => this.open(),
          () => this.open(),
        );
      default: {
        this.#state = 'opening';
        const opening = this.#doOpen().then(
          () => {
            this.#state = 'open';
            this.#opening = undefined;
            return this.#snapshot();
          },
          (err: unknown) => {
            this.#state = 'closed';
            this.#opening = undefined;
            throw err;
          },
        );
        this.#opening = opening;
        return opening;
      }
    }
  }

  /** Appends an unacked entry; rejects with LIMIT if its record would exceed 64 MiB. */
  append(entry: OutboxEntry): Promise<void> {
    const closed = this.#unusable();
    if (closed) return Promise.reject(closed);
    let rec: Buffer;
    try {
      rec = encodeAppend(entry);
    } catch (err) {
      return Promise.reject(err);
    }
    return this.#write(rec, () => this.#applyAppend(entry, rec.length));
  }

  /** Removes an entry (acked, or settled as undeliverable); an unknown id changes nothing. */
  ack(id: string): Promise<void> {
    const closed = this.#unusable();
    if (closed) return Promise.reject(closed);
    if (typeof id !== 'string') return Promise.reject(new TypeError('id must be a string'));
    return this.#write(encodeString(Rec.Ack, id), () => this.#applyAck(id));
  }

  /** Records that receiver stream `key` has accepted every sequence number up to `seq`. */
  setDedup(key: string, seq: number): Promise<void> {
    const closed = this.#unusable();
    if (closed) return Promise.reject(closed);
    if (typeof key !== 'string' || typeof seq !== 'number') return Promise.reject(new TypeError('setDedup(key: string, seq: number)'));
    const rec = encodeString(Rec.Dedup, key, seq);
    return this.#write(rec, () => this.#applyDedup(key, seq, rec.length));
  }

  /**
   * Rewrites the log with only live state, now (compaction otherwise runs by itself when dead
   * bytes pass `compactMinBytes` and `compactRatio`). Changes made before the call are in the
   * new file; changes made after it wait for it and follow.
   */
  compact(): Promise<void> {
    const closed = this.#unusable();
    if (closed) return Promise.reject(closed);
    return new Promise<void>((resolve, reject) => {
      this.#queue.push({ kind: 'compact', resolve, reject });
      this.#kick();
    });
  }

  /**
   * Writes what is queued (with a final fdatasync unless `fsync` is `never`), closes the file
   * and releases the lock. Idempotent. Changes requested after `close()` reject with CLOSED.
   */
  close(): Promise<void> {
    switch (this.#state) {
      case 'closing':
        return this.#closing!;
      case 'opening':
        return this.#opening!.then(
          () => this.close(),
          () => undefined,
        );
      case 'open': {
        this.#state = 'closing';
        const closing = this.#doClose().finally(() => {
          this.#state = 'closed';
          this.#closing = undefined;
        });
        this.#closing = closing;
        return closing;
      }
      default:
        return Promise.resolve();
    }
  }

  /** Sizes and counters, for diagnostics and tests. */
  stats(): FileStoreStats {
    return {
      file: this.#file,
      fileBytes: this.#size,
      liveBytes: this.#live,
      entries: this.#entries.size,
      dedupStreams: this.#dedup.size,
      compactions: this.#compactions,
      syncs: this.#syncs,
      truncatedBytes: this.#truncated,
    };
  }

  // ---- open / close -------------------------------------------------------------------------

  async #doOpen(): Promise<void> {
    const file = await resolveLogPath(this.#path);
    if (openFiles.has(file)) throw storeError('EBUSY', `${file} is already open in this process`);
    openFiles.add(file);
    let locked = false;
    let fh: FileHandle | undefined;
    try {
      await mkdir(dirname(file), { recursive: true });
      await acquireLock(file);
      locked = true;
      // A compaction interrupted by a crash leaves its temporary file; the log itself is whole.
      await rm(`${file}.compact`, { force: true });
      this.#file = file;
      this.#reset();
      this.#failed = undefined;
      this.#truncated = 0;
      fh = await openExisting(file);
      if (!fh) {
        await createLog(file, newOrigin());
        fh = await open(file, 'r+');
      }
      const size = (await fh.stat()).size;
      const end = await this.#replay(fh, size);
      if (end < size) {
        await fh.truncate(end);
        if (this.#mode !== 'never') await fh.datasync();
        this.#truncated = size - end;
      }
      this.#fh = fh;
      this.#size = end;
      this.#retryCompactionAt = 0;
      if (this.#worthCompacting()) await this.#compactQuietly();
    } catch (err) {
      await (this.#fh ?? fh)?.close().catch(() => {});
      this.#fh = undefined;
      this.#reset();
      if (locked) await rm(`${file}.lock`, { force: true }).catch(() => {});
      openFiles.delete(file);
      throw err;
    }
  }

  async #doClose(): Promise<void> {
    await this.#whenIdle();
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
    this.#reset();
    await rm(`${this.#file}.lock`, { force: true }).catch(() => {});
    openFiles.delete(this.#file);
    if (error !== undefined) throw error;
  }

  #reset(): void {
    this.#entries.clear();
    this.#seqs.clear();
    this.#dedup.clear();
    this.#origin = '';
    this.#size = 0;
    this.#live = 0;
    this.#dirty = false;
  }

  #snapshot(): OutboxState {
    return {
      origin: this.#origin,
      entries: [...this.#entries.values()].map((e) => e.entry),
      seqs: new Map(this.#seqs),
      dedup: new Map([...this.#dedup].map(([k, v]) => [k, v.seq])),
    };
  }

  #unusable(): Error | undefined {
    if (this.#state === 'new' || this.#state === 'opening') return new ClosedError('file store is not open (await open() first)');
    if (this.#state !== 'open') return new ClosedError('file store is closed');
    if (this.#failed) return new ClosedError(`file store refuses changes after a failed write (reopen it): ${this.#failed.message}`, { cause: this.#failed });
    return undefined;
  }

  // ---- replay -------------------------------------------------------------------------------

  /** Applies every intact record; returns the offset just past the last one. */
  async #replay(fh: FileHandle, size: number): Promise<number> {
    const reader = new LogReader(fh, size);
    let pos = 0;
    while (pos < size) {
      const head = await reader.bytes(pos, HEAD);
      if (!head) break;
      const len = head.readUInt32LE(4);
      if (len < 1 || len > MAX_RECORD) break;
      const rec = await reader.bytes(pos, HEAD + len);
      if (!rec || crc32(rec.subarray(4)) !== rec.readUInt32LE(0)) break;
      const r = decodeRecord(rec.subarray(HEAD), pos);
      if ((pos === 0) !== (r.type === Rec.Header)) {
        throw storeError('EBADLOG', pos === 0 ? `${this.#file} is not a missive outbox log` : `${this.#file}: header record at byte ${pos}`);
      }
      this.#applyRecord(r, rec.length);
      pos += rec.length;
    }
    if (pos === 0) throw storeError('EBADLOG', `${this.#file} is not a missive outbox log (no valid header record)`);
    return pos;
  }

  #applyRecord(r: Decoded, size: number): void {
    switch (r.type) {
      case Rec.Header:
        if (r.version !== VERSION) throw storeError('EBADLOG', `${this.#file}: unsupported log version ${r.version}`);
        this.#origin = r.origin;
        this.#live += size;
        break;
      case Rec.Append:
        this.#applyAppend(r.entry, size);
        break;
      case Rec.Ack:
        this.#applyAck(r.id);
        break;
      case Rec.Dedup:
        this.#applyDedup(r.key, r.seq, size);
        break;
      case Rec.Seq:
        this.#noteSeq(r.dest, r.seq);
        break;
    }
  }

  // ---- in-memory state (applied once a record is in the file) -------------------------------

  #applyAppend(entry: OutboxEntry, size: number): void {
    const old = this.#entries.get(entry.id);
    if (old) this.#live -= old.size;
    this.#entries.set(entry.id, { entry, size });
    this.#live += size;
    this.#noteSeq(entry.dest, entry.seq);
  }

  #applyAck(id: string): void {
    const e = this.#entries.get(id);
    if (!e) return;
    this.#entries.delete(id);
    this.#live -= e.size;
  }

  #applyDedup(key: string, seq: number, size: number): void {
    const old = this.#dedup.get(key);
    if (old) {
      this.#dedup.delete(key);
      this.#live -= old.size;
    }
    this.#dedup.set(key, { seq, size });
    this.#live += size;
    if (this.#dedup.size > this.#maxDedup) {
      const [oldest, v] = this.#dedup.entries().next().value!;
      this.#dedup.delete(oldest);
      this.#live -= v.size;
    }
  }

  /** Sequence numbers only grow; a compacted log keeps one Seq record per destination. */
  #noteSeq(dest: string, seq: number): void {
    const cur = this.#seqs.get(dest);
    if (cur === undefined) this.#live += HEAD + 9 + Buffer.byteLength(dest);
    if (cur === undefined || seq > cur) this.#seqs.set(dest, seq);
  }

  // ---- the write queue ----------------------------------------------------------------------

  #write(rec: Buffer, apply: () => void): Promise<void> {
    return new Promise<void>((resolve, reject) => {
      this.#queue.push({ kind: 'write', rec, apply, resolve, reject });
      this.#kick();
    });
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
        if (head?.kind === 'compact') {
          this.#queue.shift();
          await this.#compact().then(head.resolve, head.reject);
        } else if (head) {
          await this.#writeBatch(this.#takeBatch());
        } else if (this.#syncWanted) {
          this.#syncWanted = false;
          if (this.#dirty && !this.#failed) await this.#sync().catch((err: unknown) => this.#fail(err));
        } else break;
        if (this.#worthCompacting()) await this.#compactQuietly();
      }
    } finally {
      this.#draining = false;
      for (const w of this.#idleWaiters.splice(0)) w();
    }
  }

  #whenIdle(): Promise<void> {
    return this.#draining ? new Promise((resolve) => this.#idleWaiters.push(resolve)) : Promise.resolve();
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
      const err = this.#unusable() ?? new ClosedError('file store is closed');
      for (const op of batch) op.reject(err);
      return;
    }
    const buf = batch.length === 1 ? batch[0]!.rec : Buffer.concat(batch.map((op) => op.rec));
    try {
      await writeAll(fh, buf, this.#size);
    } catch (err) {
      // Part of the batch may have reached the file: cut it off, so the next write follows the
      // last whole record. If even that fails, the file is in an unknown state.
      await fh.truncate(this.#size).catch((e: unknown) => this.#fail(e));
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
        this.#fail(err);
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

  #fail(err: unknown): void {
    this.#failed ??= err instanceof Error ? err : new Error(String(err));
  }

  // ---- compaction ---------------------------------------------------------------------------

  #worthCompacting(): boolean {
    const dead = this.#size - this.#live;
    return !this.#failed && this.#size >= this.#retryCompactionAt && dead > this.#compactMin && dead > this.#compactRatio * this.#size;
  }

  /** An automatic compaction: on failure the old log stays in use and it is retried later. */
  async #compactQuietly(): Promise<void> {
    try {
      await this.#compact();
    } catch {
      this.#retryCompactionAt = this.#size + this.#compactMin;
    }
  }

  /**
   * Writes live state to `<log>.compact`, syncs it, renames it over the log and syncs the
   * directory. Runs inside the drain loop (or before open resolves), so no change is applied
   * meanwhile. Until the rename the old log is untouched; a crash at any point leaves either it
   * or the new file, whole.
   */
  async #compact(): Promise<void> {
    if (this.#failed) throw this.#unusable()!;
    const file = this.#file;
    const tmp = `${file}.compact`;
    let out: FileHandle | undefined = await open(tmp, 'w');
    let bytes = 0;
    try {
      const w = new ChunkWriter(out);
      await w.add(encodeHeader(this.#origin));
      for (const [dest, seq] of this.#seqs) await w.add(encodeString(Rec.Seq, dest, seq));
      // Dedup in recency order, so a replay rebuilds the same eviction order.
      for (const [key, { seq }] of this.#dedup) await w.add(encodeString(Rec.Dedup, key, seq));
      for (const { entry } of this.#entries.values()) await w.add(encodeAppend(entry));
      bytes = await w.end();
      await out.datasync();
      await out.close();
      out = undefined;
      await rename(tmp, file);
    } catch (err) {
      await out?.close().catch(() => {});
      await rm(tmp, { force: true }).catch(() => {});
      throw err;
    }
    // The log is now the new file; the old handle points at the unlinked old one.
    const old = this.#fh;
    this.#fh = undefined;
    await old?.close().catch(() => {});
    try {
      await syncDir(dirname(file));
      this.#fh = await open(file, 'r+');
    } catch (err) {
      this.#fail(err);
      throw err;
    }
    this.#size = bytes;
    this.#live = bytes;
    this.#dirty = false;
    this.#compactions++;
  }
}

// ---- records --------------------------------------------------------------------------------

type Decoded =
  | { type: typeof Rec.Header; version: number; origin: string }
  | { type: typeof Rec.Append; entry: OutboxEntry }
  | { type: typeof Rec.Ack; id: string }
  | { type: typeof Rec.Dedup; key: string; seq: number }
  | { type: typeof Rec.Seq; dest: string; seq: number };

/** A record around a payload of `n` bytes that `fill` writes from offset 8. */
function record(n: number, fill: (b: Buffer) => void): Buffer {
  if (n > MAX_RECORD) throw new LimitError(`outbox record of ${n} bytes exceeds the file store's ${MAX_RECORD}`);
  const b = Buffer.allocUnsafe(HEAD + n);
  b.writeUInt32LE(n, 4);
  fill(b);
  b.writeUInt32LE(crc32(b.subarray(4)), 0);
  return b;
}

function encodeHeader(origin: string): Buffer {
  const n = Buffer.byteLength(origin);
  return record(2 + MAGIC.length + n, (b) => {
    b[HEAD] = Rec.Header;
    b.write(MAGIC, HEAD + 1, 'latin1');
    b[HEAD + 1 + MAGIC.length] = VERSION;
    b.write(origin, HEAD + 2 + MAGIC.length, n, 'utf8');
  });
}

/** Append: type | seq f64 | sentAt f64 | flags u32 | id, to, dest (u32 length + UTF-8 each) | body. */
function encodeAppend(e: OutboxEntry): Buffer {
  if (
    typeof e.id !== 'string' ||
    typeof e.to !== 'string' ||
    typeof e.dest !== 'string' ||
    typeof e.seq !== 'number' ||
    typeof e.sentAt !== 'number' ||
    !Number.isInteger(e.flags) ||
    e.flags < 0 ||
    e.flags > 0xffffffff ||
    !(e.body instanceof Uint8Array)
  ) {
    throw new TypeError('invalid outbox entry');
  }
  const id = Buffer.byteLength(e.id);
  const to = Buffer.byteLength(e.to);
  const dest = Buffer.byteLength(e.dest);
  return record(1 + 20 + 12 + id + to + dest + e.body.length, (b) => {
    let o = HEAD;
    b[o++] = Rec.Append;
    o = b.writeDoubleLE(e.seq, o);
    o = b.writeDoubleLE(e.sentAt, o);
    o = b.writeUInt32LE(e.flags, o);
    o = putString(b, o, e.id, id);
    o = putString(b, o, e.to, to);
    o = putString(b, o, e.dest, dest);
    b.set(e.body, o);
  });
}

/** Ack: type | id. Dedup and Seq: type | seq f64 | key or dest. The string runs to the end. */
function encodeString(type: number, s: string, seq?: number): Buffer {
  const n = Buffer.byteLength(s);
  const at = seq === undefined ? 1 : 9;
  return record(at + n, (b) => {
    b[HEAD] = type;
    if (seq !== undefined) b.writeDoubleLE(seq, HEAD + 1);
    b.write(s, HEAD + at, n, 'utf8');
  });
}

function putString(b: Buffer, o: number, s: string, n: number): number {
  b.writeUInt32LE(n, o);
  b.write(s, o + 4, n, 'utf8');
  return o + 4 + n;
}

/** Decodes a payload whose checksum matched; a malformed one is a bug or tampering: EBADLOG. */
function decodeRecord(p: Buffer, at: number): Decoded {
  const bad = (): Error => storeError('EBADLOG', `malformed record (type ${String(p[0])}) at byte ${at}`);
  let o = 1;
  const need = (n: number): void => {
    if (o + n > p.length) throw bad();
  };
  const str = (): string => {
    need(4);
    const n = p.readUInt32LE(o);
    o += 4;
    need(n);
    o += n;
    return p.toString('utf8', o - n, o);
  };
  switch (p[0]) {
    case Rec.Header:
      need(MAGIC.length + 1);
      if (p.toString('latin1', 1, 1 + MAGIC.length) !== MAGIC) throw storeError('EBADLOG', 'not a missive outbox log');
      return { type: Rec.Header, version: p[1 + MAGIC.length]!, origin: p.toString('utf8', 2 + MAGIC.length) };
    case Rec.Append: {
      need(20);
      const seq = p.readDoubleLE(1);
      const sentAt = p.readDoubleLE(9);
      const flags = p.readUInt32LE(17);
      o = 21;
      const id = str();
      const to = str();
      const dest = str();
      // A copy, so the read buffer (the whole chunk) is not kept alive by a body.
      const body = new Uint8Array(p.subarray(o));
      return { type: Rec.Append, entry: { id, to, dest, seq, sentAt, body, flags } };
    }
    case Rec.Ack:
      return { type: Rec.Ack, id: p.toString('utf8', 1) };
    case Rec.Dedup:
    case Rec.Seq: {
      need(8);
      const seq = p.readDoubleLE(1);
      const s = p.toString('utf8', 9);
      return p[0] === Rec.Dedup ? { type: Rec.Dedup, key: s, seq } : { type: Rec.Seq, dest: s, seq };
    }
    default:
      throw storeError('EBADLOG', `unknown record type ${String(p[0])} at byte ${at}`);
  }
}

// ---- CRC-32 ---------------------------------------------------------------------------------

let table: Uint32Array | undefined;

/**
 * CRC-32 (IEEE, as zlib), for Node versions without `zlib.crc32` (before 20.15).
 * @internal exported for tests
 */
export function crc32Js(data: Uint8Array, value = 0): number {
  if (!table) {
    table = new Uint32Array(256);
    for (let n = 0; n < 256; n++) {
      let c = n;
      for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
      table[n] = c >>> 0;
    }
  }
  let c = ~value >>> 0;
  for (let i = 0; i < data.length; i++) c = table[(c ^ data[i]!) & 0xff]! ^ (c >>> 8);
  return ~c >>> 0;
}

const crc32: (data: Uint8Array, value?: number) => number = (zlib as { crc32?: (data: Uint8Array, value?: number) => number }).crc32 ?? crc32Js;

// ---- file helpers ---------------------------------------------------------------------------

/** Reads a file in 1 MiB chunks; a record straddling two chunks is read again whole. */
class LogReader {
  #buf = Buffer.alloc(0);
  #at = 0;
  constructor(
    readonly fh: FileHandle,
    readonly size: number,
  ) {}

  /** The `n` bytes at `pos`, or undefined if the file ends first. */
  async bytes(pos: number, n: number): Promise<Buffer | undefined> {
    if (pos + n > this.size) return undefined;
    if (pos >= this.#at && pos + n <= this.#at + this.#buf.length) return this.#buf.subarray(pos - this.#at, pos - this.#at + n);
    const len = Math.min(Math.max(n, READ_CHUNK), this.size - pos);
    const buf = Buffer.allocUnsafe(len);
    let got = 0;
    while (got < len) {
      const { bytesRead } = await this.fh.read(buf, got, len - got, pos + got);
      if (bytesRead === 0) break;
      got += bytesRead;
    }
    if (got < n) return undefined;
    this.#buf = buf.subarray(0, got);
    this.#at = pos;
    return this.#buf.subarray(0, n);
  }
}

/** Collects records into writes of about BATCH_BYTES. */
class ChunkWriter {
  #parts: Buffer[] = [];
  #pending = 0;
  #written = 0;
  constructor(readonly fh: FileHandle) {}

  async add(b: Buffer): Promise<void> {
    this.#parts.push(b);
    this.#pending += b.length;
    if (this.#pending >= BATCH_BYTES) await this.#flush();
  }

  /** Writes the rest; resolves with the bytes written in all. */
  async end(): Promise<number> {
    await this.#flush();
    return this.#written;
  }

  async #flush(): Promise<void> {
    if (this.#pending === 0) return;
    const buf = Buffer.concat(this.#parts, this.#pending);
    this.#parts = [];
    this.#pending = 0;
    await writeAll(this.fh, buf, this.#written);
    this.#written += buf.length;
  }
}

async function writeAll(fh: FileHandle, buf: Buffer, position: number): Promise<void> {
  let done = 0;
  while (done < buf.length) {
    const { bytesWritten } = await fh.write(buf, done, buf.length - done, position + done);
    if (bytesWritten <= 0) throw new Error('write made no progress');
    done += bytesWritten;
  }
}

/** The log's absolute path: `path` itself, or `outbox.log` in it if it is a directory. */
async function resolveLogPath(path: string): Promise<string> {
  const abs = resolve(path);
  const st = await stat(abs).catch((err: unknown) => {
    if (errorCode(err) === 'ENOENT') return undefined;
    throw err;
  });
  if (st?.isDirectory() || (!st && /[\\/]$/.test(path))) return join(abs, FILE_STORE_LOG_NAME);
  if (st && !st.isFile()) throw storeError('EBADLOG', `${abs} is not a regular file or a directory`);
  return abs;
}

/** Opens an existing, non-empty log; undefined if there is none yet. */
async function openExisting(file: string): Promise<FileHandle | undefined> {
  let fh: FileHandle;
  try {
    fh = await open(file, 'r+');
  } catch (err) {
    if (errorCode(err) === 'ENOENT') return undefined;
    throw err;
  }
  if ((await fh.stat()).size > 0) return fh;
  await fh.close();
  return undefined;
}

/** Creates the log with its header atomically (write aside, sync, rename), so it is never torn. */
async function createLog(file: string, origin: string): Promise<void> {
  const tmp = `${file}.compact`;
  const fh = await open(tmp, 'w');
  try {
    await writeAll(fh, encodeHeader(origin), 0);
    await fh.datasync();
  } finally {
    await fh.close();
  }
  await rename(tmp, file);
  await syncDir(dirname(file));
}

/** Makes a rename or a new file in `dir` durable. Not possible (nor needed) on Windows. */
async function syncDir(dir: string): Promise<void> {
  if (process.platform === 'win32') return;
  const fh = await open(dir, 'r');
  try {
    await fh.sync();
  } finally {
    await fh.close();
  }
}

/**
 * Takes `<file>.lock`, created atomically (hard link of a file already holding our pid). A lock
 * whose process is gone (crashed) is taken over; a live owner's is not.
 */
async function acquireLock(file: string): Promise<void> {
  const lock = `${file}.lock`;
  const mine = `${lock}.${process.pid}.${randomBytes(4).toString('hex')}`;
  await writeFile(mine, String(process.pid), { flag: 'wx' });
  try {
    for (let attempt = 0; ; attempt++) {
      try {
        await link(mine, lock);
        return;
      } catch (err) {
        const code = errorCode(err);
        // No hard links on this file system: an exclusive create, briefly empty, must do.
        if (code === 'EPERM' || code === 'ENOTSUP' || code === 'ENOSYS') {
          await writeFile(lock, String(process.pid), { flag: 'wx' });
          return;
        }
        if (code !== 'EEXIST') throw err;
      }
      const owner = Number.parseInt(await readFile(lock, 'utf8').catch(() => ''), 10);
      if (attempt > 0 || (owner > 0 && owner !== process.pid && alive(owner))) {
        throw storeError('EBUSY', `${file} is in use by process ${Number.isNaN(owner) ? '?' : owner} (lock file ${lock})`);
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
    return errorCode(err) === 'EPERM';
  }
}

function newOrigin(): string {
  const b = randomBytes(8);
  return b.readUInt32LE(0).toString(36) + b.readUInt32LE(4).toString(36);
}

function positive(name: string, value: number): number {
  if (typeof value !== 'number' || !(value > 0) || !Number.isFinite(value)) throw new TypeError(`${name} must be a positive number`);
  return value;
}

function errorCode(err: unknown): unknown {
  return err instanceof Error ? (err as NodeJS.ErrnoException).code : undefined;
}

function storeError(code: 'EBUSY' | 'EBADLOG', message: string): Error & { code: string } {
  return Object.assign(new Error(message), { code });
}
