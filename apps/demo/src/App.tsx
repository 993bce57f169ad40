import { useCallback, useEffect, useRef, useState, useSyncExternalStore } from 'react';
import { ChatClient, defaultRelayUrl } from './chat.js';
import { Chat } from './components/Chat.js';
import { SignIn } from './components/SignIn.js';
import { forgetNickname, savedNickname, saveNickname } from './persist.js';

/** Resolves once `client` is connected or has failed its first attempt to reach the relay. */
function firstOutcome(client: ChatClient): Promise<void> {
  return new Promise((resolve, reject) => {
    const check = (): boolean => {
      const s = client.store.get();
      if (s.fatal) reject(new Error(s.fatal));
      else if (s.conn.state === 'connected' || s.conn.state === 'offline') resolve();
      else return false;
      return true;
    };
    if (check()) return;
    const off = client.store.subscribe(() => {
      if (check()) off();
    });
    client.start().catch(() => check());
  });
}

export function App() {
  const [url] = useState(defaultRelayUrl);
  const [client, setClient] = useState<ChatClient | null>(null);
  const [error, setError] = useState<string>();
  const [busy, setBusy] = useState(false);
  const [nick, setNick] = useState(() => savedNickname() ?? '');
  const autoStarted = useRef(false);

  const signIn = useCallback(
    async (name: string) => {
      setBusy(true);
      setError(undefined);
      setNick(name);
      let c: ChatClient;
      try {
        c = new ChatClient(url, name);
      } catch (err) {
        setError((err as Error).message);
        setBusy(false);
        return;
      }
      try {
        await firstOutcome(c);
        saveNickname(name);
        setClient(c);
      } catch (err) {
        await c.dispose();
        setError((err as Error).message);
      } finally {
        setBusy(false);
      }
    },
    [url],
  );

  // A nickname kept from an earlier visit signs in again by itself.
  useEffect(() => {
    if (autoStarted.current) return;
    autoStarted.current = true;
    const saved = savedNickname();
    if (saved) void signIn(saved);
  }, [signIn]);

  const signOut = useCallback(async () => {
    if (!client) return;
    forgetNickname();
    setClient(null);
    await client.dispose();
  }, [client]);

  // The session ended for good (the name was taken, credentials refused): back to sign-in.
  const fatal = useSyncExternalStore(client?.store.subscribe ?? noSubscribe, () => client?.store.get().fatal);
  useEffect(() => {
    if (!client || !fatal) return;
    setError(fatal);
    setClient(null);
    void client.dispose();
  }, [client, fatal]);

  if (!client) return <SignIn relayUrl={url} initial={nick} busy={busy} error={error} onSignIn={signIn} />;
  return <Chat client={client} onSignOut={signOut} />;
}

const noSubscribe = (): (() => void) => () => {};
