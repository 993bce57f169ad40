#!/usr/bin/env node
// `npm test`: every suite in order — typecheck (including the type tests), then vitest (unit
// and integration). Prints one closing line `N passed, N failed, N skipped` totalling all suites
// and exits non-zero on any failure.
import { spawnSync } from 'node:child_process';
import { mkdirSync, readFileSync, rmSync } from 'node:fs';
import { join } from 'node:path';

const root = new URL('..', import.meta.url).pathname;
const tmp = join(root, '.tmp');
mkdirSync(tmp, { recursive: true });
const totals = { passed: 0, failed: 0, skipped: 0 };
const failures = [];

function run(cmd, args) {
  console.log(`\n$ ${cmd} ${args.join(' ')}`);
  return spawnSync(cmd, args, { cwd: root, stdio: 'inherit', env: process.env }).status;
}

// 1. Typecheck each TypeScript project: one test per project.
const projects = ['packages/core/tsconfig.json', 'packages/node/tsconfig.json'];
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

if (failures.length > 0) console.log(`\nfailed: ${failures.join('; ')}`);
console.log(`\n${totals.passed} passed, ${totals.failed} failed, ${totals.skipped} skipped`);
process.exit(totals.failed > 0 ? 1 : 0);
