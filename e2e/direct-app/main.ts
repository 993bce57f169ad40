/**
 * A plain app that may go direct: it imports `connect` and `openDirect` from @missive/browser
 * and nothing else. e2e/bundle.spec.ts builds it with Vite's default configuration (no config
 * file, no define, polyfill or shim) to measure what direct links add to an app's entry chunk,
 * and to check that simple-peer stays out of it, in a chunk that openDirect imports on demand.
 */
import { connect, openDirect } from '@missive/browser';

Object.assign(globalThis, { missiveApp: { connect, openDirect } });
