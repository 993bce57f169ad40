/**
 * What the chat app and its history service say to each other, and the names they use. Both
 * sides import this file (the app through Vite, the service through tsx/tsc), so a topic or a
 * body shape cannot drift between them.
 *
 * Topics (pub/sub, best-effort):
 * - `room.<room>`      a message in a room: {@link RoomMessage}; the history service keeps them
 * - `typing.<room>`    "I am typing" in a room: {@link TypingNotice}, at most one per {@link TYPING_THROTTLE_MS}
 * - `presence.<room>`  who is in a room: {@link PresenceNotice}
 * - `rooms`            a room was created: {@link RoomCreated}
 *
 * Requests to the group `history` (one instance answers, round-robin):
 * - `history/recent`   {@link RecentRequest} → {@link RecentReply}
 * - `history/rooms`    → {@link RoomsReply}
 * - `history/snapshot` → {@link SnapshotReply}: everything an instance holds, for a new instance
 *
 * Direct messages are durable sends to the other user's `inbox`: {@link DirectMessage}. Files
 * travel in a tunnel of protocol {@link FILE_PROTOCOL} in `messages` mode: a {@link FileHeader},
 * then `Uint8Array` chunks; the receiver answers one {@link FileReceipt} once it has them all.
 */

export const HISTORY_GROUP = 'history';
export const FILE_PROTOCOL = 'file';
/** Messages each history instance keeps per room. */
export const HISTORY_LIMIT = 500;
/** The fewest milliseconds between two typing notices of one user in one room. */
export const TYPING_THROTTLE_MS = 1500;
/** How long a typing notice shows "… is typing". */
export const TYPING_SHOW_MS = 4000;
/** Rooms every user sees, whether or not anyone wrote in them yet. */
export const DEFAULT_ROOMS = ['lobby', 'random'] as const;
/** Largest file the app receives (it holds a file in memory until it is downloaded). */
export const MAX_FILE_BYTES = 64 * 1024 * 1024;
/** Bytes per chunk written into a file tunnel. */
export const FILE_CHUNK_BYTES = 64 * 1024;
/** Longest room message or direct message, in characters. */
export const MAX_TEXT = 4000;

export interface RoomMessage {
  /** Chosen by the sender (random): the app and the history service deduplicate by it. */
  id: string;
  text: string;
  /** The sender's clock, ms since the epoch. */
  at: number;
}

/** A room message as stored and shown: `from` is the relay's stamp, never the body's claim. */
export interface StoredMessage extends RoomMessage {
  room: string;
  from: string;
}

export interface TypingNotice {
  typing: boolean;
}

export type PresenceNotice = { type: 'here' } | { type: 'gone' } | { type: 'who' };

export interface RoomCreated {
  name: string;
}

export interface RecentRequest {
  room: string;
  /** At most this many, newest last. @default 100 */
  limit?: number;
}

export interface RecentReply {
  room: string;
  messages: StoredMessage[];
  /** Which history instance answered (the group load-balances). */
  servedBy: string;
}

export interface RoomsReply {
  rooms: string[];
  servedBy: string;
}

export interface SnapshotReply {
  rooms: Record<string, StoredMessage[]>;
  servedBy: string;
}

export interface DirectMessage {
  type: 'dm';
  text: string;
  at: number;
}

export interface FileHeader {
  name: string;
  size: number;
  type: string;
}

export interface FileReceipt {
  ok: true;
  bytes: number;
}

const ROOM_RE = /^[a-z0-9][a-z0-9-]{0,31}$/;
const NICK_RE = /^[A-Za-z0-9][A-Za-z0-9_-]{0,23}$/;

/** Why `name` is not a room name, or undefined when it is one. */
export function checkRoom(name: string): string | undefined {
  if (ROOM_RE.test(name)) return undefined;
  return 'A room name is 1 to 32 characters: lowercase letters, digits and "-", starting with a letter or digit.';
}

/** Why `name` is not a nickname, or undefined when it is one. */
export function checkNickname(name: string): string | undefined {
  if (NICK_RE.test(name)) return undefined;
  return 'A nickname is 1 to 24 characters: letters, digits, "_" and "-", starting with a letter or digit.';
}

export const roomTopic = (room: string): string => `room.${room}`;
export const typingTopic = (room: string): string => `typing.${room}`;
export const presenceTopic = (room: string): string => `presence.${room}`;
export const ROOMS_TOPIC = 'rooms';

/** A room message body as it arrives from the network (anything), checked. */
export function isRoomMessage(v: unknown): v is RoomMessage {
  if (typeof v !== 'object' || v === null) return false;
  const m = v as Record<string, unknown>;
  return typeof m.id === 'string' && m.id.length > 0 && m.id.length <= 64 && typeof m.text === 'string' && m.text.length <= MAX_TEXT && typeof m.at === 'number';
}

export function isDirectMessage(v: unknown): v is DirectMessage {
  if (typeof v !== 'object' || v === null) return false;
  const m = v as Record<string, unknown>;
  return m.type === 'dm' && typeof m.text === 'string' && m.text.length <= MAX_TEXT && typeof m.at === 'number';
}

export function isFileHeader(v: unknown): v is FileHeader {
  if (typeof v !== 'object' || v === null) return false;
  const m = v as Record<string, unknown>;
  return typeof m.name === 'string' && m.name.length > 0 && m.name.length <= 255 && typeof m.size === 'number' && Number.isInteger(m.size) && m.size >= 0 && typeof m.type === 'string';
}
