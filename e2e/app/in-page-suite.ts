/**
 * A core compliance suite registered in the page: its cases kept by name, for the spec to run one
 * at a time (each a Playwright test of its own; the spec learns the names with e2e/suite-cases.ts).
 */
import type { SuiteApi } from '@missive/core/testing';

export interface InPageSuite {
  /** The case names, in registration order. */
  names: string[];
  /** Runs one case by name. */
  run(name: string): Promise<void>;
}

/** Collects the cases `register` adds (over this page's objects). */
export function inPageSuite(register: (api: SuiteApi) => void): InPageSuite {
  const cases = new Map<string, () => Promise<void>>();
  register({
    describe: (_name, fn) => fn(),
    it: (name, fn) => {
      cases.set(name, fn);
    },
  });
  return {
    names: [...cases.keys()],
    run: async (name) => {
      const c = cases.get(name);
      if (!c) throw new Error(`no compliance case named "${name}" in the page`);
      await c();
    },
  };
}
