/**
 * The chat's model: one named missive peer and everything the screen shows, as an external
 * store the React components read. Every missive call the app makes is in this file:
 *
 * - sign-in: `connect(url, { name })` (IndexedDB outbox, direct links on 'auto'); NAME_TAKEN and
 *   AUTH end the session with a message for the sign-in screen; an unreachable relay is retried;
 * - rooms: topics `room.<room>` (messages), `typing.<room>`, `presence.<room>`; `rooms` for rooms
 *   created; room history from the `history` group by request/reply;
 * - who is online: `peers()` and the `peer-join` / `peer-leave` events;
 * - direct messages: durable `send` to the other user's inbox, ticks on `delivered`;
 * - files: a tunnel of protocol `file` in messages mode, the path it took from `linkTo`.
 */
import { connect, type Peer, type PublishMeta, type Tunnel } from '@missive/browser';
import {
  DEFAULT_ROOMS,
  FILE_CHUNK_BYTES,
  FILE_PROTOCOL,
  HISTORY_GROUP,
  MAX_FILE_BYTES,
  MAX_TEXT,
  ROOMS_TOPIC,
  TYPING_SHOW_MS,
  TYPING_THROTTLE_MS,
  checkNickname,
  checkRoom,
  isDirectMessage,
  isFileHeader,
  isRoomMessage,
  presenceTopic,
  roomTopic,
  typingTopic,
  type DirectMessage,
  type FileHeader,
  type FileReceipt,
  type PresenceNotice,
  type RecentReply,
  type RoomCreated,
  type RoomMessage,
  type RoomsReply,
  type StoredMessage,
  type TypingNotice,
} from '../shared/protocol.js';
import { saveDms, savedDms, savedRooms, saveRooms } from './persist.js';
import { Store } from './store.js';

export type ConnState =
  | { state: 'connecting' }
  | { state: 'connected' }
  | { state: 'reconnecting'; attempt: number; delay: number }
  | { state: 'offline'; attempt: number; delay: number };

export interface DmEntry {
  id: string;
  /** The other user. */
  peer: string;
  dir: 'in' | 'out';
  text: string;
  at: number;
  /** Outgoing only: queued (one tick) until the receiver acks (delivered, two ticks). */
  status?: 'queued' | 'delivered' | 'failed';
  error?: string;
}

export interface FileTransfer {
  id: string;
  peer: string;
  dir: 'out' | 'in';
  /** When it started, ms since the epoch (orders it among the messages). */
  at: number;
  name: string;
  size: number;
  bytes: number;
  /** The path the tunnel was opened on (a tunnel keeps it). */
  link: 'relay' | 'direct';
  state: 'sending' | 'receiving' | 'done' | 'failed';
  /** Incoming, once complete: an object URL to download. */
  url?: string;
  /** Outgoing: the receiver confirmed it has every byte. */
  confirmed?: boolean;
  error?: string;
}

export interface AlertEntry {
  id: number;
  text: string;
  /** Alerts with a key replace each other (one per condition, not one per retry). */
  key?: string;
}

export type View = { kind: 'room'; room: string } | { kind: 'dm'; peer: string } | { kind: 'none' };

export interface ChatState {
  me: string;
  relayUrl: string;
  conn: ConnState;
  /** Set when the session ended for good (name taken, refused): the app returns to sign-in. */
  fatal?: string;
  rooms: string[];
  joined: string[];
  roomMessages: Record<string, StoredMessage[]>;
  /** Who is in each joined room (presence), this user included. */
  members: Record<string, string[]>;
  /** room → name → until (ms since epoch). */
  typing: Record<string, Record<string, number>>;
  historyFrom: Record<string, string>;
  online: string[];
  dms: DmEntry[];
  files: FileTransfer[];
  /** 'room:<room>' or 'dm:<name>' → unread count. */
  unread: Record<string, number>;
  /** Other user → the path traffic to them takes now. */
  links: Record<string, 'relay' | 'direct'>;
  alerts: AlertEntry[];
  view: View;
}

const errCode = (err: unknown): string | undefined => (err as { code?: unknown } | null)?.code as string | undefined;
const errText = (err: unknown): string => {
  const e = err as { code?: string; message?: string } | null;
  if (!e) return String(err);
  return e.code ? `${e.message ?? ''} (${e.code})` : (e.message ?? String(err));
};
const newId = (): string => crypto.randomUUID();
const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

/** The friendly text for an error that ends a session at sign-in. */
export function signInMessage(nick: string, err: unknown): string {
  switch (errCode(err)) {
    case 'NAME_TAKEN':
      return `The nickname "${nick}" is taken: someone is signed in with it right now (perhaps you, in another tab). Choose another one, or close the other tab.`;
    case 'AUTH':
      return `The relay refused "${nick}": ${(err as Error).message}`;
    default:
      return `Cannot sign in as "${nick}": ${errText(err)}`;
  }
}

/** A relay's ws:// URL for the page: `?relay=` wins, else the page's own host (the relay serves the app). */
export function defaultRelayUrl(): string {
  const q = new URLSearchParams(location.search).get('relay');
  if (q) return q;
  if (import.meta.env.DEV) return 'ws://127.0.0.1:8787/';
  return `${location.protocol === 'https:' ? 'wss' : 'ws'}://${location.host}/`;
}

export class ChatClient {
  readonly store: Store<ChatState>;
  readonly #url: string;
  #peer: Peer | undefined;
  #disposed = false;
  #alertSeq = 0;
  #lastTyping = new Map<string, number>();
  #roomSubs = new Map<string, { unsubscribe(): void }[]>();
  #deliveredEarly = new Set<string>();
  #typingTimer: ReturnType<typeof setInterval> | undefined;
  #objectUrls: string[] = [];

  constructor(url: string, nick: string) {
    const bad = checkNickname(nick);
    if (bad) throw new TypeError(bad);
    this.#url = url;
    const joined = savedRooms(nick) ?? ['lobby'];
    this.store = new Store<ChatState>({
      me: nick,
      relayUrl: url,
      conn: { state: 'connecting' },
      rooms: [...new Set([...DEFAULT_ROOMS, ...joined])].sort(),
      joined,
      roomMessages: {},
      members: {},
      typing: {},
      historyFrom: {},
      online: [],
      dms: savedDms(nick),
      files: [],
      unread: {},
      links: {},
      alerts: [],
      view: joined[0] ? { kind: 'room', room: joined[0] } : { kind: 'none' },
    });
  }

  get me(): string {
    return this.store.get().me;
  }

  get connected(): boolean {
    return this.#peer?.connected === true;
  }

  /**
   * Connects, retrying while the relay cannot be reached (the first connection of a missive peer
   * is never retried by the peer itself). Resolves once connected; rejects on a refusal that
   * retrying cannot fix (NAME_TAKEN, AUTH), which also sets `fatal`.
   */
  async start(): Promise<void> {
    for (let attempt = 1; !this.#disposed; attempt++) {
      try {
        const peer = await connect(this.#url, {
          name: this.me,
          // The devtools served next to the demo can show this peer's mailboxes and outbox.
          inspect: true,
          reconnect: { maxDelay: 3000 },
        });
        if (this.#disposed) {
          await peer.close();
          return;
        }
        this.#dropAlert('unreachable');
        this.#attach(peer);
        return;
      } catch (err) {
        if (this.#disposed) return;
        const code = errCode(err);
        if (code !== 'CLOSED' && code !== 'TIMEOUT') {
          const text = signInMessage(this.me, err);
          this.#set((s) => ({ ...s, fatal: text }));
          throw err;
        }
        const delay = Math.min(3000, 250 * 2 ** attempt);
        this.#set((s) => ({ ...s, conn: { state: 'offline', attempt, delay } }));
        this.alert(`Cannot reach the relay at ${this.#url}; trying again (attempt ${attempt}). ${errText(err)}`, 'unreachable');
        await sleep(delay);
      }
    }
  }

  async dispose(): Promise<void> {
    this.#disposed = true;
    clearInterval(this.#typingTimer);
    const peer = this.#peer;
    this.#peer = undefined;
    if (peer) {
      if (peer.connected) for (const room of this.store.get().joined) this.#publish(presenceTopic(room), { type: 'gone' } satisfies PresenceNotice);
      await peer.close();
    }
    for (const u of this.#objectUrls) URL.revokeObjectURL(u);
  }

  // --- the screen's actions -------------------------------------------------------------------

  open(view: View): void {
    const key = view.kind === 'room' ? `room:${view.room}` : view.kind === 'dm' ? `dm:${view.peer}` : '';
    this.#set((s) => ({ ...s, view, unread: key && s.unread[key] ? { ...s.unread, [key]: 0 } : s.unread }));
  }

  dismissAlert(id: number): void {
    this.#set((s) => ({ ...s, alerts: s.alerts.filter((a) => a.id !== id) }));
  }

  alert(text: string, key?: string): void {
    const id = ++this.#alertSeq;
    this.#set((s) => ({ ...s, alerts: [...s.alerts.filter((a) => key === undefined || a.key !== key), { id, text, ...(key ? { key } : {}) }] }));
  }

  /** Creates (announces) a room if new, and joins it. Returns an error text, or undefined. */
  async joinRoom(name: string): Promise<string | undefined> {
    const room = name.trim().toLowerCase();
    const bad = checkRoom(room);
    if (bad) return bad;
    const s = this.store.get();
    if (!s.rooms.includes(room)) {
      this.#set((st) => ({ ...st, rooms: [...st.rooms, room].sort() }));
      if (this.connected) this.#publish(ROOMS_TOPIC, { name: room } satisfies RoomCreated);
    }
    if (!s.joined.includes(room)) {
      this.#set((st) => ({ ...st, joined: [...st.joined, room] }));
      saveRooms(this.me, this.store.get().joined);
      if (this.#peer) await this.#enterRoom(this.#peer, room);
    }
    this.open({ kind: 'room', room });
    return undefined;
  }

  leaveRoom(room: string): void {
    if (this.connected) this.#publish(presenceTopic(room), { type: 'gone' } satisfies PresenceNotice);
    for (const sub of this.#roomSubs.get(room) ?? []) sub.unsubscribe();
    this.#roomSubs.delete(room);
    this.#set((s) => {
      const joined = s.joined.filter((r) => r !== room);
      const { [room]: _m, ...members } = s.members;
      const view: View = s.view.kind === 'room' && s.view.room === room ? (joined[0] ? { kind: 'room', room: joined[0] } : { kind: 'none' }) : s.view;
      return { ...s, joined, members, view };
    });
    saveRooms(this.me, this.store.get().joined);
  }

  /** Publishes a room message. Returns false (and says why) when it could not go out. */
  sayInRoom(room: string, text: string): boolean {
    const t = text.trim();
    if (!t) return false;
    if (t.length > MAX_TEXT) {
      this.alert(`A message is at most ${MAX_TEXT} characters.`, 'too-long');
      return false;
    }
    if (!this.connected) {
      this.alert('Not connected: room messages are not queued (publish is best-effort). Send it again once connected.', 'room-offline');
      return false;
    }
    const msg: RoomMessage = { id: newId(), text: t, at: Date.now() };
    this.#publish(roomTopic(room), msg);
    this.#addRoomMessage({ ...msg, room, from: this.me });
    this.#lastTyping.delete(room);
    return true;
  }

  /** Tells the room this user is typing, at most once per TYPING_THROTTLE_MS. */
  typing(room: string): void {
    if (!this.connected) return;
    const now = Date.now();
    if (now - (this.#lastTyping.get(room) ?? 0) < TYPING_THROTTLE_MS) return;
    this.#lastTyping.set(room, now);
    this.#publish(typingTopic(room), { typing: true } satisfies TypingNotice);
  }

  /** Sends a direct message (durable). Returns false when it could not be queued. */
  async sendDm(to: string, text: string): Promise<boolean> {
    const t = text.trim();
    if (!t) return false;
    const peer = this.#peer;
    if (!peer) {
      this.alert('Not connected yet: a direct message can be queued once this page has reached the relay once.', 'dm-offline');
      return false;
    }
    const body: DirectMessage = { type: 'dm', text: t, at: Date.now() };
    try {
      const id = await peer.send(to, body);
      const status = this.#deliveredEarly.delete(id) ? 'delivered' : 'queued';
      this.#setDms((dms) => [...dms, { id, peer: to, dir: 'out', text: t, at: body.at, status }]);
      return true;
    } catch (err) {
      this.alert(`Could not send to ${to}: ${errText(err)}`);
      return false;
    }
  }

  /** Sends a file to `to` through a tunnel. */
  async sendFile(to: string, file: File): Promise<void> {
    const peer = this.#peer;
    if (!peer || !peer.connected) {
      this.alert('Not connected: a file needs a live tunnel to the other user.', 'file-offline');
      return;
    }
    if (file.size > MAX_FILE_BYTES) {
      this.alert(`${file.name} is ${formatBytes(file.size)}; the demo sends files up to ${formatBytes(MAX_FILE_BYTES)}.`);
      return;
    }
    const id = newId();
    // A tunnel keeps the path it was opened on: the one in use when the TOPEN goes out.
    const link = peer.linkTo(to);
    this.#setFiles((fs) => [...fs, { id, peer: to, dir: 'out', at: Date.now(), name: file.name, size: file.size, bytes: 0, link, state: 'sending' }]);
    let tunnel: Tunnel<unknown> | undefined;
    try {
      tunnel = await peer.tunnel<unknown>(to, FILE_PROTOCOL, { mode: 'messages', timeout: 15_000 });
      const w = tunnel.writable.getWriter();
      const header: FileHeader = { name: file.name, size: file.size, type: file.type };
      await w.write(header);
      for (let off = 0; off < file.size; off += FILE_CHUNK_BYTES) {
        const chunk = new Uint8Array(await file.slice(off, off + FILE_CHUNK_BYTES).arrayBuffer());
        await w.write(chunk);
        const bytes = Math.min(file.size, off + chunk.length);
        this.#updateFile(id, { bytes });
      }
      await w.close();
      const reader = tunnel.readable.getReader();
      const receipt = (await reader.read()).value as FileReceipt | undefined;
      if (!receipt?.ok || receipt.bytes !== file.size) throw new Error(`${to} did not confirm the whole file`);
      this.#updateFile(id, { state: 'done', confirmed: true });
      tunnel.close();
    } catch (err) {
      tunnel?.abort('send failed');
      this.#updateFile(id, { state: 'failed', error: errText(err) });
      this.alert(`Sending ${file.name} to ${to} failed: ${errText(err)}`);
    }
  }

  // --- the peer -------------------------------------------------------------------------------

  #attach(peer: Peer): void {
    this.#peer = peer;
    this.#set((s) => ({ ...s, conn: { state: 'connected' } }));
    peer.on('disconnected', () => this.#set((s) => ({ ...s, conn: { state: 'reconnecting', attempt: 0, delay: 0 } })));
    peer.on('reconnecting', ({ attempt, delay }) => this.#set((s) => ({ ...s, conn: { state: 'reconnecting', attempt, delay } })));
    peer.on('reconnected', () => {
      this.#set((s) => ({ ...s, conn: { state: 'connected' } }));
      void this.#refresh(peer);
    });
    peer.on('close', ({ error }) => {
      if (this.#disposed) return;
      this.#set((s) => ({ ...s, conn: { state: 'offline', attempt: 0, delay: 0 } }));
      if (error) {
        if (errCode(error) === 'NAME_TAKEN' || errCode(error) === 'AUTH') this.#set((s) => ({ ...s, fatal: signInMessage(this.me, error) }));
        else this.alert(`The connection ended: ${errText(error)}. Reload the page to connect again.`, 'closed');
      }
    });
    peer.on('error', (err) => this.alert(`Error: ${errText(err)}`));
    peer.on('delivered', ({ id }) => {
      if (!this.#markDm(id, { status: 'delivered' })) this.#deliveredEarly.add(id);
    });
    peer.on('undeliverable', ({ id, to, error }) => {
      this.#markDm(id, { status: 'failed', error: errText(error) });
      this.alert(`A message to ${to} could not be delivered: ${errText(error)}`);
    });
    peer.on('expired', ({ ids }) => {
      for (const id of ids) this.#markDm(id, { status: 'failed', error: 'the relay stopped holding it (the receiver stayed offline)' });
      this.alert(`${ids.length} message(s) expired: the receiver stayed offline longer than the relay holds messages.`);
    });
    peer.on('peer-join', ({ name }) => this.#set((s) => (s.online.includes(name) ? s : { ...s, online: [...s.online, name].sort() })));
    peer.on('peer-leave', ({ name }) =>
      this.#set((s) => ({
        ...s,
        online: s.online.filter((n) => n !== name),
        members: Object.fromEntries(Object.entries(s.members).map(([r, m]) => [r, m.filter((n) => n !== name)])),
      })),
    );
    peer.on('link', ({ name, link, reason }) => {
      this.#set((s) => ({ ...s, links: { ...s.links, [name]: link } }));
      if (reason && link === 'relay') this.alert(`The direct link to ${name} closed (${reason}); traffic goes through the relay, nothing is lost.`, `link:${name}`);
    });

    peer.subscribe<RoomCreated>(ROOMS_TOPIC, (body) => {
      if (body && typeof body.name === 'string' && checkRoom(body.name) === undefined) this.#set((s) => (s.rooms.includes(body.name) ? s : { ...s, rooms: [...s.rooms, body.name].sort() }));
    });
    peer.onTunnel<unknown>(FILE_PROTOCOL, (t) => this.#receiveFile(peer, t), { mode: 'messages' });
    void this.#readInbox(peer);
    this.#typingTimer = setInterval(() => this.#pruneTyping(), 1000);
    for (const room of this.store.get().joined) void this.#enterRoom(peer, room);
    void this.#refresh(peer, false);
  }

  /** Online users, rooms and (after a reconnection) presence and history, asked again. */
  async #refresh(peer: Peer, rejoin = true): Promise<void> {
    try {
      const online = await peer.peers();
      this.#set((s) => ({ ...s, online: online.flatMap((p) => (p.name ? [p.name] : [])).sort() }));
    } catch (err) {
      this.alert(`Could not list who is online: ${errText(err)}`, 'peers');
    }
    void this.#loadRooms(peer);
    if (!rejoin) return;
    for (const room of this.store.get().joined) {
      this.#set((s) => ({ ...s, members: { ...s.members, [room]: [this.me] } }));
      this.#publish(presenceTopic(room), { type: 'here' } satisfies PresenceNotice);
      this.#publish(presenceTopic(room), { type: 'who' } satisfies PresenceNotice);
      void this.#loadHistory(peer, room);
    }
  }

  async #loadRooms(peer: Peer): Promise<void> {
    try {
      const r = await peer.request<RoomsReply>(`${HISTORY_GROUP}/rooms`, {}, { timeout: 5000 });
      this.#set((s) => ({ ...s, rooms: [...new Set([...s.rooms, ...r.rooms.filter((n) => checkRoom(n) === undefined)])].sort() }));
      this.#dropAlert('history');
    } catch (err) {
      this.#historyError(err);
    }
  }

  async #enterRoom(peer: Peer, room: string): Promise<void> {
    if (this.#roomSubs.has(room)) return;
    const subs = [
      peer.subscribe(roomTopic(room), (body, meta) => {
        if (isRoomMessage(body)) this.#addRoomMessage({ id: body.id, text: body.text, at: body.at, room, from: meta.from });
      }),
      peer.subscribe<TypingNotice>(typingTopic(room), (body, meta) => this.#onTyping(room, body, meta)),
      peer.subscribe<PresenceNotice>(presenceTopic(room), (body, meta) => this.#onPresence(room, body, meta)),
    ];
    this.#roomSubs.set(room, subs);
    this.#set((s) => ({ ...s, members: { ...s.members, [room]: [this.me] } }));
    try {
      await Promise.all(subs.map((s) => s.ready));
    } catch (err) {
      this.alert(`Could not join #${room}: ${errText(err)}`);
      return;
    }
    if (!this.#roomSubs.has(room)) return;
    this.#publish(presenceTopic(room), { type: 'here' } satisfies PresenceNotice);
    this.#publish(presenceTopic(room), { type: 'who' } satisfies PresenceNotice);
    await this.#loadHistory(peer, room);
  }

  async #loadHistory(peer: Peer, room: string): Promise<void> {
    try {
      const r = await peer.request<RecentReply>(`${HISTORY_GROUP}/recent`, { room, limit: 200 }, { timeout: 5000 });
      for (const m of r.messages) if (isRoomMessage(m) && typeof m.from === 'string') this.#addRoomMessage({ ...m, room }, false);
      this.#set((s) => ({ ...s, historyFrom: { ...s.historyFrom, [room]: r.servedBy } }));
      this.#dropAlert('history');
    } catch (err) {
      this.#historyError(err);
    }
  }

  #historyError(err: unknown): void {
    const why = errCode(err) === 'NO_ROUTE' ? 'no history service is running (start it with npm start, or npm run history -w apps/demo)' : errText(err);
    this.alert(`Room history is unavailable: ${why}.`, 'history');
  }

  #onTyping(room: string, body: TypingNotice, meta: PublishMeta): void {
    if (meta.from === this.me || !body?.typing) return;
    this.#set((s) => ({ ...s, typing: { ...s.typing, [room]: { ...s.typing[room], [meta.from]: Date.now() + TYPING_SHOW_MS } } }));
  }

  #pruneTyping(): void {
    const now = Date.now();
    this.#set((s) => {
      let changed = false;
      const typing: ChatState['typing'] = {};
      for (const [room, who] of Object.entries(s.typing)) {
        const kept = Object.fromEntries(Object.entries(who).filter(([, until]) => until > now));
        if (Object.keys(kept).length !== Object.keys(who).length) changed = true;
        typing[room] = kept;
      }
      return changed ? { ...s, typing } : s;
    });
  }

  #onPresence(room: string, body: PresenceNotice, meta: PublishMeta): void {
    const from = meta.from;
    if (!from || from === this.me || !body) return;
    if (body.type === 'who') this.#publish(presenceTopic(room), { type: 'here' } satisfies PresenceNotice);
    const here = body.type === 'here' || body.type === 'who';
    this.#set((s) => {
      const now = s.members[room] ?? [this.me];
      const next = here ? (now.includes(from) ? now : [...now, from].sort()) : now.filter((n) => n !== from);
      return next === now ? s : { ...s, members: { ...s.members, [room]: next } };
    });
  }

  #addRoomMessage(m: StoredMessage, live = true): void {
    this.#set((s) => {
      const list = s.roomMessages[m.room] ?? [];
      if (list.some((x) => x.id === m.id)) return s;
      const next = [...list, m];
      // History and live messages meet here: keep time order.
      if (!live || (list.length > 0 && list[list.length - 1]!.at > m.at)) next.sort((a, b) => a.at - b.at);
      const key = `room:${m.room}`;
      const viewing = s.view.kind === 'room' && s.view.room === m.room;
      const typing = s.typing[m.room]?.[m.from] ? { ...s.typing, [m.room]: Object.fromEntries(Object.entries(s.typing[m.room]!).filter(([n]) => n !== m.from)) } : s.typing;
      return {
        ...s,
        typing,
        roomMessages: { ...s.roomMessages, [m.room]: next.slice(-500) },
        unread: live && !viewing && m.from !== this.me ? { ...s.unread, [key]: (s.unread[key] ?? 0) + 1 } : s.unread,
      };
    });
  }

  async #readInbox(peer: Peer): Promise<void> {
    try {
      for await (const m of peer.mailbox()) {
        if (!isDirectMessage(m.body)) {
          this.alert(`A message from ${m.from} was not a chat message; ignored.`);
          continue;
        }
        const body = m.body;
        if (this.store.get().dms.some((d) => d.id === m.id)) continue;
        this.#setDms((dms) => [...dms, { id: m.id, peer: m.from, dir: 'in', text: body.text, at: body.at }]);
        this.#set((s) => {
          const key = `dm:${m.from}`;
          const viewing = s.view.kind === 'dm' && s.view.peer === m.from;
          return viewing ? s : { ...s, unread: { ...s.unread, [key]: (s.unread[key] ?? 0) + 1 } };
        });
      }
    } catch (err) {
      if (!this.#disposed && errCode(err) !== 'CLOSED') this.alert(`Reading direct messages failed: ${errText(err)}`);
    }
  }

  async #receiveFile(peer: Peer, t: Tunnel<unknown>): Promise<void> {
    const from = t.remote;
    const link = peer.linkTo(from);
    const id = newId();
    const reader = t.readable.getReader();
    try {
      const first = await reader.read();
      if (first.done || !isFileHeader(first.value)) throw new Error('the file came without a valid header');
      const header = first.value;
      if (header.size > MAX_FILE_BYTES) {
        t.abort(`files over ${formatBytes(MAX_FILE_BYTES)} are refused`);
        throw new Error(`${header.name} (${formatBytes(header.size)}) is over the ${formatBytes(MAX_FILE_BYTES)} the demo receives`);
      }
      this.#setFiles((fs) => [...fs, { id, peer: from, dir: 'in', at: Date.now(), name: header.name, size: header.size, bytes: 0, link, state: 'receiving' }]);
      const parts: Uint8Array[] = [];
      let got = 0;
      for (;;) {
        const { value, done } = await reader.read();
        if (done) break;
        if (!(value instanceof Uint8Array)) throw new Error('a chunk that is not bytes');
        got += value.byteLength;
        if (got > header.size) throw new Error(`more than the announced ${header.size} bytes`);
        parts.push(value.slice());
        this.#updateFile(id, { bytes: got });
      }
      if (got !== header.size) throw new Error(`the transfer ended after ${got} of ${header.size} bytes`);
      const url = URL.createObjectURL(new Blob(parts as BlobPart[], { type: header.type || 'application/octet-stream' }));
      this.#objectUrls.push(url);
      const w = t.writable.getWriter();
      await w.write({ ok: true, bytes: got } satisfies FileReceipt);
      await w.close();
      this.#updateFile(id, { state: 'done', url });
    } catch (err) {
      if (t.state !== 'closed') t.abort(errText(err));
      this.#updateFile(id, { state: 'failed', error: errText(err) });
      this.alert(`Receiving a file from ${from} failed: ${errText(err)}`);
    }
  }

  // --- helpers ----------------------------------------------------------------------------------

  #publish(topic: string, body: unknown): void {
    try {
      this.#peer?.publish(topic, body);
    } catch (err) {
      this.alert(`Could not publish to ${topic}: ${errText(err)}`);
    }
  }

  #set(fn: (s: ChatState) => ChatState): void {
    this.store.update(fn);
  }

  #dropAlert(key: string): void {
    this.#set((s) => (s.alerts.some((a) => a.key === key) ? { ...s, alerts: s.alerts.filter((a) => a.key !== key) } : s));
  }

  #setDms(fn: (dms: DmEntry[]) => DmEntry[]): void {
    this.#set((s) => ({ ...s, dms: fn(s.dms) }));
    saveDms(this.me, this.store.get().dms);
  }

  /** Updates the outgoing DM `id`; false when there is none (yet). */
  #markDm(id: string, patch: Partial<DmEntry>): boolean {
    if (!this.store.get().dms.some((d) => d.id === id)) return false;
    this.#setDms((dms) => dms.map((d) => (d.id === id ? { ...d, ...patch } : d)));
    return true;
  }

  #setFiles(fn: (fs: FileTransfer[]) => FileTransfer[]): void {
    this.#set((s) => ({ ...s, files: fn(s.files) }));
  }

  #updateFile(id: string, patch: Partial<FileTransfer>): void {
    this.#setFiles((fs) => fs.map((f) => (f.id === id ? { ...f, ...patch } : f)));
  }
}

export function formatBytes(n: number): string {
  if (n < 1024) return `${n} B`;
  if (n < 1024 * 1024) return `${(n / 1024).toFixed(1)} KiB`;
  return `${(n / 1024 / 1024).toFixed(1)} MiB`;
}
