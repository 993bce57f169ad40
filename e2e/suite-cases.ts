/**
 * The cases of a core compliance suite, as a spec learns them: the suite is registered here only
 * for its case names and time limits, and each case then runs in the page (where the app
 * registers the same suite over browser objects) as a Playwright test of its own.
 */
import type { SuiteApi } from '@missive/core/testing';

/** One case: its name and its time limit (the suite's, or vitest's default of 5 s). */
export interface SuiteCase {
  name: string;
  timeout: number;
}

/** The cases `register` adds, in order; their bodies are never called here. */
export function suiteCases(register: (api: SuiteApi) => void): SuiteCase[] {
  const cases: SuiteCase[] = [];
  register({
    describe: (_name, fn) => fn(),
    it: (name, _fn, timeout) => {
      cases.push({ name, timeout: timeout ?? 5_000 });
    },
  });
  return cases;
}

/** The fixture factory a spec hands the suite: it is never called outside the page. */
export function inPageOnly(): Promise<never> {
  return Promise.reject(new TypeError('compliance cases run in the page'));
}
