import { useSyncExternalStore, useState, type FormEvent } from 'react';
import type { ChatClient, ChatState, ConnState } from '../chat.js';
import { DmView } from './DmView.js';
import { RoomView } from './RoomView.js';

interface Props {
  client: ChatClient;
  onSignOut: () => void;
}

export function Chat({ client, onSignOut }: Props) {
  const s = useSyncExternalStore(client.store.subscribe, client.store.get);
  // At phone width one pane shows at a time: the list, or the conversation.
  const [pane, setPane] = useState<'list' | 'conversation'>('conversation');

  const openRoom = (room: string) => {
    client.open({ kind: 'room', room });
    setPane('conversation');
  };
  const openDm = (peer: string) => {
    client.open({ kind: 'dm', peer });
    setPane('conversation');
  };

  return (
    <div className="app" data-pane={pane}>
      <a className="skip" href="#conversation">
        Skip to the conversation
      </a>
      <header className="topbar">
        <h1>missive chat</h1>
        <ConnectionStatus conn={s.conn} />
        <span className="me">
          <span className="signed-in">Signed in as </span>
          <strong>{s.me}</strong>
        </span>
        <button type="button" onClick={onSignOut}>
          Sign out
        </button>
      </header>
      <Alerts state={s} onDismiss={(id) => client.dismissAlert(id)} />
      <nav className="sidebar" aria-label="Rooms and people">
        <Rooms state={s} client={client} onOpen={openRoom} />
        <People state={s} onOpen={openDm} />
      </nav>
      <main id="conversation" className="conversation" tabIndex={-1}>
        <button type="button" className="back" onClick={() => setPane('list')}>
          ← Rooms and people
        </button>
        {s.view.kind === 'room' && s.joined.includes(s.view.room) ? (
          <RoomView key={`room:${s.view.room}`} client={client} state={s} room={s.view.room} />
        ) : s.view.kind === 'dm' ? (
          <DmView key={`dm:${s.view.peer}`} client={client} state={s} peer={s.view.peer} />
        ) : (
          <p className="empty">Join a room or open a conversation.</p>
        )}
      </main>
    </div>
  );
}

function ConnectionStatus({ conn }: { conn: ConnState }) {
  let text: string;
  switch (conn.state) {
    case 'connected':
      text = 'Connected';
      break;
    case 'connecting':
      text = 'Connecting…';
      break;
    case 'reconnecting':
      text = conn.attempt > 0 ? `Reconnecting (attempt ${conn.attempt})…` : 'Reconnecting…';
      break;
    case 'offline':
      text = conn.attempt > 0 ? `Offline: retrying (attempt ${conn.attempt})` : 'Offline';
      break;
  }
  return (
    <span role="status" aria-label="Connection" className={`conn conn-${conn.state}`}>
      <span className="dot" aria-hidden="true" />
      {text}
    </span>
  );
}

function Alerts({ state, onDismiss }: { state: ChatState; onDismiss: (id: number) => void }) {
  if (state.alerts.length === 0) return null;
  return (
    <section className="alerts" aria-label="Errors">
      {state.alerts.map((a) => (
        <div key={a.id} role="alert" className="alert">
          <span>{a.text}</span>
          <button type="button" onClick={() => onDismiss(a.id)} aria-label={`Dismiss: ${a.text}`}>
            ×
          </button>
        </div>
      ))}
    </section>
  );
}

function Badge({ n }: { n: number | undefined }) {
  if (!n) return null;
  return (
    <span className="badge" aria-label={`${n} unread`}>
      {n}
    </span>
  );
}

function Rooms({ state, client, onOpen }: { state: ChatState; client: ChatClient; onOpen: (room: string) => void }) {
  const [name, setName] = useState('');
  const [error, setError] = useState<string>();
  const others = state.rooms.filter((r) => !state.joined.includes(r));
  const current = state.view.kind === 'room' ? state.view.room : undefined;

  async function create(e: FormEvent): Promise<void> {
    e.preventDefault();
    const err = await client.joinRoom(name);
    setError(err);
    if (!err) {
      setName('');
      onOpen(name.trim().toLowerCase());
    }
  }

  return (
    <section aria-labelledby="rooms-heading">
      <h2 id="rooms-heading">Rooms</h2>
      <ul aria-label="Joined rooms" className="list">
        {state.joined.map((r) => (
          <li key={r}>
            <button type="button" className="item" aria-current={r === current ? 'page' : undefined} onClick={() => onOpen(r)}>
              #{r} <Badge n={state.unread[`room:${r}`]} />
            </button>
          </li>
        ))}
      </ul>
      {others.length > 0 && (
        <>
          <h3>Other rooms</h3>
          <ul aria-label="Other rooms" className="list">
            {others.map((r) => (
              <li key={r} className="row">
                <span>#{r}</span>
                <button type="button" className="small" onClick={() => void client.joinRoom(r).then(() => onOpen(r))} aria-label={`Join #${r}`}>
                  Join
                </button>
              </li>
            ))}
          </ul>
        </>
      )}
      <form onSubmit={(e) => void create(e)} className="inline">
        <label htmlFor="new-room">New room</label>
        <div className="row">
          <input id="new-room" value={name} onChange={(e) => setName(e.target.value)} placeholder="e.g. book-club" autoCapitalize="off" spellCheck={false} />
          <button type="submit">Create</button>
        </div>
        {error && (
          <p role="alert" className="error small">
            {error}
          </p>
        )}
      </form>
    </section>
  );
}

function People({ state, onOpen }: { state: ChatState; onOpen: (peer: string) => void }) {
  const [name, setName] = useState('');
  const current = state.view.kind === 'dm' ? state.view.peer : undefined;
  const talked = [...new Set(state.dms.map((d) => d.peer))];
  const people = [...new Set([...state.online.filter((n) => n !== state.me), ...talked])].sort();

  function open(e: FormEvent): void {
    e.preventDefault();
    const n = name.trim();
    if (!n || n === state.me) return;
    setName('');
    onOpen(n);
  }

  return (
    <section aria-labelledby="people-heading">
      <h2 id="people-heading">Direct messages</h2>
      <ul aria-label="People" className="list">
        {people.map((p) => {
          const online = state.online.includes(p);
          return (
            <li key={p}>
              <button type="button" className="item" aria-current={p === current ? 'page' : undefined} onClick={() => onOpen(p)}>
                <span className={online ? 'presence on' : 'presence'} aria-hidden="true" />
                {p}
                <span className="sr-only">{online ? ' (online)' : ' (offline)'}</span>
                <Badge n={state.unread[`dm:${p}`]} />
              </button>
            </li>
          );
        })}
        {people.length === 0 && <li className="muted small">Nobody else is online yet.</li>}
      </ul>
      <form onSubmit={open} className="inline">
        <label htmlFor="dm-to">Conversation with (online or not)</label>
        <div className="row">
          <input id="dm-to" value={name} onChange={(e) => setName(e.target.value)} placeholder="nickname" autoCapitalize="off" spellCheck={false} />
          <button type="submit">Open</button>
        </div>
      </form>
    </section>
  );
}
