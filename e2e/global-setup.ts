/**
 * Builds what the browser tests load, once per Playwright run: the packages' dist (tsc: the
 * test page bundles @missive/browser and @missive/core from it, and the specs start the relay
 * from @missive/node's), then the test app with `vite build` and Vite's default configuration
 * (into e2e/app/dist), the devtools app (apps/devtools/dist) and the chat demo
 * (apps/demo/dist). The servers themselves are fixtures (fixtures.ts, demo-world.ts).
 */
import { spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';

const root = fileURLToPath(new URL('..', import.meta.url));

function run(cmd: string, args: string[]): void {
  const r = spawnSync(cmd, args, { cwd: root, stdio: 'inherit', env: process.env });
  if (r.error) throw r.error;
  if (r.status !== 0) throw new Error(`e2e setup: \`${cmd} ${args.join(' ')}\` exited ${r.status ?? r.signal}`);
}

export default function globalSetup(): void {
  run('npm', ['run', 'build', '--silent']);
  run('npx', ['vite', 'build', 'e2e/app', '--logLevel', 'warn']);
  // The devtools app, served by the relay at /devtools/ in devtools.spec.ts.
  run('npm', ['run', 'build', '--silent', '-w', 'apps/devtools', '--', '--logLevel', 'warn']);
  // The chat demo (typechecked, then built), served by the relay at / in demo*.spec.ts.
  run('npm', ['run', 'build', '--silent', '-w', 'apps/demo', '--', '--logLevel', 'warn']);
}
