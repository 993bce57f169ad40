/** Subscriptions and groups on the relay, with publish and broadcast rates (deltas of counts). */
import { useEffect, useRef, useState } from 'react';
import type { TopicsReply } from '../api.js';
import { Alert } from '../components/Alert.js';
import { useSession } from '../context.js';
import { num, rate } from '../format.js';
import { usePoll } from '../hooks.js';

type Rates = Map<string, { count: number; rate: number }>;

function useRates(data: TopicsReply | undefined, at: number | undefined): Rates {
  const prev = useRef<{ at: number; counts: Map<string, number> } | null>(null);
  const [rates, setRates] = useState<Rates>(new Map());
  useEffect(() => {
    if (!data || !at) return;
    const counts = new Map(data.rates.map((r) => [`${r.namespace}\u0000${r.key}`, r.count]));
    const next: Rates = new Map();
    const p = prev.current;
    for (const [k, count] of counts) {
      const before = p?.counts.get(k);
      const dt = p ? (at - p.at) / 1000 : 0;
      next.set(k, { count, rate: before !== undefined && dt > 0 && count >= before ? (count - before) / dt : 0 });
    }
    prev.current = { at, counts };
    setRates(next);
  }, [data, at]);
  return rates;
}

export function Topics() {
  const { client } = useSession();
  const poll = usePoll(() => client.topics(), 1000, [client]);
  const rates = useRates(poll.data, poll.at);
  const data = poll.data;
  const traffic = [...rates.entries()].map(([k, v]) => {
    const [namespace, key] = k.split('\u0000') as [string, string];
    return { namespace, key, ...v };
  });
  traffic.sort((a, b) => b.rate - a.rate || b.count - a.count);
  const groupRate = (ns: string, name: string) => rates.get(`${ns}\u0000group:${name}`);

  return (
    <section aria-labelledby="topics-title">
      <h1 id="topics-title">Topics and groups</h1>
      {poll.error && <Alert title="Could not load topics">{poll.error}</Alert>}
      {!data && !poll.error && <p className="muted">Loading…</p>}
      {data && (
        <>
          <section aria-labelledby="subs-list-title" className="card">
            <h2 id="subs-list-title">Subscriptions</h2>
            {data.topics.length === 0 ? (
              <p className="muted">No subscriptions.</p>
            ) : (
              <table>
                <thead>
                  <tr>
                    <th scope="col">Namespace</th>
                    <th scope="col">Pattern</th>
                    <th scope="col" className="num">Subscribers</th>
                    <th scope="col">Who</th>
                  </tr>
                </thead>
                <tbody>
                  {data.topics.map((t) => (
                    <tr key={`${t.namespace}/${t.pattern}`}>
                      <td>{t.namespace}</td>
                      <th scope="row">
                        <code>{t.pattern}</code>
                      </th>
                      <td className="num">{num(t.subscribers.length)}</td>
                      <td>{t.subscribers.join(', ')}</td>
                    </tr>
                  ))}
                </tbody>
              </table>
            )}
          </section>
          <section aria-labelledby="groups-list-title" className="card">
            <h2 id="groups-list-title">Groups</h2>
            {data.groups.length === 0 ? (
              <p className="muted">No groups.</p>
            ) : (
              <table>
                <thead>
                  <tr>
                    <th scope="col">Namespace</th>
                    <th scope="col">Group</th>
                    <th scope="col" className="num">Members</th>
                    <th scope="col">Who</th>
                    <th scope="col" className="num">Broadcasts</th>
                  </tr>
                </thead>
                <tbody>
                  {data.groups.map((g) => {
                    const r = groupRate(g.namespace, g.name);
                    return (
                      <tr key={`${g.namespace}/${g.name}`}>
                        <td>{g.namespace}</td>
                        <th scope="row">{g.name}</th>
                        <td className="num">{num(g.members.length)}</td>
                        <td>{g.members.join(', ')}</td>
                        <td className="num">{r ? rate(r.rate) : '—'}</td>
                      </tr>
                    );
                  })}
                </tbody>
              </table>
            )}
          </section>
          <section aria-labelledby="traffic-title" className="card">
            <h2 id="traffic-title">Traffic by topic and group</h2>
            {traffic.length === 0 ? (
              <p className="muted">Nothing published or broadcast yet.</p>
            ) : (
              <table>
                <thead>
                  <tr>
                    <th scope="col">Namespace</th>
                    <th scope="col">Topic or group</th>
                    <th scope="col" className="num">Rate</th>
                    <th scope="col" className="num">Total</th>
                  </tr>
                </thead>
                <tbody>
                  {traffic.map((t) => (
                    <tr key={`${t.namespace}/${t.key}`}>
                      <td>{t.namespace}</td>
                      <th scope="row">
                        <code>{t.key}</code>
                      </th>
                      <td className="num">{rate(t.rate)}</td>
                      <td className="num">{num(t.count)}</td>
                    </tr>
                  ))}
                </tbody>
              </table>
            )}
          </section>
        </>
      )}
    </section>
  );
}
