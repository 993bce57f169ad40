/**
 * The FileStore's on-disk format stays what it was: fixtures/outbox-v1.log was written by the
 * FileStore as it stood before its split into file-store/ (every record type: a compaction's
 * header, seq, dedup and append records, then appends, acks and dedup marks after it). It must
 * open to the state it was written with, and the records module must encode each of its records
 * to the same bytes. Logs that are not missive logs are refused with PROTOCOL.
 */
import { open as openFile, copyFile, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { crc32, encodeAck, encodeAppend, encodeDedup, encodeHeader, encodeSeq, HEAD, Rec, replay, type LogRecord } from '../src/file-store/records.js';
import { FileStore, type OutboxEntry } from '../src/index.js';

const fixture = new URL('./fixtures/outbox-v1.log', import.meta.url);
const dirs: string[] = [];
const stores: FileStore[] = [];

afterEach(async () => {
  await Promise.all(stores.splice(0).map((s) => s.close().catch(() => {})));
  await Promise.all(dirs.splice(0).map((d) => rm(d, { recursive: true, force: true })));
});

/** A log file in a fresh temporary directory (removed after the test), holding `bytes`. */
async function logFile(bytes?: Uint8Array): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), 'missive-file-format-'));
  dirs.push(dir);
  const file = join(dir, 'outbox.log');
  if (bytes) await writeFile(file, bytes);
  return file;
}

function fileStore(file: string): FileStore {
  const s = new FileStore(file);
  stores.push(s);
  return s;
}

const origin = '12nxtkzllouej';
const entry = (dest: string, seq: number, body: number[]): OutboxEntry => ({
  id: `${origin}:${seq}:${dest}`,
  to: `${dest}/inbox`,
  dest,
  seq,
  sentAt: 1_700_000_000_000 + seq,
  body: new Uint8Array(body),
  flags: seq % 2,
});
/** What the fixture was written to hold. */
const written = {
  origin,
  entries: [entry('bob', 3, [0xff, 0, 0x80]), entry('dave', 7, [9, 9])],
  seqs: new Map([
    ['bob', 3],
    ['carol', 2],
    ['dave', 7],
  ]),
  dedup: new Map([
    ['y\u0000me', 2],
    ['x\u0000me', 5],
    ['z\u0000me', 1],
  ]),
};

/** A record around any payload, with a valid checksum. */
function frame(payload: Uint8Array): Buffer {
  const b = Buffer.alloc(HEAD + payload.length);
  b.writeUInt32LE(payload.length, 4);
  b.set(payload, HEAD);
  b.writeUInt32LE(crc32(b.subarray(4)), 0);
  return b;
}

function encode(r: LogRecord): Buffer {
  switch (r.type) {
    case Rec.Header:
      return encodeHeader(r.origin, r.version);
    case Rec.Append:
      return encodeAppend(r.entry);
    case Rec.Ack:
      return encodeAck(r.id);
    case Rec.Dedup:
      return encodeDedup(r.key, r.seq);
    case Rec.Seq:
      return encodeSeq(r.dest, r.seq);
  }
}

describe('FileStore - format 1', () => {
  it('records - every record of a format-1 log re-encodes to its own bytes', async () => {
    const bytes = await readFile(fixture);
    const fh = await openFile(fixture, 'r');
    const records: LogRecord[] = [];
    try {
      expect(await replay(fh, bytes.length, 'outbox-v1.log', (r) => records.push(r))).toBe(bytes.length);
    } finally {
      await fh.close();
    }
    expect(new Set(records.map((r) => r.type))).toEqual(new Set(Object.values(Rec)));
    expect(Buffer.concat(records.map(encode)).equals(bytes)).toBe(true);
  });

  it('open - a log written by the FileStore before its split opens to the state it was written with, and takes more changes', async () => {
    const file = await logFile();
    await copyFile(fixture, file);
    const s = fileStore(file);
    expect(await s.open()).toEqual(written);
    expect(s.stats()).toMatchObject({ truncatedBytes: 0, fileBytes: (await readFile(fixture)).length });
    await s.append(entry('bob', 4, [1]));
    await s.ack(written.entries[0]!.id);
    await s.setDedup('y\u0000me', 3);
    await s.compact();
    await s.close();
    const again = await fileStore(file).open();
    expect(again).toEqual({
      origin,
      entries: [written.entries[1], entry('bob', 4, [1])],
      seqs: new Map([...written.seqs, ['bob', 4]]),
      dedup: new Map([
        ['x\u0000me', 5],
        ['z\u0000me', 1],
        ['y\u0000me', 3],
      ]),
    });
  });

  it('open - refuses with PROTOCOL, and leaves untouched, a log of another version, a second header, or a record whose checksum holds but whose fields do not', async () => {
    const header = encodeHeader(origin);
    const logs: [string, Buffer][] = [
      ['version 2', encodeHeader(origin, 2)],
      ['a header in the middle', Buffer.concat([header, encodeAck('x'), header])],
      ['an append cut inside its fields', Buffer.concat([header, frame(new Uint8Array([Rec.Append, 1, 2, 3]))])],
      ['an append whose id runs past the record', Buffer.concat([header, frame(Buffer.concat([Buffer.from([Rec.Append]), Buffer.alloc(20), Buffer.from([0xff, 0, 0, 0])]))])],
      ['a dedup record without its seq', Buffer.concat([header, frame(new Uint8Array([Rec.Dedup, 1]))])],
      ['an unknown record type', Buffer.concat([header, frame(new Uint8Array([9, 0]))])],
      ['a first record that is not a header', encodeAck('x')],
      ['a header with another magic', frame(Buffer.from('\x01missive-inbox!\x01o'))],
    ];
    for (const [what, bytes] of logs) {
      const file = await logFile(bytes);
      const s = fileStore(file);
      await expect(s.open(), what).rejects.toMatchObject({ name: 'ProtocolError', code: 'PROTOCOL' });
      expect((await readFile(file)).equals(bytes), what).toBe(true);
      // The refusal released the log: another store gets the same answer, not NAME_TAKEN.
      await expect(fileStore(file).open(), what).rejects.toMatchObject({ code: 'PROTOCOL' });
    }
  });
});
