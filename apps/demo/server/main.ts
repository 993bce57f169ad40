/**
 * One history instance as a process: `node --import tsx apps/demo/server/main.ts --relay
 * ws://127.0.0.1:8787/ --id history-1` (what `npm start` runs, twice). SIGINT and SIGTERM close
 * the peer and exit 0; a failure to connect exits 1 with the reason.
 */
import { parseArgs } from 'node:util';
import { startHistory } from './history.js';

const { values } = parseArgs({
  options: {
    relay: { type: 'string', default: process.env.MISSIVE_RELAY_URL ?? 'ws://127.0.0.1:8787/' },
    id: { type: 'string', default: `history-${process.pid}` },
    limit: { type: 'string' },
  },
});

const id = values.id!;
try {
  const service = await startHistory({
    url: values.relay!,
    id,
    ...(values.limit ? { limit: Number(values.limit) } : {}),
    onError: (err) => console.error(`${id}: ${err.message}`),
  });
  console.log(`${id}: ready on ${values.relay} (group history)`);
  let stopping = false;
  const stop = (signal: string): void => {
    if (stopping) return;
    stopping = true;
    service.close().then(
      () => {
        console.log(`${id}: stopped (${signal})`);
        process.exit(0);
      },
      (err: Error) => {
        console.error(`${id}: ${err.message}`);
        process.exit(1);
      },
    );
  };
  process.on('SIGINT', () => stop('SIGINT'));
  process.on('SIGTERM', () => stop('SIGTERM'));
} catch (err) {
  console.error(`${id}: cannot start: ${(err as Error).message}`);
  process.exit(1);
}
