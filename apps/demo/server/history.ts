/**
 * The chat's history service: a Node peer that keeps the last {@link HISTORY_LIMIT} messages of
 * every room in memory and answers `history/recent`, `history/rooms` and `history/snapshot`.
 *
 * Run two (or more): each joins the group `history`, so the relay load-balances requests between
 * them (round-robin in join order), and each subscribes to `room.>` itself, so each sees every
 * room message and they stay in sync without talking to each other. One that starts late first
 * asks the group for a snapshot (answered by an instance already running) so it does not begin
 * empty. The instances are anonymous peers: they are not users and do not show in presence.
 */
import { connect, type Peer } from '@missive/node';
import {
  DEFAULT_ROOMS,
  HISTORY_GROUP,
  HISTORY_LIMIT,
  ROOMS_TOPIC,
  checkRoom,
  isRoomMessage,
  type RecentReply,
  type RecentRequest,
  type RoomCreated,
  type RoomsReply,
  type SnapshotReply,
  type StoredMessage,
} from '../shared/protocol.js';

export interface HistoryOptions {
  /** The relay's ws:// URL. */
  url: string;
  /** This instance's label, returned as `servedBy`. */
  id: string;
  /** Messages kept per room. @default 500 */
  limit?: number;
  /** Most rooms kept (the least recently written is forgotten past it). @default 1000 */
  maxRooms?: number;
  /** Called with asynchronous errors (the peer's `error` and `close` with an error). @default console.error */
  onError?: (err: Error) => void;
}

export interface HistoryService {
  readonly id: string;
  readonly peer: Peer;
  /** Messages held for `room`, oldest first. */
  messages(room: string): readonly StoredMessage[];
  rooms(): string[];
  close(): Promise<void>;
}

export async function startHistory(options: HistoryOptions): Promise<HistoryService> {
  const limit = options.limit ?? HISTORY_LIMIT;
  const maxRooms = options.maxRooms ?? 1000;
  const onError = options.onError ?? ((err: Error) => console.error(`[${options.id}]`, err));
  // Map order = least recently written first, so the oldest room is the first key.
  const rooms = new Map<string, StoredMessage[]>();
  const seen = new Map<string, Set<string>>();

  function room(name: string): StoredMessage[] {
    let list = rooms.get(name);
    if (list) {
      rooms.delete(name);
      rooms.set(name, list);
      return list;
    }
    list = [];
    rooms.set(name, list);
    seen.set(name, new Set());
    if (rooms.size > maxRooms) {
      const oldest = rooms.keys().next().value as string;
      rooms.delete(oldest);
      seen.delete(oldest);
    }
    return list;
  }

  function add(m: StoredMessage): void {
    const list = room(m.room);
    const ids = seen.get(m.room)!;
    if (ids.has(m.id)) return;
    ids.add(m.id);
    list.push(m);
    if (list.length > limit) {
      const dropped = list.splice(0, list.length - limit);
      for (const d of dropped) ids.delete(d.id);
    }
  }

  const peer = await connect(options.url, { codec: 'msgpack', reconnect: { maxDelay: 3000 } });
  peer.on('error', onError);
  peer.on('close', ({ error }) => {
    if (error) onError(error);
  });

  // Subscribe before anything else, so nothing published from now on is missed.
  const sub = peer.subscribe('room.>', (body, meta) => {
    const name = meta.topic.slice('room.'.length);
    if (checkRoom(name) !== undefined || !isRoomMessage(body)) return;
    add({ id: body.id, text: body.text, at: body.at, room: name, from: meta.from });
  });
  const roomsSub = peer.subscribe<RoomCreated>(ROOMS_TOPIC, (body) => {
    if (body && typeof body.name === 'string' && checkRoom(body.name) === undefined) room(body.name);
  });
  await Promise.all([sub.ready, roomsSub.ready]);

  // A late instance starts from a running one's state (NO_ROUTE when it is the first).
  try {
    const snap = await peer.request<SnapshotReply>(`${HISTORY_GROUP}/snapshot`, {}, { timeout: 5000 });
    for (const [name, list] of Object.entries(snap.rooms)) {
      if (checkRoom(name) !== undefined) continue;
      room(name);
      for (const m of list) if (isRoomMessage(m) && typeof m.from === 'string') add({ ...m, room: name });
      // Messages that came in live while the snapshot travelled were added first: keep time order.
      rooms.get(name)?.sort((a, b) => a.at - b.at);
    }
  } catch (err) {
    if ((err as { code?: string }).code !== 'NO_ROUTE') onError(err as Error);
  }

  peer.handle<RecentRequest, RecentReply>('recent', (req) => {
    if (typeof req?.room !== 'string' || checkRoom(req.room) !== undefined) throw Object.assign(new Error('bad room name'), { code: 'BAD_ROOM' });
    const n = Math.max(0, Math.min(limit, typeof req.limit === 'number' ? Math.floor(req.limit) : 100));
    const list = rooms.get(req.room) ?? [];
    return { room: req.room, messages: n === 0 ? [] : list.slice(-n), servedBy: options.id };
  });
  peer.handle<unknown, RoomsReply>('rooms', () => ({ rooms: listRooms(), servedBy: options.id }));
  peer.handle<unknown, SnapshotReply>('snapshot', () => ({ rooms: Object.fromEntries(rooms), servedBy: options.id }));

  function listRooms(): string[] {
    return [...new Set<string>([...DEFAULT_ROOMS, ...rooms.keys()])].sort();
  }

  await peer.join(HISTORY_GROUP);

  return {
    id: options.id,
    peer,
    messages: (name) => rooms.get(name) ?? [],
    rooms: listRooms,
    close: () => peer.close(),
  };
}
