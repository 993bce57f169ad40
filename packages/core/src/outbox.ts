/** Moved to store/outbox.ts; this re-export goes once nothing imports it from here. */
export * from './store/outbox.js';
