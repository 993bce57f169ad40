/** Every connected peer in a sortable table, and the recently disconnected ones below. */
import { useState } from 'react';
import type { PeerRow } from '../api.js';
import { ConfirmDialog } from '../components/ConfirmDialog.js';
import { Alert } from '../components/Alert.js';
import { useSession } from '../context.js';
import { bytes, clock, dateTime, ms, num, shortId, since } from '../format.js';
import { useNow, usePoll } from '../hooks.js';

type Key = 'name' | 'namespace' | 'mailbox' | 'outbox' | 'bytesIn' | 'bytesOut' | 'rtt' | 'link' | 'connectedAt';

interface Column {
  key: Key;
  label: string;
  title?: string;
  numeric?: boolean;
  value: (p: PeerRow) => string | number | undefined;
}

export function peerLabel(p: { name?: string; id: string }): string {
  return p.name ?? `(unnamed) ${shortId(p.id)}`;
}

function linkOf(p: PeerRow): string {
  const direct = p.direct ?? 0;
  return direct > 0 ? `relay + ${direct} direct` : 'relay';
}

const COLUMNS: Column[] = [
  { key: 'name', label: 'Name', value: (p) => p.name ?? `~${p.id}` },
  { key: 'namespace', label: 'Namespace', value: (p) => p.namespace },
  { key: 'mailbox', label: 'MsgQ', title: 'Messages waiting in its mailboxes', numeric: true, value: (p) => p.mailbox },
  { key: 'outbox', label: 'Outbox', title: 'Unacked messages in its outbox', numeric: true, value: (p) => p.outbox },
  { key: 'bytesIn', label: 'Bytes in', numeric: true, value: (p) => p.bytesIn },
  { key: 'bytesOut', label: 'Bytes out', numeric: true, value: (p) => p.bytesOut },
  { key: 'rtt', label: 'RTT', numeric: true, value: (p) => p.rtt },
  { key: 'link', label: 'Link', value: linkOf },
  { key: 'connectedAt', label: 'Connected since', value: (p) => p.connectedAt },
];

function compare(a: string | number | undefined, b: string | number | undefined): number {
  // Unknown values (peers that did not opt in) sort last either way.
  if (a === undefined) return b === undefined ? 0 : 1;
  if (b === undefined) return -1;
  if (typeof a === 'number' && typeof b === 'number') return a - b;
  return String(a).localeCompare(String(b));
}

export function Peers({ onOpen }: { onOpen: (id: string) => void }) {
  const { client, rights, fail, note } = useSession();
  const self = client.peer.id;
  const poll = usePoll(() => client.peers(), 1000, [client]);
  const now = useNow();
  const [sort, setSort] = useState<{ key: Key; dir: 1 | -1 }>({ key: 'name', dir: 1 });
  const [confirm, setConfirm] = useState<PeerRow | null>(null);
  const [reason, setReason] = useState('');
  const [busy, setBusy] = useState(false);

  const column = COLUMNS.find((c) => c.key === sort.key)!;
  const peers = [...(poll.data?.peers ?? [])].sort((a, b) => {
    const va = column.value(a);
    const vb = column.value(b);
    if (va === undefined || vb === undefined) return compare(va, vb);
    return compare(va, vb) * sort.dir;
  });
  const closed = poll.data?.closed ?? [];
  const total = poll.data?.total;

  const disconnect = async () => {
    if (!confirm) return;
    setBusy(true);
    try {
      await client.disconnect(confirm.id, reason.trim() || undefined);
      note(`Disconnected ${peerLabel(confirm)}.`);
      poll.refresh();
    } catch (err) {
      fail(`Could not disconnect ${peerLabel(confirm)}`, err);
    } finally {
      setBusy(false);
      setConfirm(null);
      setReason('');
    }
  };

  return (
    <section aria-labelledby="peers-title">
      <h1 id="peers-title">Peers</h1>
      {poll.error && <Alert title="Could not load peers">{poll.error}</Alert>}
      {!poll.data && !poll.error && <p className="muted">Loading…</p>}
      {poll.data && total !== undefined && total > poll.data.peers.length && (
        <p className="muted small">
          Showing {num(poll.data.peers.length)} of {num(total)} connections (the relay answers at most this many rows).
        </p>
      )}
      {poll.data && (
        <div className="table-wrap">
          <table className="peers">
            <caption className="visually-hidden">Connected peers, sortable by each column</caption>
            <thead>
              <tr>
                {COLUMNS.map((c) => (
                  <th key={c.key} scope="col" className={c.numeric ? 'num' : undefined} aria-sort={sort.key === c.key ? (sort.dir === 1 ? 'ascending' : 'descending') : 'none'}>
                    <button
                      type="button"
                      className="sort"
                      title={c.title}
                      onClick={() => setSort((s) => ({ key: c.key, dir: s.key === c.key ? (s.dir === 1 ? -1 : 1) : c.numeric ? -1 : 1 }))}
                    >
                      {c.label}
                      <span aria-hidden="true" className="arrow">
                        {sort.key === c.key ? (sort.dir === 1 ? '▲' : '▼') : ''}
                      </span>
                    </button>
                  </th>
                ))}
                {rights.write && (
                  <th scope="col">
                    <span className="visually-hidden">Actions</span>
                  </th>
                )}
              </tr>
            </thead>
            <tbody>
              {peers.length === 0 && (
                <tr>
                  <td colSpan={COLUMNS.length + (rights.write ? 1 : 0)} className="muted">
                    No peers connected.
                  </td>
                </tr>
              )}
              {peers.map((p) => (
                <tr key={p.id} className="clickable" onClick={(e) => !(e.target as HTMLElement).closest('button') && onOpen(p.id)}>
                  <th scope="row">
                    <button type="button" className="link peer-name" onClick={() => onOpen(p.id)} title={`id ${p.id}`}>
                      {peerLabel(p)}
                    </button>
                    {p.id === self ? <span className="tag">this session</span> : p.admin && <span className="tag">admin</span>}
                    {!p.inspectable && !p.admin && (
                      <span className="tag" title="This peer did not opt in to inspection">
                        not inspectable
                      </span>
                    )}
                  </th>
                  <td>{p.namespace}</td>
                  <td className="num">{p.mailbox === undefined ? '—' : <span className={p.mailbox > 0 ? 'depth busy' : 'depth'}>{num(p.mailbox)}</span>}</td>
                  <td className="num">{num(p.outbox)}</td>
                  <td className="num">{bytes(p.bytesIn)}</td>
                  <td className="num">{bytes(p.bytesOut)}</td>
                  <td className="num">{ms(p.rtt)}</td>
                  <td>{linkOf(p)}</td>
                  <td title={dateTime(p.connectedAt)}>
                    {clock(p.connectedAt)} <span className="muted">({since(p.connectedAt, now)})</span>
                  </td>
                  {rights.write && (
                    <td>
                      {p.id !== self && <button type="button" className="danger small" onClick={() => setConfirm(p)} aria-label={`Disconnect ${peerLabel(p)}`}>
                        Disconnect
                      </button>}
                    </td>
                  )}
                </tr>
              ))}
            </tbody>
          </table>
        </div>
      )}

      <section aria-labelledby="closed-title">
        <h2 id="closed-title">Recently disconnected</h2>
        {closed.length === 0 ? (
          <p className="muted">No peer has disconnected yet.</p>
        ) : (
          <div className="table-wrap">
            <table className="closed">
              <thead>
                <tr>
                  <th scope="col">Name</th>
                  <th scope="col">Namespace</th>
                  <th scope="col">Connected</th>
                  <th scope="col">Closed</th>
                  <th scope="col" className="num">
                    Code
                  </th>
                  <th scope="col">Reason</th>
                </tr>
              </thead>
              <tbody>
                {closed.map((c) => (
                  <tr key={`${c.id}-${c.closedAt}`}>
                    <th scope="row" title={`id ${c.id}`}>
                      {peerLabel(c)}
                    </th>
                    <td>{c.namespace}</td>
                    <td title={dateTime(c.connectedAt)}>{clock(c.connectedAt)}</td>
                    <td title={dateTime(c.closedAt)}>
                      {clock(c.closedAt)} <span className="muted">({since(c.closedAt, now)})</span>
                    </td>
                    <td className="num">{c.code}</td>
                    <td>{c.reason || <span className="muted">(none)</span>}</td>
                  </tr>
                ))}
              </tbody>
            </table>
          </div>
        )}
      </section>

      {confirm && (
        <ConfirmDialog title={`Disconnect ${peerLabel(confirm)}?`} confirmLabel="Disconnect" busy={busy} onConfirm={() => void disconnect()} onCancel={() => setConfirm(null)}>
          <p>
            The relay closes this peer's connection. A peer that reconnects by itself will come back; its unacked messages stay in its outbox.
          </p>
          <label htmlFor="disconnect-reason">Reason (optional)</label>
          <input id="disconnect-reason" value={reason} onChange={(e) => setReason(e.target.value)} placeholder="disconnected from devtools" />
        </ConfirmDialog>
      )}
    </section>
  );
}
