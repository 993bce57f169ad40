/**
 * One peer: what the relay knows of its connection, and, when it opted in to inspection, its
 * own snapshot: mailboxes with their first messages, outbox, handlers, subscriptions, groups,
 * tunnels and direct links.
 */
import { useState, type ReactNode } from 'react';
import type { InspectedSnapshot, PeekedMessage, PeerReply, RelayTunnel, TunnelSnapshot } from '../api.js';
import { Alert } from '../components/Alert.js';
import { ConfirmDialog } from '../components/ConfirmDialog.js';
import { JsonTree, preview } from '../components/JsonTree.js';
import { useSession } from '../context.js';
import { bytes, clock, dateTime, duration, ms, num, since } from '../format.js';
import { useNow, usePoll } from '../hooks.js';
import { peerLabel } from './Peers.js';

export function PeerDetail({ id, onBack }: { id: string; onBack: () => void }) {
  const { client } = useSession();
  const [live, setLive] = useState(true);
  const poll = usePoll(() => client.inspectPeer(id), 1000, [client, id], live);
  const data = poll.data;
  const title = data ? peerLabel(data.connection) : 'Peer';

  return (
    <section aria-labelledby="peer-title" className="peer-detail">
      <div className="toolbar">
        <button type="button" onClick={onBack}>
          ← All peers
        </button>
        <label className="check">
          <input type="checkbox" checked={live} onChange={(e) => setLive(e.target.checked)} /> Refresh every second
        </label>
        <button type="button" onClick={poll.refresh}>
          Refresh now
        </button>
      </div>
      <h1 id="peer-title">
        {title}
        {data && <span className="muted small-title"> in {data.connection.namespace}</span>}
      </h1>
      {poll.error && <Alert title="Could not inspect this peer">{poll.error}</Alert>}
      {!data && !poll.error && <p className="muted">Loading…</p>}
      {data && <Detail data={data} onChanged={poll.refresh} />}
    </section>
  );
}

function Detail({ data, onChanged }: { data: PeerReply; onChanged: () => void }) {
  const c = data.connection;
  const now = useNow();
  const relayTunnels = Array.isArray(c.tunnels) ? c.tunnels : [];
  const tunnelCount = Array.isArray(c.tunnels) ? c.tunnels.length : c.tunnels;
  const direct = c.direct;
  const flow = Object.entries(c.flow ?? {});
  const connection = (
      <section className="card" aria-labelledby="conn-title">
        <h2 id="conn-title">Connection (what the relay knows)</h2>
        <dl className="facts">
          <Fact label="Id">
            <code>{c.id}</code>
          </Fact>
          <Fact label="Connected since">
            <span title={dateTime(c.connectedAt)}>
              {clock(c.connectedAt)} ({since(c.connectedAt, now)})
            </span>
          </Fact>
          {c.state && <Fact label="State">{c.state}</Fact>}
          <Fact label="Frames in / out">
            {num(c.framesIn)} / {num(c.framesOut)}
          </Fact>
          <Fact label="Bytes in / out">
            {bytes(c.bytesIn)} / {bytes(c.bytesOut)}
          </Fact>
          <Fact label="Buffered">{bytes(c.buffered)}</Fact>
          <Fact label="RTT">{ms(c.rtt)}</Fact>
          <Fact label="Requests awaiting / serving">
            {num(c.awaiting)} / {num(c.serving)}
          </Fact>
          <Fact label="Tunnels">{num(tunnelCount)}</Fact>
          {direct !== undefined && <Fact label="Direct links">{num(direct)}</Fact>}
          <Fact label="Groups">{c.groups.length ? c.groups.join(', ') : <span className="muted">none</span>}</Fact>
          <Fact label="Subscriptions">{c.subscriptions.length ? c.subscriptions.join(', ') : <span className="muted">none</span>}</Fact>
        </dl>
        {flow.length > 0 && (
          <div className="sub">
            <h3>Flow control</h3>
            {flow.every(([, v]) => typeof v !== 'object' || v === null) ? (
              <dl className="facts compact">
                {flow.map(([k, v]) => (
                  <Fact key={k} label={words(k)}>
                    {k.toLowerCase().includes('bytes') && typeof v === 'number' ? bytes(v) : String(v)}
                  </Fact>
                ))}
              </dl>
            ) : (
              <JsonTree value={c.flow} label="Flow control state" />
            )}
          </div>
        )}
        {relayTunnels.length > 0 && (
          <div className="sub">
            <h3>Tunnels through the relay</h3>
            <RelayTunnels tunnels={relayTunnels} />
          </div>
        )}
      </section>
  );
  return (
    <>

      {c.admin ? (
        <p className="note" role="note">
          This is an admin session (such as this one): it has no mailboxes to inspect.
        </p>
      ) : !c.inspectable ? (
        <div className="note" role="note">
          <p>
            This peer did not opt in to inspection (connect with <code>inspect: true</code>). Only what the relay knows is shown.
          </p>
          {data.error && <p className="muted small">The relay says: {data.error}</p>}
        </div>
      ) : (
        data.error && <Alert title="The peer did not answer the inspection">{data.error}</Alert>
      )}
      {data.snapshot && <Snapshot peerId={c.id} s={data.snapshot} onChanged={onChanged} />}
      {connection}
    </>
  );
}

function RelayTunnels({ tunnels }: { tunnels: RelayTunnel[] }) {
  return (
    <table>
      <thead>
        <tr>
          <th scope="col" className="num">Tunnel</th>
          <th scope="col">Opener</th>
          <th scope="col">Acceptor</th>
          <th scope="col" className="num">Opener credit</th>
          <th scope="col" className="num">Acceptor credit</th>
          <th scope="col">Ends closed</th>
        </tr>
      </thead>
      <tbody>
        {tunnels.map((t) => (
          <tr key={t.tid}>
            <th scope="row" className="num">{t.tid}</th>
            <td>{t.opener}</td>
            <td>{t.acceptor}</td>
            <td className="num">{bytes(t.credit?.[0])}</td>
            <td className="num">{bytes(t.credit?.[1])}</td>
            <td>{t.ends}</td>
          </tr>
        ))}
      </tbody>
    </table>
  );
}

/** `bufferedBytes` → `Buffered bytes`. */
function words(key: string): string {
  const w = key.replace(/([a-z])([A-Z])/g, '$1 $2').toLowerCase();
  return w.charAt(0).toUpperCase() + w.slice(1);
}

function Fact({ label, children }: { label: string; children: ReactNode }) {
  return (
    <div>
      <dt>{label}</dt>
      <dd>{children}</dd>
    </div>
  );
}

function Snapshot({ peerId, s, onChanged }: { peerId: string; s: InspectedSnapshot; onChanged: () => void }) {
  const { client, rights, fail, note } = useSession();
  const [purge, setPurge] = useState<string | null>(null);
  const [busy, setBusy] = useState(false);
  const name = s.session.name ?? s.session.id;

  const doPurge = async () => {
    if (purge === null) return;
    setBusy(true);
    try {
      const r = await client.purge(peerId, purge);
      note(`Purged ${r.purged} message${r.purged === 1 ? '' : 's'} from ${name}/${purge}.`);
      onChanged();
    } catch (err) {
      fail(`Could not purge ${name}/${purge}`, err);
    } finally {
      setBusy(false);
      setPurge(null);
    }
  };

  return (
    <>
      <section aria-labelledby="mailboxes-title">
        <h2 id="mailboxes-title">Mailboxes</h2>
        {s.inbox.mailboxes.length === 0 && <p className="muted">No mailbox opened.</p>}
        <div className="mailboxes">
          {s.inbox.mailboxes.map((m) => (
            <section key={m.port} className="card mailbox" aria-label={`Mailbox ${m.port}`}>
              <div className="mailbox-head">
                <h3>
                  {m.port} <span className={m.depth > 0 ? 'depth busy' : 'depth'}>{num(m.depth)}</span>
                  <span className="muted small-title"> waiting</span>
                </h3>
                {rights.write && (
                  <button type="button" className="danger small" onClick={() => setPurge(m.port)} disabled={m.depth === 0} aria-label={`Purge mailbox ${m.port}`}>
                    Purge
                  </button>
                )}
              </div>
              <meter min={0} max={m.capacity} value={m.depth} high={m.capacity * 0.8} aria-label={`${m.port} fill`}>
                {m.depth} of {m.capacity}
              </meter>
              <dl className="facts compact">
                <Fact label="Capacity">{num(m.capacity)}</Fact>
                <Fact label="High water">{num(m.highWater)}</Fact>
                <Fact label="Oldest">{m.depth ? duration(m.oldestAge) : '—'}</Fact>
                <Fact label="Received">{num(m.received)}</Fact>
                <Fact label="Refused">{num(m.refused)}</Fact>
              </dl>
              {m.messages.length === 0 && m.depth > 0 && (
                <p className="muted small">{rights.bodies === false ? 'Messages not shown: this admin token may not see message bodies.' : 'Messages not shown: the peer did not include them.'}</p>
              )}
              {m.messages.length > 0 && (
                <>
                  <h4>
                    First {m.messages.length} message{m.messages.length === 1 ? '' : 's'}
                  </h4>
                  {s.bodies === false && <p className="muted small">Bodies hidden: the peer or this token does not allow them.</p>}
                  <ol className="messages">
                    {m.messages.map((msg) => (
                      <Message key={msg.id} msg={msg} />
                    ))}
                  </ol>
                </>
              )}
            </section>
          ))}
        </div>
      </section>

      <section aria-labelledby="outbox-title" className="card">
        <h2 id="outbox-title">Outbox</h2>
        <dl className="facts compact">
          <Fact label="Unacked">
            {num(s.outbox.size)} of {num(s.outbox.capacity)}
          </Fact>
          <Fact label="Held by the relay">{num(s.outbox.held)}</Fact>
          <Fact label="Send window">{num(s.outbox.sendWindow)}</Fact>
        </dl>
        {s.outbox.destinations.length === 0 ? (
          <p className="muted">Nothing waiting for an ack.</p>
        ) : (
          <table>
            <thead>
              <tr>
                <th scope="col">Destination</th>
                <th scope="col" className="num">Unacked</th>
                <th scope="col" className="num">In flight</th>
                <th scope="col" className="num">Held</th>
                <th scope="col">Retrying</th>
                <th scope="col" className="num">Oldest</th>
              </tr>
            </thead>
            <tbody>
              {s.outbox.destinations.map((d) => (
                <tr key={d.dest}>
                  <th scope="row">{d.dest}</th>
                  <td className="num">{num(d.unacked)}</td>
                  <td className="num">{num(d.inFlight)}</td>
                  <td className="num">{num(d.held)}</td>
                  <td>{d.retrying ? 'yes' : 'no'}</td>
                  <td className="num">{duration(d.oldestAge)}</td>
                </tr>
              ))}
            </tbody>
          </table>
        )}
      </section>

      <div className="split">
        <section aria-labelledby="handlers-title" className="card">
          <h2 id="handlers-title">Request handlers</h2>
          <p className="muted small">
            {num(s.requests.pending)} request{s.requests.pending === 1 ? '' : 's'} awaiting a reply, {num(s.requests.handling)} being handled
          </p>
          {s.requests.handlers.length === 0 ? (
            <p className="muted">No handlers.</p>
          ) : (
            <table>
              <thead>
                <tr>
                  <th scope="col">Port</th>
                  <th scope="col" className="num">Calls</th>
                  <th scope="col" className="num">Errors</th>
                  <th scope="col" className="num">Active</th>
                  <th scope="col" className="num">p50</th>
                  <th scope="col" className="num">p99</th>
                </tr>
              </thead>
              <tbody>
                {s.requests.handlers.map((h) => {
                  const q = h as typeof h & { p50?: number; p99?: number };
                  return (
                    <tr key={h.port}>
                      <th scope="row">{h.port}</th>
                      <td className="num">{num(h.calls)}</td>
                      <td className={h.errors > 0 ? 'num bad' : 'num'}>{num(h.errors)}</td>
                      <td className="num">{num(h.active)}</td>
                      <td className="num">{ms(q.p50)}</td>
                      <td className="num">{ms(q.p99)}</td>
                    </tr>
                  );
                })}
              </tbody>
            </table>
          )}
        </section>

        <section aria-labelledby="subs-title" className="card">
          <h2 id="subs-title">Subscriptions and groups</h2>
          <p className="muted small">{num(s.pubsub.received)} publications received</p>
          {s.pubsub.subscriptions.length === 0 ? (
            <p className="muted">No subscriptions.</p>
          ) : (
            <ul className="chips" aria-label="Subscriptions">
              {s.pubsub.subscriptions.map((sub) => (
                <li key={sub.pattern}>
                  <code>{sub.pattern}</code>
                  {sub.handlers > 1 && <span className="muted"> ×{sub.handlers}</span>}
                </li>
              ))}
            </ul>
          )}
          <h3>Groups</h3>
          {s.groups.groups.length === 0 ? (
            <p className="muted">Not in any group.</p>
          ) : (
            <ul className="chips" aria-label="Groups">
              {s.groups.groups.map((g) => (
                <li key={g}>{g}</li>
              ))}
            </ul>
          )}
        </section>
      </div>

      <div className="split">
      <section aria-labelledby="tunnels-title" className="card">
        <h2 id="tunnels-title">Tunnels</h2>
        {s.tunnels.handlers.length > 0 && (
          <p className="muted small">
            Accepts: {s.tunnels.handlers.map((h) => <code key={h}>{h} </code>)}
          </p>
        )}
        {s.tunnels.tunnels.length === 0 ? <p className="muted">No open tunnels.</p> : <Tunnels tunnels={s.tunnels.tunnels} />}
      </section>

      <section aria-labelledby="direct-title" className="card">
        <h2 id="direct-title">Direct links</h2>
        <p className="muted small">
          Mode {s.direct.mode}, {s.direct.available ? 'WebRTC available' : 'no WebRTC connector'}
        </p>
        {s.direct.remotes.length === 0 ? (
          <p className="muted">No peers talked to yet.</p>
        ) : (
          <table>
            <thead>
              <tr>
                <th scope="col">Peer</th>
                <th scope="col">Link</th>
                <th scope="col" className="num">Sent</th>
                <th scope="col" className="num">Acked</th>
                <th scope="col" className="num">Received</th>
                <th scope="col" className="num">Failures</th>
                <th scope="col">Last error</th>
              </tr>
            </thead>
            <tbody>
              {s.direct.remotes.map((r) => (
                <tr key={r.name}>
                  <th scope="row">{r.name}</th>
                  <td>{r.link}</td>
                  <td className="num">{num(r.sent)}</td>
                  <td className="num">{num(r.acked)}</td>
                  <td className="num">{num(r.received)}</td>
                  <td className="num">{num(r.failures)}</td>
                  <td>{r.lastError ?? <span className="muted">—</span>}</td>
                </tr>
              ))}
            </tbody>
          </table>
        )}
      </section>

      </div>

      <section aria-labelledby="session-title" className="card">
        <h2 id="session-title">Session</h2>
        <dl className="facts compact">
          <Fact label="Connected">{s.session.connected ? 'yes' : s.session.reconnecting ? `reconnecting (attempt ${s.session.attempts})` : 'no'}</Fact>
          <Fact label="Buffered">{bytes(s.session.bufferedAmount)}</Fact>
          <Fact label="Max frame">{bytes(s.session.maxFrame)}</Fact>
          <Fact label="Dedup streams">{num(s.inbox.dedupStreams)}</Fact>
          <Fact label="Registrations">
            {s.registrations.registrations.length ? s.registrations.registrations.map((r) => `${r.key}${r.confirmed ? '' : ' (pending)'}`).join(', ') : '—'}
          </Fact>
        </dl>
      </section>

      {purge !== null && (
        <ConfirmDialog title={`Purge ${name}/${purge}?`} confirmLabel="Purge" busy={busy} onConfirm={() => void doPurge()} onCancel={() => setPurge(null)}>
          <p>Every message waiting in this mailbox is removed from the peer without being received. This cannot be undone.</p>
        </ConfirmDialog>
      )}
    </>
  );
}

function Message({ msg }: { msg: PeekedMessage }) {
  const [open, setOpen] = useState(false);
  return (
    <li className="message">
      <button type="button" className="message-head" aria-expanded={open} onClick={() => setOpen((o) => !o)}>
        <span aria-hidden="true" className="json-caret">
          {open ? '▾' : '▸'}
        </span>
        <span className="from">from {msg.from}</span>
        <span className="muted">{clock(msg.sentAt)}</span>
        <code className="body-preview">{msg.hidden ? <span className="muted">(body hidden)</span> : preview(msg.body)}</code>
      </button>
      {open && (
        <div className="message-body">
          <div className="muted small">
            id <code>{msg.id}</code> to <code>{msg.to}</code> sent {dateTime(msg.sentAt)}
          </div>
          {msg.hidden ? <p className="muted small">The body is hidden.</p> : <JsonTree value={msg.body} label={`Body of message ${msg.id}`} />}
        </div>
      )}
    </li>
  );
}

function Tunnels({ tunnels }: { tunnels: TunnelSnapshot[] }) {
  return (
    <table>
      <thead>
        <tr>
          <th scope="col">Protocol</th>
          <th scope="col">Remote</th>
          <th scope="col">State</th>
          <th scope="col" className="num">Bytes in</th>
          <th scope="col" className="num">Bytes out</th>
          <th scope="col">Credit</th>
          <th scope="col" className="num">Queued</th>
        </tr>
      </thead>
      <tbody>
        {tunnels.map((t, i) => (
          <tr key={`${t.protocol}-${t.remote}-${i}`}>
            <th scope="row">{t.protocol}</th>
            <td>{t.remote}</td>
            <td>
              {t.state}
              {t.localEnded && ' · local ended'}
              {t.remoteEnded && ' · remote ended'}
            </td>
            <td className="num">{bytes(t.bytesIn)}</td>
            <td className="num">{bytes(t.bytesOut)}</td>
            <td>
              <progress max={Math.max(1, t.maxWindow)} value={Math.min(t.credit, t.maxWindow)} aria-label={`Send credit of ${t.protocol} to ${t.remote}`} /> {bytes(t.credit)}
            </td>
            <td className="num">{bytes(t.queuedBytes)}</td>
          </tr>
        ))}
      </tbody>
    </table>
  );
}
