/**
 * FileStore: the durable outbox in one append-only log. State survives close/reopen; a torn tail
 * is cut off; compaction keeps state, also with changes racing it; every fsync mode works; a
 * writer SIGKILLed at random points reopens to a consistent prefix holding every change it saw
 * resolve; a full disk rejects `send`; a Peer's receiver keeps its dedup state across restarts.
 */
import { execFile, fork, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { mkdtemp, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import * as zlib from 'node:zlib';
import { afterEach, describe, expect, it } from 'vitest';
import { crc32Js } from '../src/file-store/records.js';
import {
  createPeer,
  FileStore,
  memoryTransportPair,
  Router,
  type FileStoreOptions,
  type FsyncMode,
  type OutboxEntry,
  type OutboxState,
  type Peer,
  type Transport,
} from '../src/index.js';
import { entryFor } from './fixtures/file-store-entries.js';
import type { WriterOptions } from './fixtures/file-store-writer.js';

const KiB = 1024;
const dirs: string[] = [];
const stores: FileStore[] = [];
const children: ChildProcess[] = [];

afterEach(async () => {
  for (const c of children.splice(0)) if (c.exitCode === null && c.signalCode === null) c.kill('SIGKILL');
  await Promise.all(stores.splice(0).map((s) => s.close().catch(() => {})));
  await Promise.all(dirs.splice(0).map((d) => rm(d, { recursive: true, force: true })));
});

async function tempDir(): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), 'missive-file-store-'));
  dirs.push(dir);
  return dir;
}

/** A FileStore closed after the test. */
function fileStore(path: string, options?: FileStoreOptions): FileStore {
  const s = new FileStore(path, options);
  stores.push(s);
  return s;
}

/** Closes `s` and opens a new store on the same file: what a restarted process would see. */
async function reopen(s: FileStore, options?: FileStoreOptions): Promise<[FileStore, OutboxState]> {
  const { file } = s.stats();
  await s.close();
  const next = fileStore(file, options);
  return [next, await next.open()];
}

/** A small entry (64-byte body) to `dest`. */
function small(origin: string, dest: string, seq: number): OutboxEntry {
  return entryFor(origin, dest, seq, 64);
}

describe('FileStore - state across close and reopen', () => {
  it('open - creates a log with a random origin that a reopen keeps', async () => {
    const dir = await tempDir();
    const a = fileStore(join(dir, 'a.log'));
    const first = await a.open();
    expect(first).toEqual({ origin: expect.stringMatching(/^[0-9a-z]{2,}$/), entries: [], seqs: new Map(), dedup: new Map() });
    const [, again] = await reopen(a);
    expect(again.origin).toBe(first.origin);
    const other = await fileStore(join(dir, 'b.log')).open();
    expect(other.origin).not.toBe(first.origin);
  });

  it('append, ack and setDedup - survive a reopen, entries in append order', async () => {
    const s = fileStore(join(await tempDir(), 'out.log'));
    const { origin } = await s.open();
    const sent = [small(origin, 'bob', 1), small(origin, 'carol', 1), small(origin, 'bob', 2), small(origin, 'carol', 2), small(origin, 'bob', 3)];
    for (const e of sent) await s.append(e);
    await s.ack(sent[2]!.id);
    await s.ack(sent[1]!.id);
    await s.ack('no-such-id');
    await s.setDedup('x\u0000me', 7);
    await s.setDedup('y\u0000me', 3);
    await s.setDedup('x\u0000me', 9);

    const [, state] = await reopen(s);
    expect(state.origin).toBe(origin);
    expect(state.entries).toEqual([sent[0], sent[3], sent[4]]);
    expect(state.seqs).toEqual(new Map([['bob', 3], ['carol', 2]]));
    // Least recently updated first: the order in which a full dedup map forgets streams.
    expect([...state.dedup]).toEqual([['y\u0000me', 3], ['x\u0000me', 9]]);
  });

  it('seqs - survive acks of every entry and compaction, so sequence numbers are never reused', async () => {
    const s = fileStore(join(await tempDir(), 'out.log'));
    const { origin } = await s.open();
    for (let seq = 1; seq <= 3; seq++) await s.append(small(origin, 'bob', seq));
    for (let seq = 1; seq <= 3; seq++) await s.ack(small(origin, 'bob', seq).id);
    const [s2, state] = await reopen(s);
    expect(state.entries).toEqual([]);
    expect(state.seqs).toEqual(new Map([['bob', 3]]));
    await s2.compact();
    expect(s2.stats().entries).toBe(0);
    const [, compacted] = await reopen(s2);
    expect(compacted.seqs).toEqual(new Map([['bob', 3]]));
    expect(compacted.origin).toBe(origin);
  });

  it('open - called again while open resolves with the current state; after close it reopens', async () => {
    const s = fileStore(join(await tempDir(), 'out.log'));
    const { origin } = await s.open();
    const e = small(origin, 'bob', 1);
    void s.append(e);
    expect((await s.open()).entries).toEqual([e]);
    await s.close();
    const again = await s.open();
    expect(again.origin).toBe(origin);
    expect(again.entries).toEqual([e]);
  });

  it('append, ack, setDedup and compact - reject with CLOSED before open and after close', async () => {
    const s = fileStore(join(await tempDir(), 'out.log'));
    const e = small('o', 'bob', 1);
    await expect(s.append(e)).rejects.toMatchObject({ code: 'CLOSED', message: expect.stringContaining('not open') });
    const { origin } = await s.open();
    const closing = s.close();
    await expect(s.append(small(origin, 'bob', 1))).rejects.toMatchObject({ code: 'CLOSED' });
    await closing;
    await expect(s.append(small(origin, 'bob', 1))).rejects.toMatchObject({ code: 'CLOSED', message: 'file store is closed' });
    await expect(s.ack(e.id)).rejects.toMatchObject({ code: 'CLOSED' });
    await expect(s.setDedup('k', 1)).rejects.toMatchObject({ code: 'CLOSED' });
    await expect(s.compact()).rejects.toMatchObject({ code: 'CLOSED' });
    await expect(s.close()).resolves.toBeUndefined();
  });

  it('close - writes changes still queued before it resolves', async () => {
    const s = fileStore(join(await tempDir(), 'out.log'), { fsync: 'never' });
    const { origin } = await s.open();
    const appends = Array.from({ length: 100 }, (_, i) => s.append(small(origin, 'bob', i + 1)));
    await s.close();
    await Promise.all(appends);
    const [, state] = await reopen(s);
    expect(state.entries.map((e) => e.seq)).toEqual(Array.from({ length: 100 }, (_, i) => i + 1));
  });

  it('path - a directory holds outbox.log, and missing directories are created', async () => {
    const dir = await tempDir();
    const s = fileStore(join(dir, 'a', 'b') + '/');
    await s.open();
    expect(s.stats().file).toBe(join(dir, 'a', 'b', 'outbox.log'));
    await s.close();
    const t = fileStore(join(dir, 'a', 'b'));
    await t.open();
    expect(t.stats().file).toBe(join(dir, 'a', 'b', 'outbox.log'));
  });

  it('open - refuses a file that is not a missive log with PROTOCOL and leaves it untouched', async () => {
    const file = join(await tempDir(), 'notes.txt');
    await writeFile(file, 'my precious notes\n');
    await expect(fileStore(file).open()).rejects.toMatchObject({ name: 'ProtocolError', code: 'PROTOCOL' });
    expect(await readFile(file, 'utf8')).toBe('my precious notes\n');
  });

  it('open - refuses a log already open in this process with NAME_TAKEN', async () => {
    const file = join(await tempDir(), 'out.log');
    await fileStore(file).open();
    await expect(fileStore(file).open()).rejects.toMatchObject({ name: 'NameTakenError', code: 'NAME_TAKEN' });
  });

  it('open - rejects with the file system error when the path cannot be created', async () => {
    const dir = await tempDir();
    await writeFile(join(dir, 'plain'), '');
    await expect(fileStore(join(dir, 'plain', 'out.log')).open()).rejects.toMatchObject({ code: 'ENOTDIR' });
  });

  it('append - rejects with LIMIT for a record over 64 MiB and stays usable', async () => {
    const s = fileStore(join(await tempDir(), 'out.log'));
    const { origin } = await s.open();
    const huge = { ...small(origin, 'bob', 1), body: new Uint8Array(64 * KiB * KiB) };
    await expect(s.append(huge)).rejects.toMatchObject({ code: 'LIMIT' });
    await s.append(small(origin, 'bob', 1));
    const [, state] = await reopen(s);
    expect(state.entries).toEqual([small(origin, 'bob', 1)]);
  });

  it('crc32Js - matches zlib.crc32 (the fallback for Node before 20.15)', () => {
    const bytes = new Uint8Array(1000).map((_, i) => (i * 131) & 0xff);
    for (const n of [0, 1, 7, 1000]) expect(crc32Js(bytes.subarray(0, n))).toBe(zlib.crc32(bytes.subarray(0, n)));
    expect(crc32Js(bytes.subarray(500), crc32Js(bytes.subarray(0, 500)))).toBe(zlib.crc32(bytes));
  });
});

describe('FileStore - torn tail', () => {
  /** A log of several records and the file's bytes before and after its last record. */
  async function logWithLastRecord(): Promise<{ file: string; origin: string; before: Buffer; full: Buffer; last: OutboxEntry }> {
    const file = join(await tempDir(), 'out.log');
    const s = fileStore(file);
    const { origin } = await s.open();
    for (let seq = 1; seq <= 4; seq++) await s.append(small(origin, 'bob', seq));
    await s.ack(small(origin, 'bob', 2).id);
    await s.setDedup('peer\u0000me', 5);
    const before = await readFile(file);
    const last = small(origin, 'bob', 5);
    await s.append(last);
    await s.close();
    return { file, origin, before, full: await readFile(file), last };
  }

  const expected = (origin: string): Omit<OutboxState, 'origin'> => ({
    entries: [1, 3, 4].map((seq) => small(origin, 'bob', seq)),
    seqs: new Map([['bob', 4]]),
    dedup: new Map([['peer\u0000me', 5]]),
  });

  it('open - recovers every complete record when the last one is cut at any byte, and cuts the tail off', async () => {
    const { file, origin, before, full } = await logWithLastRecord();
    expect(full.length).toBeGreaterThan(before.length);
    for (let cut = before.length; cut < full.length; cut++) {
      await writeFile(file, full.subarray(0, cut));
      const s = new FileStore(file);
      const state = await s.open();
      expect({ cut, ...state }).toEqual({ cut, origin, ...expected(origin) });
      expect(s.stats().truncatedBytes).toBe(cut - before.length);
      await s.close();
      expect((await stat(file)).size).toBe(before.length);
    }
  });

  it('open - ignores garbage and zeros after the last record; appends then follow the last record', async () => {
    const { file, origin, full, last } = await logWithLastRecord();
    for (const junk of [Buffer.alloc(1), Buffer.alloc(4096), Buffer.from('\x07garbage that is not a record'), Buffer.from([0xff, 0xff, 0xff, 0xff, 0x10, 0, 0, 0, 2])]) {
      await writeFile(file, Buffer.concat([full, junk]));
      const s = fileStore(file);
      const state = await s.open();
      expect(state.entries).toEqual([...expected(origin).entries, last]);
      expect(s.stats().truncatedBytes).toBe(junk.length);
      await s.append(small(origin, 'bob', 6));
      const [s2, again] = await reopen(s);
      expect(again.entries.map((e) => e.seq)).toEqual([1, 3, 4, 5, 6]);
      await s2.close();
    }
  });

  it('open - drops a last record whose bytes were damaged (its checksum fails)', async () => {
    const { file, origin, before, full } = await logWithLastRecord();
    const damaged = Buffer.from(full);
    damaged[full.length - 3] = damaged[full.length - 3]! ^ 0x40; // a bit inside the last body
    await writeFile(file, damaged);
    const s = fileStore(file);
    expect(await s.open()).toEqual({ origin, ...expected(origin) });
    expect(s.stats().truncatedBytes).toBe(full.length - before.length);
  });
});

describe('FileStore - compaction', () => {
  it('compaction - runs by itself once dead bytes pass the threshold, shrinking the file and keeping state', async () => {
    const s = fileStore(join(await tempDir(), 'out.log'), { compactMinBytes: 64 * KiB });
    const { origin } = await s.open();
    const kept: OutboxEntry[] = [];
    for (let seq = 1; seq <= 200; seq++) {
      const e = entryFor(origin, 'bob', seq, 2000);
      await s.append(e);
      await s.setDedup('a\u0000me', seq);
      if (seq % 10 === 0) kept.push(e);
      else await s.ack(e.id);
    }
    const stats = s.stats();
    expect(stats.compactions).toBeGreaterThan(0);
    // What is left is at most the live bytes plus the dead bytes allowed before compacting.
    expect(stats.fileBytes).toBeLessThan(stats.liveBytes + 64 * KiB + 8 * KiB);
    const bodyBytes = kept.reduce((n, e) => n + e.body.length, 0);
    expect(stats.liveBytes).toBeLessThan(bodyBytes + 4 * KiB);
    const [s2, state] = await reopen(s);
    expect(state).toEqual({ origin, entries: kept, seqs: new Map([['bob', 200]]), dedup: new Map([['a\u0000me', 200]]) });
    expect(s2.stats().truncatedBytes).toBe(0);
  });

  it('compact - leaves only live records: fileBytes equals liveBytes and reopening reads the same state', async () => {
    const s = fileStore(join(await tempDir(), 'out.log'), { compactMinBytes: Infinity });
    const { origin } = await s.open();
    for (let seq = 1; seq <= 50; seq++) await s.append(small(origin, seq % 2 ? 'bob' : 'carol', seq));
    for (let seq = 1; seq <= 50; seq += 3) await s.ack(small(origin, seq % 2 ? 'bob' : 'carol', seq).id);
    for (let i = 0; i < 30; i++) await s.setDedup(`s${i % 7}\u0000me`, i);
    const before = await s.open();
    const grown = s.stats().fileBytes;
    await s.compact();
    const stats = s.stats();
    expect(stats.fileBytes).toBeLessThan(grown);
    expect(stats.fileBytes).toBe(stats.liveBytes);
    expect(stats.fileBytes).toBe((await stat(stats.file)).size);
    const [, after] = await reopen(s);
    expect(after).toEqual(before);
    expect([...after.dedup.keys()]).toEqual([...before.dedup.keys()]);
  });

  it('compact - keeps every change made while it runs, in call order', async () => {
    const s = fileStore(join(await tempDir(), 'out.log'), { compactMinBytes: Infinity });
    const { origin } = await s.open();
    const model = new Map<string, OutboxEntry>();
    const ops: Promise<void>[] = [];
    let seq = 0;
    // Rounds of appends, acks and dedup updates with compactions between them, all in flight
    // together, so every compaction has changes queued behind it.
    for (let round = 0; round < 5; round++) {
      for (let i = 0; i < 40; i++) {
        const e = entryFor(origin, 'bob', ++seq, 500);
        model.set(e.id, e);
        ops.push(s.append(e));
        if (seq % 4 !== 0) {
          model.delete(e.id);
          ops.push(s.ack(e.id));
        }
        ops.push(s.setDedup(`r${round}\u0000me`, seq));
      }
      ops.push(s.compact());
    }
    const e = entryFor(origin, 'bob', ++seq, 500);
    model.set(e.id, e);
    ops.push(s.append(e));
    await Promise.all(ops);
    expect(s.stats().compactions).toBe(5);
    const [, state] = await reopen(s);
    expect(state.entries).toEqual([...model.values()]);
    expect(state.seqs).toEqual(new Map([['bob', seq]]));
    expect([...state.dedup]).toEqual([0, 1, 2, 3, 4].map((r) => [`r${r}\u0000me`, (r + 1) * 40]));
  });

  it('open - compacts a log that is mostly dead bytes', async () => {
    const file = join(await tempDir(), 'out.log');
    const s = fileStore(file, { compactMinBytes: Infinity });
    const { origin } = await s.open();
    for (let seq = 1; seq <= 100; seq++) {
      const e = entryFor(origin, 'bob', seq, 2000);
      await s.append(e);
      if (seq !== 100) await s.ack(e.id);
    }
    await s.close();
    const grown = (await stat(file)).size;
    const t = fileStore(file, { compactMinBytes: 16 * KiB });
    const state = await t.open();
    expect(t.stats().compactions).toBe(1);
    expect((await stat(file)).size).toBeLessThan(grown / 10);
    expect(state.entries).toEqual([entryFor(origin, 'bob', 100, 2000)]);
  });

  it('open - removes the temporary file of a compaction cut short by a crash', async () => {
    const file = join(await tempDir(), 'out.log');
    const s = fileStore(file);
    const { origin } = await s.open();
    await s.append(small(origin, 'bob', 1));
    await s.close();
    await writeFile(`${file}.compact`, 'half a compaction');
    const state = await fileStore(file).open();
    expect(state.entries).toEqual([small(origin, 'bob', 1)]);
    await expect(stat(`${file}.compact`)).rejects.toMatchObject({ code: 'ENOENT' });
  });

  it('dedup - keeps at most maxDedupStreams, forgetting the least recently updated', async () => {
    const s = fileStore(join(await tempDir(), 'out.log'), { maxDedupStreams: 3 });
    await s.open();
    for (const [key, seq] of [['a', 1], ['b', 1], ['c', 1], ['a', 2], ['d', 1]] as const) await s.setDedup(key, seq);
    expect(s.stats().dedupStreams).toBe(3);
    const [, state] = await reopen(s, { maxDedupStreams: 3 });
    expect([...state.dedup]).toEqual([['c', 1], ['a', 2], ['d', 1]]);
  });
});

describe('FileStore - fsync modes', () => {
  it.each(['always', 'interval', 'never'] as const)('fsync %s - appends, acks and dedup survive a reopen', async (fsync) => {
    const s = fileStore(join(await tempDir(), 'out.log'), { fsync, fsyncInterval: 10 });
    const { origin } = await s.open();
    await Promise.all(Array.from({ length: 20 }, (_, i) => s.append(small(origin, 'bob', i + 1))));
    await Promise.all(Array.from({ length: 10 }, (_, i) => s.ack(small(origin, 'bob', 2 * i + 1).id)));
    await s.setDedup('k', 3);
    const [, state] = await reopen(s, { fsync });
    expect(state.entries.map((e) => e.seq)).toEqual([2, 4, 6, 8, 10, 12, 14, 16, 18, 20]);
    expect(state.dedup).toEqual(new Map([['k', 3]]));
  });

  it('fsync always - every change resolves after an fdatasync, and changes made together share one', async () => {
    const s = fileStore(join(await tempDir(), 'out.log'), { fsync: 'always' });
    const { origin } = await s.open();
    const syncs = s.stats().syncs;
    await s.append(small(origin, 'bob', 1));
    expect(s.stats().syncs).toBe(syncs + 1);
    await Promise.all(Array.from({ length: 200 }, (_, i) => s.append(small(origin, 'bob', i + 2))));
    expect(s.stats().syncs).toBe(syncs + 2);
  });

  it('fsync interval - resolves before the fdatasync, which follows within the interval', async () => {
    const s = fileStore(join(await tempDir(), 'out.log'), { fsync: 'interval', fsyncInterval: 20 });
    const { origin } = await s.open();
    await s.append(small(origin, 'bob', 1));
    expect(s.stats().syncs).toBe(0);
    await expect.poll(() => s.stats().syncs, { timeout: 2000, interval: 5 }).toBe(1);
  });

  it('fsync never - never calls fdatasync for changes, not even at close', async () => {
    const s = fileStore(join(await tempDir(), 'out.log'), { fsync: 'never' });
    const { origin } = await s.open();
    for (let seq = 1; seq <= 10; seq++) await s.append(small(origin, 'bob', seq));
    await s.close();
    expect(s.stats().syncs).toBe(0);
  });

  it('constructor - throws TypeError for a bad fsync mode or interval', () => {
    expect(() => new FileStore('x', { fsync: 'sometimes' as FsyncMode })).toThrow(TypeError);
    expect(() => new FileStore('x', { fsyncInterval: 0 })).toThrow(TypeError);
    expect(() => new FileStore('')).toThrow(TypeError);
  });
});

describe('FileStore - crashes', () => {
  const writer = fileURLToPath(new URL('./fixtures/file-store-writer.ts', import.meta.url));

  type Report = { ready: true; origin: string; next: number } | { a: number } | { d: number } | { k: number } | { error: string };

  /**
   * Runs the writer until it has reported `killAfter` resolved changes and `whenReady` (called
   * once the writer has the log open) has settled, then SIGKILLs it within 40 ms. The random
   * delay is the crash point: killed right at a report, the writer would always be between two
   * writes (nothing resolves, so nothing is reported, while a write or a compaction runs).
   */
  async function runAndKill(options: WriterOptions, killAfter: number, whenReady: () => Promise<void>) {
    const child = fork(writer, [JSON.stringify(options)], {
      execArgv: ['--conditions=source', '--import', 'tsx'],
      stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
    });
    children.push(child);
    const seen = { origin: '', appended: [] as number[], acked: new Set<number>(), dedup: 0, error: undefined as string | undefined };
    let reports = 0;
    let checked = false;
    let timer: ReturnType<typeof setTimeout> | undefined;
    const kill = (): void => {
      if (!child.killed) child.kill('SIGKILL');
    };
    const killIfDue = (): void => {
      if (seen.error !== undefined) kill();
      else if (checked && reports >= killAfter) timer ??= setTimeout(kill, Math.random() * 40);
    };
    const exited = once(child, 'exit') as Promise<[number | null, NodeJS.Signals | null]>;
    child.on('message', (msg) => {
      const m = msg as Report;
      if ('ready' in m) {
        seen.origin = m.origin;
        void whenReady().finally(() => {
          checked = true;
          killIfDue();
        });
        return;
      }
      if ('error' in m) seen.error = m.error;
      else if ('a' in m) seen.appended.push(m.a);
      else if ('k' in m) seen.acked.add(m.k);
      else seen.dedup = Math.max(seen.dedup, m.d);
      reports++;
      killIfDue();
    });
    const [, signal] = await exited;
    clearTimeout(timer);
    return { ...seen, signal };
  }

  it.each(['always', 'interval', 'never'] as const)(
    'fsync %s - a writer SIGKILLed at random points reopens to a consistent prefix holding every change it saw resolve',
    async (fsync) => {
      const file = join(await tempDir(), 'out.log');
      const dest = 'bob';
      for (let round = 0; round < 3; round++) {
        const killAfter = 200 + Math.floor(Math.random() * 2000);
        let busy: unknown;
        const seen = await runAndKill({ file, fsync, dest }, killAfter, async () => {
          // While the writer holds the log, another process cannot open it.
          if (round > 0) return;
          const other = new FileStore(file);
          busy = await other.open().then(
            () => other.close().then(() => 'opened'),
            (err: { name?: unknown; code?: unknown }) => `${String(err.name)} ${String(err.code)}`,
          );
        });
        if (round === 0) expect(busy).toBe('NameTakenError NAME_TAKEN');
        const why = `round ${round}, killed after ${killAfter} reports`;
        expect(seen.error, why).toBeUndefined();
        expect(seen.signal, why).toBe('SIGKILL');

        const s = fileStore(file, { fsync });
        const state = await s.open();
        expect(state.origin, why).toBe(seen.origin);
        const last = state.seqs.get(dest) ?? 0;
        // Every append the writer saw resolve is there (or was acked), and so is its dedup state.
        expect(last, why).toBeGreaterThanOrEqual(Math.max(0, ...seen.appended));
        expect(state.dedup.get('stream') ?? 0, why).toBeGreaterThanOrEqual(seen.dedup);
        expect(state.dedup.get('stream') ?? 0, why).toBeLessThanOrEqual(last);
        // A prefix: entries in order, intact, none past the last seq, and no holes except acked ones.
        const seqs = state.entries.map((e) => e.seq);
        expect(seqs, why).toEqual([...seqs].sort((x, y) => x - y));
        for (const e of state.entries) {
          const { body, ...fields } = entryFor(seen.origin, dest, e.seq);
          expect({ ...e, body: undefined }, why).toEqual({ ...fields, body: undefined });
          expect(Buffer.from(e.body).equals(body), `${why}: body of entry ${e.seq}`).toBe(true);
        }
        const present = new Set(seqs);
        for (let q = 1; q <= last; q++) if (q % 3 === 0) expect(present.has(q), `${why}: entry ${q}`).toBe(true);
        for (const q of seen.acked) expect(present.has(q), `${why}: acked entry ${q}`).toBe(false);
        expect(seqs.every((q) => q <= last), why).toBe(true);
        await s.close();
      }
    },
    60_000,
  );
});

describe('FileStore - disk full', () => {
  const fixture = fileURLToPath(new URL('./fixtures/file-store-full.ts', import.meta.url));

  it('send - rejects with the write error (EFBIG) when the log cannot grow, and the log stays whole', async () => {
    const file = join(await tempDir(), 'out.log');
    const limitKiB = 64;
    const { stdout } = await promisify(execFile)(
      'bash',
      ['-c', `ulimit -f ${limitKiB} && exec "$0" "$@"`, process.execPath, '--conditions=source', '--import', 'tsx', fixture, file],
      // No tsx cache writes: they would hit the file size limit before the fixture runs.
      { timeout: 30_000, env: { ...process.env, TSX_DISABLE_CACHE: '1' } },
    );
    const result = JSON.parse(stdout.trim().split('\n').pop()!) as { sent: number; code: string; origin: string };
    expect(result.code).toBe('EFBIG');
    expect(result.sent).toBeGreaterThan(10);
    expect((await stat(file)).size).toBeLessThanOrEqual(limitKiB * KiB);

    // The partial record of the failed write was cut off by the store itself, not at reopen.
    const s = fileStore(file);
    const state = await s.open();
    expect(s.stats().truncatedBytes).toBe(0);
    expect(state.origin).toBe(result.origin);
    expect(state.seqs.get('bob')).toBe(result.sent);
    expect(state.entries.every((e) => e.seq <= result.sent)).toBe(true);
  });
});

describe('FileStore - with Peers', () => {
  let router: Router;
  const peers: Peer[] = [];
  const link = (): Transport => {
    const [client, server] = memoryTransportPair();
    router.accept(server);
    return client;
  };
  afterEach(async () => {
    await Promise.all(peers.splice(0).map((p) => p.close()));
    await router.close(1000);
  });
  async function peer(name: string, store: FileStore): Promise<Peer> {
    const p = await createPeer(link(), { name, store });
    peers.push(p);
    return p;
  }

  it('after a full exchange the sender keeps no entries and the receiver has the stream at its last seq', async () => {
    router = new Router();
    const dir = await tempDir();
    const aliceStore = fileStore(join(dir, 'alice'));
    const bobStore = fileStore(join(dir, 'bob'));
    const alice = await peer('alice', aliceStore);
    const bob = await peer('bob', bobStore);
    const ids: string[] = [];
    for (let i = 1; i <= 20; i++) ids.push(await alice.send('bob', { i }, { waitForDelivery: i === 20 }));
    for (let i = 1; i <= 20; i++) expect((await bob.receive({ timeout: 5000 })).body).toEqual({ i });
    await Promise.all([alice.close(), bob.close()]);

    const [, sender] = await reopen(aliceStore);
    expect(sender.entries).toEqual([]);
    expect(sender.seqs).toEqual(new Map([['bob', 20]]));
    expect(ids[19]).toBe(`${sender.origin}:20:bob`);
    const [, receiver] = await reopen(bobStore);
    expect(receiver.dedup).toEqual(new Map([[`${sender.origin}\u0000bob`, 20]]));
  });

  it('a receiver restarted on its FileStore acks resent messages without delivering them again', async () => {
    router = new Router();
    const dir = await tempDir();
    const aliceStore = fileStore(join(dir, 'alice'));
    const bobStore = fileStore(join(dir, 'bob'));
    const alice = await peer('alice', aliceStore);
    const bob = await peer('bob', bobStore);
    for (let i = 1; i <= 10; i++) await alice.send('bob', { i }, { waitForDelivery: true });
    const first = await Promise.all(Array.from({ length: 10 }, () => bob.receive({ timeout: 5000 })));
    await Promise.all([alice.close(), bob.close()]);
    await Promise.all([aliceStore.close(), bobStore.close()]);

    // The sender lost its acks (as if it crashed before they were written): the same ten
    // entries are back in its store, so it sends them all again.
    const resender = fileStore(join(dir, 'alice'));
    const { origin } = await resender.open();
    for (const m of first) {
      const seq = Number(m.id.split(':')[1]);
      await resender.append({ id: m.id, to: 'bob', dest: 'bob', seq, sentAt: m.sentAt, body: new Uint8Array([0x81, 0xa1, 0x69, seq]), flags: 1 });
    }
    const bob2 = await peer('bob', fileStore(join(dir, 'bob')));
    const delivered: string[] = [];
    const alice2 = await peer('alice', resender);
    alice2.on('delivered', ({ id }) => delivered.push(id));
    expect(origin).toBe(first[0]!.id.split(':')[0]);
    await expect.poll(() => delivered.length, { timeout: 5000, interval: 5 }).toBe(10);
    expect(bob2.mailbox().size).toBe(0);
    // The stream goes on after the duplicates: the next message is seq 11, delivered once.
    const id = await alice2.send('bob', { i: 11 }, { waitForDelivery: true });
    expect(id).toBe(`${origin}:11:bob`);
    const next = await bob2.receive({ timeout: 5000 });
    expect(next.body).toEqual({ i: 11 });
    expect(bob2.mailbox().size).toBe(0);
  });
});
