/** The first screen: relay URL and admin token, and why the last attempt failed. */
import { useState, type FormEvent } from 'react';

interface Props {
  initialUrl: string;
  initialToken: string;
  connecting: boolean;
  error: string | undefined;
  onConnect: (url: string, token: string) => void;
}

export function Connect({ initialUrl, initialToken, connecting, error, onConnect }: Props) {
  const [url, setUrl] = useState(initialUrl);
  const [token, setToken] = useState(initialToken);
  const submit = (e: FormEvent) => {
    e.preventDefault();
    onConnect(url.trim(), token);
  };
  return (
    <main className="connect">
      <form className="card connect-card" onSubmit={submit} aria-labelledby="connect-title">
        <h1 id="connect-title">
          <span className="logo" aria-hidden="true">
            ✉
          </span>{' '}
          missive devtools
        </h1>
        <p className="muted">Connect to a relay's admin channel to look inside its peers, mailboxes and traffic.</p>
        <label htmlFor="relay-url">Relay URL</label>
        <input id="relay-url" type="url" required value={url} onChange={(e) => setUrl(e.target.value)} placeholder="ws://127.0.0.1:8787/" spellCheck={false} />
        <label htmlFor="admin-token">Admin token</label>
        <input id="admin-token" type="password" required value={token} onChange={(e) => setToken(e.target.value)} autoComplete="off" />
        {error && (
          <div role="alert" className="alert">
            <div>
              <strong>Could not connect: </strong>
              {error}
            </div>
          </div>
        )}
        <button type="submit" className="primary" disabled={connecting}>
          {connecting ? 'Connecting…' : 'Connect'}
        </button>
      </form>
    </main>
  );
}
