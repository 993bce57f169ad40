import { useEffect, useRef } from 'react';
import type { ChatClient, ChatState } from '../chat.js';
import { Composer } from './Composer.js';

interface Props {
  client: ChatClient;
  state: ChatState;
  room: string;
}

const time = (at: number): string => new Date(at).toLocaleTimeString([], { hour: '2-digit', minute: '2-digit' });

export function RoomView({ client, state, room }: Props) {
  const messages = state.roomMessages[room] ?? [];
  const members = state.members[room] ?? [state.me];
  const typing = Object.keys(state.typing[room] ?? {}).filter((n) => n !== state.me);
  const log = useLogScroll(messages.length);

  return (
    <section className="thread" aria-labelledby="thread-title">
      <div className="thread-head">
        <h2 id="thread-title">#{room}</h2>
        <button type="button" className="small" onClick={() => client.leaveRoom(room)}>
          Leave #{room}
        </button>
      </div>
      <section className="members" aria-label="Who is here">
        <span className="muted small">Here ({members.length}):</span>
        <ul aria-label={`Who is in #${room}`}>
          {members.map((m) => (
            <li key={m}>{m === state.me ? `${m} (you)` : m}</li>
          ))}
        </ul>
      </section>
      <ol ref={log} className="log" role="log" aria-label={`Messages in #${room}`} tabIndex={0}>
        {state.historyFrom[room] && <li className="muted small system">Earlier messages from {state.historyFrom[room]}</li>}
        {messages.map((m) => (
          <li key={m.id} className={m.from === state.me ? 'msg mine' : 'msg'}>
            <span className="from">{m.from}</span> <time dateTime={new Date(m.at).toISOString()}>{time(m.at)}</time>
            <p>{m.text}</p>
          </li>
        ))}
      </ol>
      <p className="typing small muted" aria-live="polite">
        {typing.length === 1 ? `${typing[0]} is typing…` : typing.length > 1 ? `${typing.join(', ')} are typing…` : ''}
      </p>
      <Composer label={`Message #${room}`} onSend={(t) => client.sayInRoom(room, t)} onTyping={() => client.typing(room)} />
    </section>
  );
}

/** Keeps a log scrolled to its newest entry while the reader is at the bottom. */
export function useLogScroll(count: number) {
  const ref = useRef<HTMLOListElement>(null);
  useEffect(() => {
    const el = ref.current;
    if (el) el.scrollTop = el.scrollHeight;
  }, [count]);
  return ref;
}
