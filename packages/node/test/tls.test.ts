import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { request } from 'node:https';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { connect, createRelay } from '../src/index.js';

let dir: string;
let cert: string;
let key: string;
beforeAll(() => {
  // A throwaway self-signed certificate for 127.0.0.1 (openssl comes with Debian; .ci/run installs it if missing).
  dir = mkdtempSync(join(tmpdir(), 'missive-tls-'));
  execFileSync('openssl', [
    'req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes', '-days', '1',
    '-subj', '/CN=127.0.0.1', '-addext', 'subjectAltName=IP:127.0.0.1',
    '-keyout', join(dir, 'key.pem'), '-out', join(dir, 'cert.pem'),
  ], { stdio: 'ignore' });
  cert = readFileSync(join(dir, 'cert.pem'), 'utf8');
  key = readFileSync(join(dir, 'key.pem'), 'utf8');
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe('relay over TLS', () => {
  it('serves wss:// and https:// with the given certificate', async () => {
    const relay = await createRelay({ port: 0, tls: { cert, key } });
    try {
      expect(relay.url).toMatch(/^wss:\/\//);
      const a = await connect(relay.url, { name: 'a', tls: { ca: cert } });
      const b = await connect(relay.url, { name: 'b', tls: { ca: cert } });
      b.handle('ping', () => 'pong');
      await expect(a.request('b/ping')).resolves.toBe('pong');
      const status = await new Promise<number>((resolve, reject) => {
        request(`https://127.0.0.1:${relay.port}/healthz`, { ca: cert }, (res) => {
          res.resume();
          resolve(res.statusCode ?? 0);
        }).on('error', reject).end();
      });
      expect(status).toBe(200);
      await a.close();
      await b.close();
    } finally {
      await relay.close();
    }
  });

  it('is refused by a client that does not trust the certificate', async () => {
    const relay = await createRelay({ port: 0, tls: { cert, key } });
    try {
      await expect(connect(relay.url, { name: 'x' })).rejects.toMatchObject({ code: 'CLOSED' });
    } finally {
      await relay.close();
    }
  });
});
