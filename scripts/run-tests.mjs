#!/usr/bin/env node
// `npm test`: every suite in order — typecheck (including the type tests), vitest (unit and
// integration), then Playwright (browser end-to-end in Chromium). Prints one closing line
// `N passed, N failed, N skipped` totalling all suites and exits non-zero on any failure.
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, rmSync } from 'node:fs';
import { join } from 'node:path';

const root = new URL('..', import.meta.url).pathname;
const tmp = join(root, '.tmp');
mkdirSync(tmp, { recursive: true });
const totals = { passed: 0, failed: 0, skipped: 0 };
const failures = [];
const ci = process.env.CI === 'true' || process.env.CI === '1';

function run(cmd, args) {
  console.log(`\n$ ${cmd} ${args.join(' ')}`);
  return spawnSync(cmd, args, { cwd: root, stdio: 'inherit', env: process.env }).status;
}

// 1. Typecheck each TypeScript project: one test per project.
const projects = ['packages/core/tsconfig.json', 'packages/node/tsconfig.json', 'packages/browser/tsconfig.json', 'e2e/tsconfig.json', 'apps/devtools/tsconfig.json'];
for (const p of projects) {
  const status = run('npx', ['tsc', '-p', p]);
  if (status === 0) totals.passed++;
  else {
    totals.failed++;
    failures.push(`typecheck ${p}`);
  }
}

// 2. vitest: unit and integration tests, counted from its JSON report.
const report = join(tmp, 'vitest.json');
rmSync(report, { force: true });
const status = run('npx', ['vitest', 'run', '--reporter=default', '--reporter=json', `--outputFile.json=${report}`]);
try {
  const r = JSON.parse(readFileSync(report, 'utf8'));
  totals.passed += r.numPassedTests;
  totals.failed += r.numFailedTests;
  totals.skipped += r.numPendingTests + r.numTodoTests;
  // A file that fails to load has no tests to count: count it as one failure.
  const brokenFiles = r.testResults.filter((f) => f.status === 'failed' && f.assertionResults.length === 0).length;
  totals.failed += brokenFiles;
  if (r.numFailedTests + brokenFiles > 0) failures.push('vitest');
  else if (status !== 0) {
    totals.failed++;
    failures.push(`vitest exited ${status}`);
  }
} catch (err) {
  totals.failed++;
  failures.push(`vitest wrote no report (exit ${status}): ${err.message}`);
}

// 3. Playwright: browser end-to-end tests in Chromium (its config builds the packages and the
// Vite test app first), counted from the JSON report that playwright.config.ts writes.
const chromium = await findChromium();
if (!chromium && !ci) {
  console.log('\nskipping the browser end-to-end tests: no Chromium found. Install it with `apt-get install -y chromium` (or set CHROMIUM_PATH).');
  totals.skipped++;
} else {
  const pwReport = join(tmp, 'playwright.json');
  rmSync(pwReport, { force: true });
  const pwStatus = run('npx', ['playwright', 'test']);
  try {
    const r = JSON.parse(readFileSync(pwReport, 'utf8'));
    const s = r.stats;
    totals.passed += s.expected;
    // Retries are off, so "flaky" cannot happen; if it did, it would not count as a pass.
    totals.failed += s.unexpected + s.flaky;
    totals.skipped += s.skipped;
    // Errors outside any test (global setup, a fixture's teardown) count one failure each.
    const outside = r.errors?.length ?? 0;
    totals.failed += outside;
    if (s.unexpected + s.flaky + outside > 0) failures.push('playwright');
    else if (pwStatus !== 0) {
      totals.failed++;
      failures.push(`playwright exited ${pwStatus}`);
    } else if (s.expected === 0) {
      totals.failed++;
      failures.push('playwright ran no test');
    }
  } catch (err) {
    totals.failed++;
    failures.push(`playwright did not run (exit ${pwStatus}, no report): ${err.message}`);
  }
}

if (failures.length > 0) console.log(`\nfailed: ${failures.join('; ')}`);
console.log(`\n${totals.passed} passed, ${totals.failed} failed, ${totals.skipped} skipped`);
process.exit(totals.failed > 0 ? 1 : 0);

/** The Chromium the Playwright config will launch: CHROMIUM_PATH, Debian's, or Playwright's own. */
async function findChromium() {
  if (process.env.CHROMIUM_PATH) return existsSync(process.env.CHROMIUM_PATH) ? process.env.CHROMIUM_PATH : undefined;
  if (existsSync('/usr/bin/chromium')) return '/usr/bin/chromium';
  try {
    const { chromium } = await import('playwright');
    const path = chromium.executablePath();
    return existsSync(path) ? path : undefined;
  } catch {
    return undefined;
  }
}
