/** Renders a Router's metrics in the Prometheus text exposition format (version 0.0.4). */
import type { RouterMetrics } from '@missive/core';

const esc = (v: string): string => v.replace(/\\/g, '\\\\').replace(/"/g, '\\"').replace(/\n/g, '\\n');

export function renderMetrics(m: RouterMetrics): string {
  const out: string[] = [];
  const metric = (name: string, type: 'counter' | 'gauge' | 'histogram', help: string): void => {
    out.push(`# HELP ${name} ${help}`, `# TYPE ${name} ${type}`);
  };
  const byLabel = (name: string, label: string, values: Record<string, number> | Map<string, number>): void => {
    const entries = values instanceof Map ? [...values] : Object.entries(values);
    for (const [k, v] of entries) out.push(`${name}{${label}="${esc(k)}"} ${v}`);
  };

  metric('missive_connections', 'gauge', 'Open connections, including those still in their handshake.');
  out.push(`missive_connections ${m.connections}`);
  metric('missive_peers', 'gauge', 'Connected peers by namespace.');
  byLabel('missive_peers', 'namespace', m.peers);
  metric('missive_frames_in_total', 'counter', 'Frames received, by kind.');
  byLabel('missive_frames_in_total', 'kind', m.framesIn);
  metric('missive_bytes_in_total', 'counter', 'Frame bytes received, by kind.');
  byLabel('missive_bytes_in_total', 'kind', m.bytesIn);
  metric('missive_frames_out_total', 'counter', 'Frames sent, by kind.');
  byLabel('missive_frames_out_total', 'kind', m.framesOut);
  metric('missive_bytes_out_total', 'counter', 'Frame bytes sent, by kind.');
  byLabel('missive_bytes_out_total', 'kind', m.bytesOut);
  metric('missive_drops_total', 'counter', 'Frames dropped or refused, by reason.');
  byLabel('missive_drops_total', 'reason', m.drops);
  metric('missive_held_messages', 'gauge', 'Durable messages held for offline names.');
  out.push(`missive_held_messages ${m.held.messages}`);
  metric('missive_held_bytes', 'gauge', 'What held messages count against holdMaxTotalBytes (encoded size plus per-message overhead).');
  out.push(`missive_held_bytes ${m.held.bytes}`);
  metric('missive_requests_total', 'counter', 'Requests forwarded to a peer.');
  out.push(`missive_requests_total ${m.requests}`);
  metric('missive_request_duration_seconds', 'histogram', 'Request round trips through the relay.');
  m.requestLatency.bounds.forEach((b, i) => out.push(`missive_request_duration_seconds_bucket{le="${b}"} ${m.requestLatency.counts[i]}`));
  out.push(`missive_request_duration_seconds_bucket{le="+Inf"} ${m.requestLatency.count}`);
  out.push(`missive_request_duration_seconds_sum ${m.requestLatency.sum}`);
  out.push(`missive_request_duration_seconds_count ${m.requestLatency.count}`);
  metric('missive_slow_consumer_disconnects_total', 'counter', 'Connections closed for staying over the buffer cap.');
  out.push(`missive_slow_consumer_disconnects_total ${m.slowConsumerDisconnects}`);
  metric('missive_auth_failures_total', 'counter', 'Connections and actions refused by auth.');
  out.push(`missive_auth_failures_total ${m.authFailures}`);
  metric('missive_admin_refused_total', 'counter', 'Admin sessions refused (a wrong or missing admin token).');
  out.push(`missive_admin_refused_total ${m.adminRefused}`);
  metric('missive_protocol_errors_total', 'counter', 'Connections closed for breaking the protocol.');
  out.push(`missive_protocol_errors_total ${m.protocolErrors}`);
  if (m.cluster) {
    const c = m.cluster;
    metric('missive_cluster_backplane_up', 'gauge', 'Whether the cluster backplane (Redis) is reachable from this relay.');
    out.push(`missive_cluster_backplane_up{relay="${esc(c.relay)}"} ${c.healthy ? 1 : 0}`);
    metric('missive_cluster_peers', 'gauge', 'Peers on each other relay of the cluster, as this relay knows them.');
    for (const [relay, n] of Object.entries(c.peersByRelay)) out.push(`missive_cluster_peers{relay="${esc(relay)}"} ${n}`);
    metric('missive_cluster_messages_total', 'counter', 'Messages carried to and from other relays over the backplane.');
    out.push(`missive_cluster_messages_total{direction="out"} ${c.sent}`);
    out.push(`missive_cluster_messages_total{direction="in"} ${c.received}`);
  }
  return `${out.join('\n')}\n`;
}
