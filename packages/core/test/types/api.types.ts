/**
 * Type tests for the public API of @missive/core. Checked by `tsc -p packages/core/tsconfig.json`
 * (strict); never run: the name does not end in `.test.ts`, so vitest does not pick it up, and the
 * code sits in functions nobody calls.
 *
 * Each `@ts-expect-error` marks a misuse the types must reject. If a type loosens so that the
 * misuse compiles, tsc fails with "Unused '@ts-expect-error' directive".
 */
import {
  AuthError,
  ClosedError,
  CloseCode,
  createPeer,
  ErrorCode,
  errorFromCode,
  LimitError,
  Mailbox,
  matchTopic,
  memoryTransportPair,
  MissiveError,
  NameTakenError,
  NoRouteError,
  Peer,
  PROTOCOL_VERSION,
  ProtocolError,
  RemoteError,
  Router,
  TimeoutError,
  type AuthGrant,
  type AuthHook,
  type CloseInfo,
  type CodecName,
  type ConnectionInfo,
  type MailboxStats,
  type Message,
  type PeerEvents,
  type PeerInfo,
  type PeerOptions,
  type PublishMeta,
  type RequestContext,
  type RouterEvents,
  type Subscription,
  type TraceEvent,
  type Transport,
} from '../../src/index.js';

type Equal<A, B> = (<T>() => T extends A ? 1 : 2) extends <T>() => T extends B ? 1 : 2 ? true : false;
/** Compiles only when every type argument is `true`. */
function check<A extends true, B extends true = true, C extends true = true>(): void {}

declare const peer: Peer;
declare const router: Router;
declare const transport: Transport;

// ---- send -------------------------------------------------------------------------------------

export async function send(): Promise<void> {
  const id = await peer.send('bob', { text: 'hi' });
  check<Equal<typeof id, string>>();
  await peer.send('bob/chat', undefined, { waitForDelivery: true });

  // @ts-expect-error the address is a string
  await peer.send(42, { text: 'hi' });
  // @ts-expect-error ...not an object
  await peer.send({ name: 'bob' }, 1);
  // @ts-expect-error waitForDelivery is a boolean
  await peer.send('bob', 1, { waitForDelivery: 'yes' });
  // @ts-expect-error no such option
  await peer.send('bob', 1, { retries: 3 });
}

// ---- request / reply --------------------------------------------------------------------------

export async function requestReply(): Promise<void> {
  const sum = await peer.request<number>('bob/add', { a: 1, b: 2 }, { timeout: 1000 });
  check<Equal<typeof sum, number>>();
  const untyped = await peer.request('bob/add');
  check<Equal<typeof untyped, unknown>>();
  await peer.request('bob/add', { a: 1 }, { signal: new AbortController().signal });

  // @ts-expect-error timeout is a number of ms, not a string
  await peer.request('bob/add', { a: 1, b: 2 }, { timeout: '1000' });
  // @ts-expect-error signal is an AbortSignal
  await peer.request('bob/add', {}, { signal: true });
  // @ts-expect-error the address is a string
  await peer.request(['bob', 'add'], {});
  // @ts-expect-error the reply type is what was asked for
  const wrong: string = await peer.request<number>('bob/add');
  void wrong;

  const remove = peer.handle<{ a: number; b: number }, number>('add', (body, ctx) => {
    check<Equal<typeof ctx, RequestContext>>();
    check<Equal<typeof ctx.signal, AbortSignal>, Equal<typeof ctx.deadline, number>, Equal<typeof ctx.from, string>>();
    return body.a + body.b;
  });
  check<Equal<typeof remove, () => void>>();
  peer.handle<{ a: number }, number>('async', async (body) => body.a);
  peer.handle('anything', () => undefined);
  peer.handle('untyped', (body) => {
    // @ts-expect-error an untyped body is unknown until checked
    return body.a;
  });

  // @ts-expect-error the handler must return R (number), not a string
  peer.handle<{ a: number; b: number }, number>('add', (body) => String(body.a + body.b));
  // @ts-expect-error ...nor a promise of one
  peer.handle<{ a: number }, number>('add', async () => 'three');
  // @ts-expect-error the body is B
  peer.handle<{ a: number }, number>('add', (body) => body.b);
  // @ts-expect-error the context has no such field
  peer.handle('ctx', (_body, ctx) => ctx.replyTo);
  // @ts-expect-error a handler is a function
  peer.handle('add', 3);
}

// ---- mailboxes --------------------------------------------------------------------------------

export async function mailboxes(): Promise<void> {
  const msg = await peer.receive({ timeout: 1000 });
  check<Equal<typeof msg, Message<unknown>>>();
  const typed = await peer.mailbox<{ text: string }>('chat').receive({ match: (m) => m.body.text.startsWith('hi') });
  check<Equal<typeof typed.body, { text: string }>, Equal<typeof typed.from, string>, Equal<typeof typed.sentAt, number>>();
  for await (const m of peer.mailbox<{ n: number }>('numbers')) check<Equal<typeof m.body.n, number>>();
  const box = new Mailbox<number>('x', 10);
  check<Equal<ReturnType<typeof box.peek>, Message<number>[]>, Equal<ReturnType<typeof box.stats>, MailboxStats>>();
  await box.receive({ signal: AbortSignal.timeout(10) });

  // @ts-expect-error receive's timeout is a number
  await peer.receive({ timeout: '1000' });
  // @ts-expect-error ...on a mailbox too
  await peer.mailbox().receive({ timeout: '1s' });
  // @ts-expect-error match is a predicate, not a value
  await new Mailbox('x').receive({ match: 5 });
  // @ts-expect-error the predicate takes a Message<T>
  await new Mailbox<string>('x').receive({ match: (m: Message<number>) => m.body > 1 });
  // @ts-expect-error an unknown body has no fields until checked
  void msg.body.text;
  // @ts-expect-error no such stat
  void box.stats().size;
  // @ts-expect-error a message's id is read by receivers, its type is fixed
  const n: number = msg.id;
  void n;
}

// ---- pub/sub, groups, presence ----------------------------------------------------------------

export async function pubsub(): Promise<void> {
  const sub = peer.subscribe<{ text: string }>('room.*', (body, meta) => {
    check<Equal<typeof body, { text: string }>, Equal<typeof meta, PublishMeta>>();
    void meta.topic.toUpperCase();
  });
  check<Equal<typeof sub, Subscription>, Equal<typeof sub.ready, Promise<void>>>();
  await sub.ready;
  sub.unsubscribe();
  peer.subscribe('a.>', () => {});
  peer.subscribe('a.>', (body) => void body);
  peer.publish('room.lobby', { text: 'yo' });
  peer.publish('room.lobby');
  await peer.join('workers');
  await peer.leave('workers');
  peer.broadcast('workers', { cmd: 'reload' });
  const list = await peer.peers();
  check<Equal<typeof list, PeerInfo[]>>();

  // @ts-expect-error a subscriber gets (body, meta): a third required parameter is never given
  peer.subscribe('room.*', (body: unknown, meta: PublishMeta, extra: number) => void [body, meta, extra]);
  // @ts-expect-error meta is PublishMeta, not a string
  peer.subscribe('room.*', (body: unknown, meta: string) => void [body, meta]);
  peer.subscribe<{ text: string }>('room.*', (body) => {
    // @ts-expect-error the body has the subscribed type
    void body.nope;
  });
  // @ts-expect-error a pattern is a string
  peer.subscribe(/room\..*/, () => {});
  // @ts-expect-error a topic is a string
  peer.publish(5, {});
  // @ts-expect-error a group is a string
  await peer.join(7);
  // @ts-expect-error a subscription's pattern is read-only
  sub.pattern = 'other';
}

// ---- events -----------------------------------------------------------------------------------

export function events(): void {
  const off = peer.on('delivered', ({ id, to }) => void [id.length, to.length]);
  check<Equal<typeof off, () => void>>();
  peer.on('undeliverable', (e) => check<Equal<typeof e.error, MissiveError>>());
  peer.on('peer-join', ({ name, id }) => void [name, id]);
  peer.on('peer-leave', (e) => check<Equal<typeof e, PeerInfo>>());
  peer.on('close', (e) => check<Equal<typeof e, PeerEvents['close']>, Equal<typeof e.error, Error | undefined>>());
  peer.on('trace', (e) => check<Equal<typeof e, TraceEvent>>());
  peer.once('error', (err) => check<Equal<typeof err, Error>>());
  router.on('protocol-error', ({ id, error }) => check<Equal<typeof id, string>, Equal<typeof error, ProtocolError>, Equal<typeof error.reason, string>>());
  router.on('connect', (info) => check<Equal<typeof info, ConnectionInfo>>());
  router.on('disconnect', (e) => check<Equal<typeof e.code, number>>());

  // @ts-expect-error no such event
  peer.on('no-such-event', () => {});
  // @ts-expect-error events are named in kebab-case
  peer.on('peerJoin', () => {});
  // @ts-expect-error the payload has id and to
  peer.on('delivered', (e) => e.messageId);
  // @ts-expect-error the listener takes the event's payload
  peer.on('delivered', (e: number) => e);
  // @ts-expect-error no such router event
  router.on('message', () => {});
}

// ---- errors -----------------------------------------------------------------------------------

export function errors(err: MissiveError, unknownErr: unknown): void {
  check<Equal<typeof err.code, ErrorCode>>();
  if (err.code === 'TIMEOUT' || err.code === ErrorCode.NO_ROUTE) void err.message;
  // @ts-expect-error codes are a closed set: a typo is caught
  if (err.code === 'TYPO') void err;
  // @ts-expect-error ...and lower case is a typo too
  if (err.code === 'timeout') void err;
  // @ts-expect-error the code is read-only
  err.code = 'CLOSED';

  if (unknownErr instanceof RemoteError) check<Equal<typeof unknownErr.remoteCode, string>>();
  if (unknownErr instanceof ProtocolError) check<Equal<typeof unknownErr.reason, string>>();
  const all: MissiveError[] = [
    new TimeoutError(),
    new ClosedError('closed', { cause: new Error('x') }),
    new NoRouteError(),
    new RemoteError('BAD_INPUT', 'bad'),
    new AuthError(),
    new NameTakenError(),
    new LimitError(),
    new ProtocolError('why'),
    errorFromCode('LIMIT', 'full'),
  ];
  void all;
  // @ts-expect-error a RemoteError needs the remote code and message
  void new RemoteError();
  // @ts-expect-error a ProtocolError needs its reason
  void new ProtocolError();
  // @ts-expect-error ErrorCode has no such member
  void ErrorCode.OOPS;
}

// ---- setup: peers, routers, transports --------------------------------------------------------

export async function setup(): Promise<void> {
  const [a, b] = memoryTransportPair({ highWaterMark: 1024 });
  router.accept(b);
  const p = await createPeer(a, { name: 'alice', namespace: 'ns', codec: 'json', requestTimeout: 500 });
  check<Equal<typeof p, Peer>, Equal<typeof p.id, string>, Equal<typeof p.name, string | undefined>>();
  const codec: CodecName = 'msgpack';
  const options: PeerOptions = { codec, token: 't', mailboxCapacity: 10, connectTimeout: 100 };
  void options;
  const auth: AuthHook = async ({ name, secret }) => (secret === 's3cret' ? { name, groups: ['workers'], subscribe: ['room.>'] } : undefined);
  const sync: AuthHook = () => {};
  const r = new Router({ auth, limits: { maxFrameBytes: 1 << 20 } });
  void [r, sync, new Router(), new Router({ limits: { handshakeTimeout: 50 } })];
  check<Equal<typeof router.limits.maxFrameBytes, number>>();
  check<Equal<(typeof CloseCode)['TOO_BIG'], 1009>, Equal<typeof PROTOCOL_VERSION, 1>>();
  const sent: boolean = transport.send(new Uint8Array(1));
  void sent;
  transport.close({ code: CloseCode.NORMAL });
  transport.listen({ message: (d) => check<Equal<typeof d, Uint8Array>>(), drain: () => {}, close: (info) => check<Equal<typeof info, CloseInfo>>() });
  void matchTopic('a.*', 'a.b');
  const grant: AuthGrant = { expiresAt: Date.now() + 1000 };
  void grant;
  const e: RouterEvents['protocol-error'] = { id: '~1', error: new ProtocolError('x') };
  void e;

  // @ts-expect-error no such codec
  await createPeer(a, { codec: 'xml' });
  // @ts-expect-error a name is a string
  await createPeer(a, { name: 5 });
  // @ts-expect-error createPeer takes a Transport, not a URL
  await createPeer('ws://localhost:8787');
  // @ts-expect-error limits are numbers
  void new Router({ limits: { maxFrameBytes: '1mb' } });
  // @ts-expect-error an auth grant's lists are arrays
  const badAuth: AuthHook = () => ({ groups: 'workers' });
  void badAuth;
  // @ts-expect-error transports carry bytes, not strings
  transport.send('text');
  // @ts-expect-error status is 'open' | 'closing' | 'closed'
  if (transport.status === 'opening') void transport;
  // @ts-expect-error no such close code
  void CloseCode.NOPE;
  // @ts-expect-error a peer's id is read-only
  p.id = 'x';
  // @ts-expect-error Peer is made by createPeer / Peer.connect, not new
  void new Peer();
}
