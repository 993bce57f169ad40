/**
 * What the app keeps in localStorage, per origin: the nickname (so a reload signs in again),
 * and per nickname the joined rooms and the direct-message log with each message's tick. The
 * messages themselves, until acked, are in the peer's IndexedDB outbox (missive/default/<nick>),
 * which is what sends them again after a reload; this log is only what the screen shows.
 */
import type { DmEntry } from './chat.js';

const NICK = 'missive-demo:nickname';
const MAX_DMS = 1000;

function read<T>(key: string, fallback: T): T {
  try {
    const raw = localStorage.getItem(key);
    return raw === null ? fallback : (JSON.parse(raw) as T);
  } catch {
    return fallback;
  }
}

function write(key: string, value: unknown): void {
  localStorage.setItem(key, JSON.stringify(value));
}

export const savedNickname = (): string | null => localStorage.getItem(NICK);
export const saveNickname = (nick: string): void => localStorage.setItem(NICK, nick);
export const forgetNickname = (): void => localStorage.removeItem(NICK);

export const savedRooms = (nick: string): string[] | null => read<string[] | null>(`missive-demo:${nick}:rooms`, null);
export const saveRooms = (nick: string, rooms: string[]): void => write(`missive-demo:${nick}:rooms`, rooms);

export const savedDms = (nick: string): DmEntry[] => read<DmEntry[]>(`missive-demo:${nick}:dms`, []);
export const saveDms = (nick: string, dms: DmEntry[]): void => write(`missive-demo:${nick}:dms`, dms.slice(-MAX_DMS));
