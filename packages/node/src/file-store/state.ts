/**
 * What a FileStore's log replays to: the origin, the unacked entries, the sequence numbers and
 * the receiver dedup marks (in core's DedupTable, the one bounded model every store shares), and
 * how many bytes of the log are still live. A change is applied here only once its record is in
 * the file, and replay applies the same records the same way, so the two cannot drift apart.
 */
import type { OutboxEntry, OutboxState } from '@missive/core';
import { DedupTable } from '@missive/core/internal';
import { encodeAppend, encodeDedup, encodeHeader, encodeSeq, markRecordBytes, Rec, type LogRecord } from './records.js';

export class LogState {
  origin = '';
  /** Unacked entries in send order, with the size of their append record. */
  readonly entries = new Map<string, { entry: OutboxEntry; size: number }>();
  /** Last sequence number per destination; only ever raised. */
  readonly seqs = new Map<string, number>();
  readonly dedup: DedupTable;
  /** Bytes a compaction would write: the header, one seq record per destination, the dedup marks and the entries. */
  live = 0;

  constructor(maxDedupStreams: number) {
    this.dedup = new DedupTable(maxDedupStreams);
  }

  /** Applies a replayed record of `size` bytes. */
  apply(r: LogRecord, size: number): void {
    switch (r.type) {
      case Rec.Header:
        this.origin = r.origin;
        this.live += size;
        break;
      case Rec.Append:
        this.append(r.entry, size);
        break;
      case Rec.Ack:
        this.ack(r.id);
        break;
      case Rec.Dedup:
        this.setDedup(r.key, r.seq);
        break;
      case Rec.Seq:
        this.noteSeq(r.dest, r.seq);
        break;
    }
  }

  /** Adds (or replaces in place) an entry whose append record is `size` bytes. */
  append(entry: OutboxEntry, size: number): void {
    const old = this.entries.get(entry.id);
    if (old) this.live -= old.size;
    this.entries.set(entry.id, { entry, size });
    this.live += size;
    this.noteSeq(entry.dest, entry.seq);
  }

  ack(id: string): void {
    const e = this.entries.get(id);
    if (!e) return;
    this.entries.delete(id);
    this.live -= e.size;
  }

  /** Sets a dedup mark; the stream the bound makes the table forget stops counting as live. */
  setDedup(key: string, seq: number): void {
    if (this.dedup.has(key)) this.live -= markRecordBytes(key);
    const forgotten = this.dedup.set(key, seq);
    this.live += markRecordBytes(key);
    if (forgotten !== undefined) this.live -= markRecordBytes(forgotten);
  }

  /** Raises a destination's sequence number; a compacted log keeps one seq record per destination. */
  noteSeq(dest: string, seq: number): void {
    const cur = this.seqs.get(dest);
    if (cur === undefined) this.live += markRecordBytes(dest);
    if (cur === undefined || seq > cur) this.seqs.set(dest, seq);
  }

  /** The state as `open()` hands it out. */
  snapshot(): OutboxState {
    return {
      origin: this.origin,
      entries: [...this.entries.values()].map((e) => e.entry),
      seqs: new Map(this.seqs),
      dedup: new Map(this.dedup.entries()),
    };
  }

  /**
   * The records of a compacted log, `live` bytes in all: the header, a seq record per
   * destination, the dedup marks least recently updated first (so a replay rebuilds the same
   * order of forgetting), then the entries in send order.
   */
  *records(): Generator<Buffer> {
    yield encodeHeader(this.origin);
    for (const [dest, seq] of this.seqs) yield encodeSeq(dest, seq);
    for (const [key, seq] of this.dedup.entries()) yield encodeDedup(key, seq);
    for (const { entry } of this.entries.values()) yield encodeAppend(entry);
  }

  clear(): void {
    this.origin = '';
    this.entries.clear();
    this.seqs.clear();
    this.dedup.clear();
    this.live = 0;
  }
}
