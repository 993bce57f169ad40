/** Polling and clock hooks shared by the views. */
import { useCallback, useEffect, useRef, useState } from 'react';
import { describeError } from './api.js';

export interface Poll<T> {
  data: T | undefined;
  /** The last request's failure, cleared by the next success. */
  error: string | undefined;
  /** When `data` was received. */
  at: number | undefined;
  refresh: () => void;
}

/**
 * Calls `load` now and every `interval` ms after each answer (never two at once), while
 * `enabled`. A failure is kept in `error` (and shown by the caller) while the last data stays.
 */
export function usePoll<T>(load: () => Promise<T>, interval: number, deps: unknown[], enabled = true): Poll<T> {
  const [state, setState] = useState<{ data: T | undefined; error: string | undefined; at: number | undefined }>({ data: undefined, error: undefined, at: undefined });
  const kick = useRef<() => void>(() => {});
  const loadRef = useRef(load);
  loadRef.current = load;

  useEffect(() => {
    setState({ data: undefined, error: undefined, at: undefined });
  }, deps);

  useEffect(() => {
    if (!enabled) return;
    let stopped = false;
    let timer: ReturnType<typeof setTimeout> | undefined;
    let busy = false;
    let again = false;
    const tick = async (): Promise<void> => {
      if (stopped) return;
      if (busy) {
        again = true;
        return;
      }
      busy = true;
      again = false;
      clearTimeout(timer);
      try {
        const data = await loadRef.current();
        if (!stopped) setState({ data, error: undefined, at: Date.now() });
      } catch (err) {
        if (!stopped) setState((s) => ({ ...s, error: describeError(err) }));
      } finally {
        busy = false;
        if (!stopped) timer = setTimeout(() => void tick(), again ? 0 : interval);
      }
    };
    kick.current = () => void tick();
    void tick();
    return () => {
      stopped = true;
      clearTimeout(timer);
      kick.current = () => {};
    };
  }, [enabled, interval, ...deps]);

  const refresh = useCallback(() => kick.current(), []);
  return { ...state, refresh };
}

/** The current time, updated every `interval` ms (for "connected 3m ago"). */
export function useNow(interval = 1000): number {
  const [now, setNow] = useState(Date.now());
  useEffect(() => {
    const t = setInterval(() => setNow(Date.now()), interval);
    return () => clearInterval(t);
  }, [interval]);
  return now;
}
