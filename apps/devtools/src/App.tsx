/** The app: the connect screen, then a session's header, navigation and views. */
import { useCallback, useEffect, useMemo, useRef, useState } from 'react';
import { defaultRelayUrl, describeError, openAdmin, type AdminClient, type Overview as OverviewData } from './api.js';
import { Alert } from './components/Alert.js';
import { SessionContext, type Session } from './context.js';
import { duration } from './format.js';
import { usePoll } from './hooks.js';
import { TraceStore } from './trace-store.js';
import { Connect } from './views/Connect.js';
import { Overview, type Sample } from './views/Overview.js';
import { PeerDetail } from './views/PeerDetail.js';
import { Peers } from './views/Peers.js';
import { Topics } from './views/Topics.js';
import { Trace } from './views/Trace.js';

/** Reads `?relay=…&token=…` once and takes them out of the address bar (and history). */
function takeQuery(): { url: string | undefined; token: string | undefined } {
  const params = new URLSearchParams(window.location.search);
  const url = params.get('relay') ?? undefined;
  const token = params.get('token') ?? undefined;
  if (url !== undefined || token !== undefined) {
    params.delete('relay');
    params.delete('token');
    const rest = params.toString();
    window.history.replaceState(window.history.state, '', `${window.location.pathname}${rest ? `?${rest}` : ''}${window.location.hash}`);
  }
  return { url, token };
}

export function App() {
  const initial = useMemo(takeQuery, []);
  const [url, setUrl] = useState(initial.url ?? defaultRelayUrl());
  const [token, setToken] = useState(initial.token ?? '');
  const [session, setSession] = useState<{ client: AdminClient; overview: OverviewData } | null>(null);
  const [connecting, setConnecting] = useState(false);
  const [error, setError] = useState<string | undefined>();
  const started = useRef(false);

  const open = useCallback(async (u: string, t: string) => {
    setUrl(u);
    setToken(t);
    setConnecting(true);
    setError(undefined);
    let client: AdminClient | undefined;
    try {
      client = await openAdmin(u, t);
      const overview = await client.overview();
      setSession({ client, overview });
    } catch (err) {
      setError(describeError(err));
      client?.close().catch((e: unknown) => setError((prev) => `${prev ?? ''} (closing: ${describeError(e)})`));
    } finally {
      setConnecting(false);
    }
  }, []);

  useEffect(() => {
    // Connect at once when the token came in the address (once, also under StrictMode).
    if (started.current || !initial.token) return;
    started.current = true;
    void open(initial.url ?? defaultRelayUrl(), initial.token);
  }, [initial, open]);

  const leave = useCallback(
    (why?: string) => {
      const s = session;
      setSession(null);
      if (why) setError(why);
      s?.client.close().catch((e: unknown) => setError(`Closing the admin session failed: ${describeError(e)}`));
    },
    [session],
  );

  if (!session) return <Connect initialUrl={url} initialToken={token} connecting={connecting} error={error} onConnect={(u, t) => void open(u, t)} />;
  return <Dashboard key={session.client.peer.id} client={session.client} first={session.overview} onLeave={leave} />;
}

type Tab = 'overview' | 'peers' | 'topics' | 'trace';
const TABS: { id: Tab; label: string }[] = [
  { id: 'overview', label: 'Overview' },
  { id: 'peers', label: 'Peers' },
  { id: 'topics', label: 'Topics & groups' },
  { id: 'trace', label: 'Live trace' },
];

/** Keep two minutes of one-second samples for the charts. */
const HISTORY = 120;

interface Notice {
  id: number;
  title: string;
  text: string;
}

function Dashboard({ client, first, onLeave }: { client: AdminClient; first: OverviewData; onLeave: (why?: string) => void }) {
  const [tab, setTab] = useState<Tab>('peers');
  const [selected, setSelected] = useState<string | null>(null);
  const [alerts, setAlerts] = useState<Notice[]>([]);
  const [note, setNote] = useState<string>('');
  const [link, setLink] = useState<string | undefined>();
  const [samples, setSamples] = useState<Sample[]>(() => [sampleOf(first, Date.now())]);
  const nextId = useRef(1);
  const trace = useMemo(() => new TraceStore(client), [client]);

  const fail = useCallback((title: string, err: unknown) => {
    const text = describeError(err);
    setAlerts((a) => [...a.filter((x) => x.title !== title || x.text !== text).slice(-4), { id: nextId.current++, title, text }]);
  }, []);
  const session: Session = useMemo(() => ({ client, rights: first.rights, fail, note: setNote }), [client, first.rights, fail]);

  const overview = usePoll(() => client.overview(), 1000, [client]);
  const ov = overview.data ?? first;
  const rights = ov.rights;

  useEffect(() => {
    if (!overview.data || !overview.at) return;
    const s = sampleOf(overview.data, overview.at);
    setSamples((prev) => [...prev, s].slice(-HISTORY - 1));
  }, [overview.data, overview.at]);

  useEffect(() => {
    const p = client.peer;
    const offs = [
      p.on('disconnected', (e) => setLink(`Link to the relay lost (${e.code}${e.reason ? `: ${e.reason}` : ''}); reconnecting…`)),
      p.on('reconnecting', (e) => setLink(`Link to the relay lost; reconnection attempt ${e.attempt} in ${duration(e.delay)}…`)),
      p.on('reconnected', () => {
        setLink(undefined);
        trace.resume();
      }),
      p.on('close', (e) => {
        if (e.error) onLeave(`The admin session closed: ${describeError(e.error)}`);
      }),
      p.on('error', (err) => fail('Admin session', err)),
    ];
    return () => offs.forEach((off) => off());
  }, [client, trace, onLeave, fail]);

  useEffect(() => () => trace.stop(), [trace]);

  const sessionValue = useMemo(() => ({ ...session, rights }), [session, rights]);

  return (
    <SessionContext.Provider value={sessionValue}>
      <header className="topbar">
        <div className="brand">
          <span className="logo" aria-hidden="true">
            ✉
          </span>{' '}
          missive devtools
        </div>
        <dl className="relay-facts">
          <div>
            <dt>Relay</dt>
            <dd title={ov.relay.id}>{client.url}</dd>
          </div>
          <div>
            <dt>Uptime</dt>
            <dd>{duration(ov.relay.uptime)}</dd>
          </div>
          <div>
            <dt>Access</dt>
            <dd>
              <span className={rights.write ? 'badge write' : 'badge'}>{rights.write ? 'read-write' : 'read-only'}</span>
              {rights.bodies === false && <span className="badge">no message bodies</span>}
              {rights.namespaces && <span className="muted"> namespaces: {rights.namespaces.join(', ')}</span>}
            </dd>
          </div>
        </dl>
        <button type="button" onClick={() => onLeave()}>
          Close session
        </button>
      </header>
      <nav className="tabs" aria-label="Views">
        {TABS.map((t) => (
          <button
            key={t.id}
            type="button"
            aria-current={tab === t.id ? 'page' : undefined}
            onClick={() => {
              setTab(t.id);
              if (t.id !== 'peers') setSelected(null);
            }}
          >
            {t.label}
            {t.id === 'peers' && <span className="count">{ov.connections}</span>}
          </button>
        ))}
      </nav>
      <div className="notices">
        {link && (
          <div role="alert" className="alert warn">
            {link}
          </div>
        )}
        {overview.error && <Alert title="Could not load the overview">{overview.error}</Alert>}
        {alerts.map((a) => (
          <Alert key={a.id} title={a.title} onDismiss={() => setAlerts((all) => all.filter((x) => x.id !== a.id))}>
            {a.text}
          </Alert>
        ))}
        <div role="status" className={note ? 'status-note' : 'visually-hidden'}>
          {note}
          {note && (
            <button type="button" className="link" aria-label="Dismiss notice" onClick={() => setNote('')}>
              ×
            </button>
          )}
        </div>
      </div>
      <main className="content">
        {tab === 'overview' && <Overview data={ov} samples={samples} />}
        {tab === 'peers' && (selected ? <PeerDetail id={selected} onBack={() => setSelected(null)} /> : <Peers onOpen={setSelected} />)}
        {tab === 'topics' && <Topics />}
        {tab === 'trace' && <Trace store={trace} />}
      </main>
    </SessionContext.Provider>
  );
}

function sampleOf(o: OverviewData, at: number): Sample {
  return {
    at,
    connections: o.connections,
    framesIn: o.framesIn,
    framesOut: o.framesOut,
    bytesIn: o.bytesIn,
    bytesOut: o.bytesOut,
    drops: Object.values(o.drops).reduce((a, b) => a + b, 0),
  };
}
