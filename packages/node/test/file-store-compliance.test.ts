/**
 * FileStore runs the core store compliance suite: each fixture is a fresh temporary directory,
 * a reopen is a new FileStore over the same log (what a restarted process opens), and cleanup
 * removes the directory.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, it } from 'vitest';
import { storeCompliance } from '@missive/core/testing';
import { FileStore } from '../src/index.js';

storeCompliance('FileStore', { describe, it }, async (options) => {
  const dir = await mkdtemp(join(tmpdir(), 'missive-store-compliance-'));
  const file = join(dir, 'outbox.log');
  return {
    store: new FileStore(file, options),
    reopen: () => new FileStore(file, options),
    cleanup: () => rm(dir, { recursive: true, force: true }),
  };
});
