import { useEffect, useRef, useState, type FormEvent } from 'react';
import { checkNickname } from '../../shared/protocol.js';

interface Props {
  relayUrl: string;
  initial: string;
  busy: boolean;
  error: string | undefined;
  onSignIn: (nick: string) => void;
}

export function SignIn({ relayUrl, initial, busy, error, onSignIn }: Props) {
  const [nick, setNick] = useState(initial);
  const [invalid, setInvalid] = useState<string>();
  const input = useRef<HTMLInputElement>(null);
  useEffect(() => setNick(initial), [initial]);
  useEffect(() => input.current?.focus(), [error]);

  function submit(e: FormEvent): void {
    e.preventDefault();
    const name = nick.trim();
    const bad = checkNickname(name);
    setInvalid(bad);
    if (!bad) onSignIn(name);
  }

  const message = invalid ?? error;
  return (
    <main className="signin">
      <h1>missive chat</h1>
      <p className="muted">Rooms, direct messages that wait for you, and files sent peer to peer: a demo of the missive toolkit.</p>
      <form onSubmit={submit} aria-describedby="signin-help">
        <label htmlFor="nick">Nickname</label>
        <input
          id="nick"
          ref={input}
          value={nick}
          onChange={(e) => setNick(e.target.value)}
          autoComplete="nickname"
          autoCapitalize="off"
          spellCheck={false}
          maxLength={24}
          aria-invalid={message ? true : undefined}
          aria-errormessage={message ? 'signin-error' : undefined}
          required
        />
        <button type="submit" disabled={busy}>
          {busy ? 'Signing in…' : 'Sign in'}
        </button>
        {message && (
          <p id="signin-error" role="alert" className="error">
            {message}
          </p>
        )}
        <p id="signin-help" className="muted small">
          Your nickname is your address: others send you direct messages and files by it. Relay: <code>{relayUrl}</code>
        </p>
      </form>
    </main>
  );
}
