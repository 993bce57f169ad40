/**
 * The live trace: the relay streams events matching this session's filter; the list is
 * virtualised (only the rows on screen exist) and follows the newest event until scrolled up.
 */
import { useVirtualizer } from '@tanstack/react-virtual';
import { useEffect, useRef, useState, useSyncExternalStore, type FormEvent } from 'react';
import type { TraceFilter } from '../api.js';
import { Alert } from '../components/Alert.js';
import { JsonTree } from '../components/JsonTree.js';
import { useSession } from '../context.js';
import { bytes, clock, num } from '../format.js';
import { TRACE_LIMIT, type TraceRow, type TraceStore } from '../trace-store.js';

const KINDS = ['Msg', 'Req', 'Rep', 'Pub', 'Bcast', 'Ack'];
const ROW = 30;

export function Trace({ store }: { store: TraceStore }) {
  const { fail } = useSession();
  useSyncExternalStore(store.listen, store.snapshot);
  const [peer, setPeer] = useState(store.filter.peer ?? '');
  const [address, setAddress] = useState(store.filter.address ?? '');
  const [kinds, setKinds] = useState<string[]>(store.filter.kinds ?? []);
  const [maxRate, setMaxRate] = useState(store.filter.rate === undefined ? '' : String(store.filter.rate));
  const [applying, setApplying] = useState(false);
  const [follow, setFollow] = useState(true);
  const [open, setOpen] = useState<Set<number>>(new Set());
  const scroller = useRef<HTMLDivElement>(null);

  useEffect(() => {
    void store.start();
  }, [store]);

  const events = store.events;
  const virtual = useVirtualizer({
    count: events.length,
    getScrollElement: () => scroller.current,
    estimateSize: () => ROW,
    overscan: 12,
    getItemKey: (i) => events[i]!.seq,
  });

  useEffect(() => {
    if (follow && events.length > 0) virtual.scrollToIndex(events.length - 1, { align: 'end' });
  }, [follow, events, virtual]);

  const apply = async (e: FormEvent) => {
    e.preventDefault();
    const filter: TraceFilter = {};
    if (peer.trim()) filter.peer = peer.trim();
    if (address.trim()) filter.address = address.trim();
    if (kinds.length) filter.kinds = kinds;
    if (maxRate.trim()) filter.rate = Number(maxRate);
    setApplying(true);
    try {
      await store.setFilter(filter);
    } catch (err) {
      fail('Could not set the trace filter', err);
    } finally {
      setApplying(false);
    }
  };

  const onScroll = () => {
    const el = scroller.current;
    if (!el) return;
    const atBottom = el.scrollHeight - el.scrollTop - el.clientHeight < ROW * 1.5;
    if (atBottom !== follow) setFollow(atBottom);
  };

  const toggle = (seq: number) =>
    setOpen((s) => {
      const n = new Set(s);
      if (n.has(seq)) n.delete(seq);
      else n.add(seq);
      return n;
    });

  const status = store.state === 'live' ? (store.paused ? 'Paused' : 'Live') : store.state === 'starting' ? 'Starting…' : store.state === 'error' ? 'Stopped' : 'Idle';

  return (
    <section aria-labelledby="trace-title" className="trace">
      <h1 id="trace-title">Live trace</h1>
      <form className="filters" onSubmit={(e) => void apply(e)} aria-label="Trace filter">
        <div className="field">
          <label htmlFor="trace-peer">Peer</label>
          <input id="trace-peer" value={peer} onChange={(e) => setPeer(e.target.value)} placeholder="name or id" />
        </div>
        <div className="field">
          <label htmlFor="trace-address">Address</label>
          <input id="trace-address" value={address} onChange={(e) => setAddress(e.target.value)} placeholder="bob/inbox" />
        </div>
        <div className="field narrow">
          <label htmlFor="trace-rate">Max events/s</label>
          <input id="trace-rate" type="number" min={1} step={1} value={maxRate} onChange={(e) => setMaxRate(e.target.value)} placeholder="relay default" />
        </div>
        <fieldset className="kinds">
          <legend>Kinds</legend>
          {KINDS.map((k) => (
            <label key={k} className="check">
              <input type="checkbox" checked={kinds.includes(k)} onChange={(e) => setKinds((ks) => (e.target.checked ? [...ks, k] : ks.filter((x) => x !== k)))} /> {k}
            </label>
          ))}
        </fieldset>
        <button type="submit" className="primary" disabled={applying}>
          Apply filter
        </button>
      </form>
      {store.error && <Alert title="The trace stopped">{store.error}</Alert>}
      <div className="toolbar">
        <span role="status" className={`live-status ${status.toLowerCase().replace('…', '')}`}>
          {status}
        </span>
        <button type="button" onClick={() => store.setPaused(!store.paused)} aria-pressed={store.paused}>
          {store.paused ? 'Resume' : 'Pause'}
        </button>
        <button type="button" onClick={() => store.clear()}>
          Clear
        </button>
        {!follow && (
          <button type="button" onClick={() => setFollow(true)}>
            Jump to latest
          </button>
        )}
        <span className="muted small">
          {store.rate !== undefined && `relay sends at most ${num(store.rate)}/s · `}
          {num(events.length)} shown (last {num(TRACE_LIMIT)} kept) · {num(store.received)} received
          {store.paused && store.waiting > 0 && ` · ${num(store.waiting)} waiting`}
          {store.dropped > 0 && <span className="bad"> · {num(store.dropped)} skipped by the relay's rate limit</span>}
          {store.saturatedAt !== undefined && Date.now() - store.saturatedAt < 5000 && <span className="bad"> · at the rate limit (more were skipped than counted)</span>}
        </span>
      </div>
      <div className="trace-head" aria-hidden="true">
        <span>Time</span>
        <span>Type</span>
        <span>Kind</span>
        <span>From → To</span>
        <span>Id</span>
        <span className="num">Size</span>
        <span>Reason</span>
      </div>
      <div ref={scroller} className="trace-list" onScroll={onScroll} role="list" aria-label="Trace events">
        {events.length === 0 && <p className="muted empty">No events yet. Traffic matching the filter appears here.</p>}
        <div style={{ height: virtual.getTotalSize(), position: 'relative' }}>
          {virtual.getVirtualItems().map((item) => {
            const ev = events[item.index]!;
            return (
              <div key={item.key} role="listitem" data-index={item.index} ref={virtual.measureElement} className="trace-item" style={{ transform: `translateY(${item.start}px)` }}>
                <Row ev={ev} open={open.has(ev.seq)} onToggle={() => toggle(ev.seq)} />
              </div>
            );
          })}
        </div>
      </div>
    </section>
  );
}

function Row({ ev, open, onToggle }: { ev: TraceRow; open: boolean; onToggle: () => void }) {
  const { seq, ...event } = ev;
  return (
    <>
      <button type="button" className={`trace-row t-${ev.type}`} aria-expanded={open} onClick={onToggle}>
        <span className="time">{clock(ev.at, true)}</span>
        <span className="type">{ev.type}</span>
        <span className="kind">{ev.kind}</span>
        <span className="route">
          {ev.from ?? '—'} → {ev.to ?? '—'}
        </span>
        <span className="id">{ev.id ?? ''}</span>
        <span className="num">{ev.size === undefined ? '' : bytes(ev.size)}</span>
        <span className="reason">{ev.reason ?? ''}</span>
      </button>
      {open && (
        <div className="trace-detail">
          <JsonTree value={event} label={`Trace event ${seq}`} />
        </div>
      )}
    </>
  );
}
