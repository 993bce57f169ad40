/** What every view of a connected session gets: the client, its rights, and the notice area. */
import { createContext, useContext } from 'react';
import type { AdminClient, Rights } from './api.js';

export interface Session {
  client: AdminClient;
  rights: Rights;
  /** Shows a failure in the page's alert area (never swallowed). */
  fail: (title: string, err: unknown) => void;
  /** Shows a short success notice (role=status). */
  note: (text: string) => void;
}

export const SessionContext = createContext<Session | null>(null);

export function useSession(): Session {
  const s = useContext(SessionContext);
  if (!s) throw new Error('useSession outside a connected session');
  return s;
}
