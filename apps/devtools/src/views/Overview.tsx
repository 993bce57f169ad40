/** The relay at a glance: counters as cards, and rates (deltas of the polled counters) as charts. */
import { useMemo } from 'react';
import type { Overview as OverviewData } from '../api.js';
import { Chart, type ChartSeries } from '../components/Chart.js';
import { bytes, duration, num, rate } from '../format.js';

export interface Sample {
  at: number;
  connections: number;
  framesIn: number;
  framesOut: number;
  bytesIn: number;
  bytesOut: number;
  drops: number;
}

const MSG_SERIES: ChartSeries[] = [
  { label: 'in', color: '#5ab0ff' },
  { label: 'out', color: '#7ee0a1' },
];
const DROP_SERIES: ChartSeries[] = [{ label: 'drops', color: '#ff7a7a' }];
const CONN_SERIES: ChartSeries[] = [{ label: 'connections', color: '#f5c36b' }];

/** Per-second rates between consecutive samples (a counter that went back, a restart, counts as 0). */
function rates(samples: Sample[], pick: (s: Sample) => number): number[] {
  const out: number[] = [];
  for (let i = 1; i < samples.length; i++) {
    const dt = (samples[i]!.at - samples[i - 1]!.at) / 1000;
    const d = pick(samples[i]!) - pick(samples[i - 1]!);
    out.push(dt > 0 && d > 0 ? d / dt : 0);
  }
  return out;
}

export function Overview({ data, samples }: { data: OverviewData; samples: Sample[] }) {
  const charts = useMemo(() => {
    const xs = samples.slice(1).map((s) => s.at / 1000);
    return {
      frames: [xs, rates(samples, (s) => s.framesIn), rates(samples, (s) => s.framesOut)],
      bytes: [xs, rates(samples, (s) => s.bytesIn), rates(samples, (s) => s.bytesOut)],
      drops: [xs, rates(samples, (s) => s.drops)],
      conns: [xs, samples.slice(1).map((s) => s.connections)],
    };
  }, [samples]);
  const last = (a: number[] | undefined) => (a && a.length ? a[a.length - 1] : undefined);
  const drops = Object.entries(data.drops).filter(([, n]) => n > 0);

  return (
    <section aria-labelledby="overview-title">
      <h1 id="overview-title">Overview</h1>
      <div className="cards">
        <Card label="Uptime" value={duration(data.relay.uptime)} />
        <Card label="Connections" value={num(data.connections)} />
        <Card label="Messages in" value={rate(last(charts.frames[1]))} sub={`${num(data.framesIn)} frames total`} />
        <Card label="Messages out" value={rate(last(charts.frames[2]))} sub={`${num(data.framesOut)} frames total`} />
        <Card label="Bytes in" value={bytes(data.bytesIn)} sub={`${bytes(last(charts.bytes[1]) ?? 0)}/s`} />
        <Card label="Bytes out" value={bytes(data.bytesOut)} sub={`${bytes(last(charts.bytes[2]) ?? 0)}/s`} />
        <Card label="Held messages" value={num(data.held.messages)} sub={bytes(data.held.bytes)} />
        <Card label="Slow consumers" value={num(data.slowConsumerDisconnects)} sub="disconnected" alarm={data.slowConsumerDisconnects > 0} />
        <Card label="Auth failures" value={num(data.authFailures)} alarm={data.authFailures > 0} />
        <Card label="Admin refusals" value={num(data.adminRefused)} alarm={data.adminRefused > 0} />
        <Card label="Protocol errors" value={num(data.protocolErrors)} alarm={data.protocolErrors > 0} />
        <Card label="Requests" value={num(data.requests)} />
      </div>
      <div className="charts">
        <Chart title="Messages per second" series={MSG_SERIES} data={charts.frames} format={(v) => num(Math.round(v))} />
        <Chart title="Bytes per second" series={MSG_SERIES} data={charts.bytes} format={(v) => bytes(Math.round(v))} />
        <Chart title="Drops per second" series={DROP_SERIES} data={charts.drops} format={(v) => num(Math.round(v * 10) / 10)} />
        <Chart title="Connections" series={CONN_SERIES} data={charts.conns} format={(v) => num(Math.round(v))} />
      </div>
      <div className="split">
        <section aria-labelledby="ns-title" className="card">
          <h2 id="ns-title">Peers per namespace</h2>
          {Object.keys(data.peers).length === 0 ? (
            <p className="muted">No peers connected.</p>
          ) : (
            <table>
              <thead>
                <tr>
                  <th scope="col">Namespace</th>
                  <th scope="col" className="num">
                    Peers
                  </th>
                </tr>
              </thead>
              <tbody>
                {Object.entries(data.peers).map(([ns, n]) => (
                  <tr key={ns}>
                    <td>{ns}</td>
                    <td className="num">{num(n)}</td>
                  </tr>
                ))}
              </tbody>
            </table>
          )}
        </section>
        <section aria-labelledby="drops-title" className="card">
          <h2 id="drops-title">Drops by reason</h2>
          {drops.length === 0 ? (
            <p className="muted">Nothing dropped.</p>
          ) : (
            <table>
              <thead>
                <tr>
                  <th scope="col">Reason</th>
                  <th scope="col" className="num">
                    Frames
                  </th>
                </tr>
              </thead>
              <tbody>
                {drops.map(([reason, n]) => (
                  <tr key={reason}>
                    <td>{reason}</td>
                    <td className="num">{num(n)}</td>
                  </tr>
                ))}
              </tbody>
            </table>
          )}
        </section>
      </div>
      {data.cluster && (
        <section aria-labelledby="cluster-title" className="card">
          <h2 id="cluster-title">Cluster</h2>
          <p>
            This relay is <code>{data.cluster.relay}</code>; its backplane is{' '}
            {data.cluster.healthy ? <strong>reachable</strong> : <strong role="alert">unreachable: serving local peers only</strong>}.{' '}
            {num(data.cluster.sent)} messages sent to other relays, {num(data.cluster.received)} received.
          </p>
          <table>
            <thead>
              <tr>
                <th scope="col">Relay</th>
                <th scope="col" className="num">
                  Peers
                </th>
              </tr>
            </thead>
            <tbody>
              <tr>
                <td>
                  {data.cluster.relay} <span className="muted">(this relay)</span>
                </td>
                <td className="num">{num(Object.values(data.peers).reduce((a, b) => a + b, 0) - Object.values(data.cluster.peersByRelay).reduce((a, b) => a + b, 0))}</td>
              </tr>
              {Object.entries(data.cluster.peersByRelay).map(([relay, n]) => (
                <tr key={relay}>
                  <td>{relay}</td>
                  <td className="num">{num(n)}</td>
                </tr>
              ))}
            </tbody>
          </table>
        </section>
      )}
    </section>
  );
}

function Card({ label, value, sub, alarm = false }: { label: string; value: string; sub?: string; alarm?: boolean }) {
  return (
    <div className={alarm ? 'stat alarm' : 'stat'}>
      <div className="stat-label">{label}</div>
      <div className="stat-value">{value}</div>
      {sub && <div className="stat-sub">{sub}</div>}
    </div>
  );
}
