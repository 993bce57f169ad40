import type { ChangeEvent } from 'react';
import { formatBytes, type ChatClient, type ChatState, type DmEntry, type FileTransfer } from '../chat.js';
import { Composer } from './Composer.js';
import { useLogScroll } from './RoomView.js';

interface Props {
  client: ChatClient;
  state: ChatState;
  peer: string;
}

const time = (at: number): string => new Date(at).toLocaleTimeString([], { hour: '2-digit', minute: '2-digit' });

export function DmView({ client, state, peer }: Props) {
  const entries = state.dms.filter((d) => d.peer === peer);
  const files = state.files.filter((f) => f.peer === peer);
  const online = state.online.includes(peer);
  const link = state.links[peer] ?? 'relay';
  const log = useLogScroll(entries.length + files.length);

  function pick(e: ChangeEvent<HTMLInputElement>): void {
    const file = e.target.files?.[0];
    e.target.value = '';
    if (file) void client.sendFile(peer, file);
  }

  return (
    <section className="thread" aria-labelledby="thread-title">
      <div className="thread-head">
        <h2 id="thread-title">{peer}</h2>
        <span className="small muted">
          {online ? 'online' : 'offline: messages wait for them'} · link: {link === 'direct' ? 'direct (WebRTC)' : 'relay'}
        </span>
      </div>
      <ol ref={log} className="log" role="log" aria-label={`Conversation with ${peer}`} tabIndex={0}>
        {[...entries.map((d) => ({ at: d.at, el: <Dm key={d.id} d={d} me={state.me} /> })), ...files.map((f) => ({ at: f.at, el: <FileItem key={f.id} f={f} /> }))]
          .sort((a, b) => a.at - b.at)
          .map((x) => x.el)}
      </ol>
      <div className="file-pick">
        <label htmlFor="file-input">Send a file to {peer}</label>
        <input id="file-input" type="file" onChange={pick} disabled={!online} />
        {!online && <span className="small muted"> (when {peer} is online: a file goes through a live tunnel)</span>}
      </div>
      <Composer
        label={`Message ${peer}`}
        onSend={(t) => client.sendDm(peer, t)}
        hint="Direct messages are durable: ✓ queued (kept in this browser until acked), ✓✓ delivered."
      />
    </section>
  );
}

function Dm({ d, me }: { d: DmEntry; me: string }) {
  return (
    <li className={d.dir === 'out' ? 'msg mine' : 'msg'}>
      <span className="from">{d.dir === 'out' ? me : d.peer}</span> <time dateTime={new Date(d.at).toISOString()}>{time(d.at)}</time>
      <p>
        {d.text}
        {d.dir === 'out' && <Ticks d={d} />}
      </p>
    </li>
  );
}

function Ticks({ d }: { d: DmEntry }) {
  if (d.status === 'delivered')
    return (
      <span className="ticks delivered" role="img" aria-label="Delivered" title="Delivered">
        ✓✓
      </span>
    );
  if (d.status === 'failed')
    return (
      <span className="ticks failed" role="img" aria-label={`Not delivered: ${d.error ?? ''}`} title={d.error}>
        ✕
      </span>
    );
  return (
    <span className="ticks" role="img" aria-label="Queued" title="Queued: kept in this browser until delivered">
      ✓
    </span>
  );
}

function FileItem({ f }: { f: FileTransfer }) {
  const pct = f.size === 0 ? 100 : Math.floor((f.bytes / f.size) * 100);
  const what = f.dir === 'out' ? `Sending ${f.name} to ${f.peer}` : `Receiving ${f.name} from ${f.peer}`;
  return (
    <li className={f.dir === 'out' ? 'msg file mine' : 'msg file'}>
      <p>
        <strong>{f.dir === 'out' ? 'File sent' : 'File received'}:</strong> {f.name} ({formatBytes(f.size)}) via {f.link === 'direct' ? 'a direct link (WebRTC)' : 'the relay'}
      </p>
      <progress max={100} value={pct} aria-label={what} aria-valuenow={pct} aria-valuemin={0} aria-valuemax={100} />
      <span className="small">
        {' '}
        {pct}%{' '}
        {f.state === 'done' && f.dir === 'out' && f.confirmed && `· ${f.peer} has it`}
        {f.state === 'failed' && `· failed: ${f.error ?? ''}`}
      </span>
      {f.url && (
        <p>
          <a href={f.url} download={f.name}>
            Download {f.name}
          </a>
        </p>
      )}
    </li>
  );
}
