#!/usr/bin/env node
// The missive relay CLI. Runs the built package (dist/); `npm install` at the repo root builds it.
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

const cli = new URL('../dist/cli.js', import.meta.url);
if (!existsSync(fileURLToPath(cli))) {
  console.error('missive-relay: @missive/node is not built. Run `npm run build` at the repository root.');
  process.exit(1);
}
const { main } = await import(cli.href);
process.exitCode = await main(process.argv.slice(2), process.env);
