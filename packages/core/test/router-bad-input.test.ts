/**
 * The Router fed bad input over raw connections: random byte strings, and well-formed frames
 * that break the protocol (wrong kinds, frames before HELLO, a second HELLO, a wrong version,
 * truncated fields, huge lengths, unknown kinds, bad names...), while two real peers keep
 * talking through the same Router. Every offending connection must be closed, alone, after a BYE
 * naming the broken rule; the Router must never throw.
 *
 * The inputs come from a seeded PRNG: a failure prints the seed, the wave and the input, and
 * `MISSIVE_FUZZ_SEED=<n> npx vitest run packages/core/test/router-bad-input.test.ts` replays it.
 */
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { checkName } from '../src/address.js';
import { ByteWriter } from '../src/codec/bytes.js';
import { encodeBody } from '../src/codec/body.js';
import {
  BODY_NEXT,
  BodyCodec,
  decodeBatch,
  encodeFrame,
  frame,
  FrameTooLargeError,
  Kind,
  kindName,
  PROTOCOL_VERSION,
  schemas,
  type Frame,
} from '../src/codec/frames.js';
import { createPeer, memoryTransportPair, ProtocolError, Router, type CloseInfo, type Peer } from '../src/index.js';
import { Rng } from '../src/testing.js';
import { checkPattern, checkTopic } from '../src/topics.js';

// Core is typed without Node's globals (it runs in browsers too); these tests run on Node.
interface NodeProcess {
  env: Record<string, string | undefined>;
  on(event: 'uncaughtException' | 'unhandledRejection', fn: (err: unknown) => void): void;
  off(event: 'uncaughtException' | 'unhandledRejection', fn: (err: unknown) => void): void;
}
const nodeProcess = (globalThis as unknown as { process: NodeProcess }).process;

const SEED = Number(nodeProcess.env['MISSIVE_FUZZ_SEED'] ?? 0x6d697373);
const MAX_FRAME = 4096;
const INPUTS = 10_000;
const WAVE = 250; // raw connections open at once
const CHECK_EVERY = 5; // waves between explicit alice↔bob round trips
const CANARY = 0xc0ffee;

const hex = (b: Uint8Array | number[]): string => Array.from(b, (x) => x.toString(16).padStart(2, '0')).join('');
const le32 = (n: number): number[] => [n & 0xff, (n >>> 8) & 0xff, (n >>> 16) & 0xff, (n >>> 24) & 0xff];
const unit = (frameBytes: number[]): number[] => [...le32(frameBytes.length), ...frameBytes];
const concat = (...parts: (number[] | Uint8Array)[]): Uint8Array => Uint8Array.from(parts.flatMap((p) => [...p]));

// ---- random field values ----------------------------------------------------------------------

type Schema = { fields: readonly (readonly [string, 'u8' | 'uint' | 'str'])[]; body: boolean };
const schemaOf = (kind: number): Schema => (schemas as Record<number, Schema>)[kind]!;
const ALL_KINDS = Object.values(Kind) as number[];
const RELAY_ONLY = [Kind.Welcome, Kind.Pong, Kind.Presence, Kind.Ok, Kind.Err] as number[];
const CLIENT_KINDS = ALL_KINDS.filter((k) => !RELAY_ONLY.includes(k));
/** Client kinds that never end a handshaken connection, whatever their field values. */
const FILLER_KINDS = CLIENT_KINDS.filter((k) => k !== Kind.Hello && k !== Kind.Bye);
const UNKNOWN_KINDS = Array.from({ length: 256 }, (_, i) => i).filter((k) => !ALL_KINDS.includes(k));

// Real names are in the pools so that junk reaches the real peers too.
const ADDRESSES = ['alice', 'bob', 'alice/chat', 'bob/chat', 'bob/echo', 'alice/time', 'bob/nope', 'nobody', 'nobody/x', 'workers', 'workers/inbox', '~', '~zz9', '', '/', 'a/b/c', ' ', 'é', '😀'];
const PATTERNS = ['room.*', 'room.>', '>', '*', 'a.b.c', 'chat', '', '.', 'a..b', '>.a', 'a.>.b', '*.*', 'x'.repeat(1025), 'é.ü', 'a b'];
const GROUPS = ['workers', 'g', 'room', '', '~g', 'a b', 'a/b', '\u0000', 'x'.repeat(129), 'é', 'tab\t'];
const ALPHABET = [...'abcxyz019.*>/~ -_', '\u0000', '\u001f', '\u007f', 'é', 'ü', '日', '😀', '\ufeff'];
const BAD_NAMES = ['~x', '~', 'a b', 'a/b', 'tab\t', 'nl\n', '\u0000', 'del\u007f', 'x'.repeat(129), ' '];

function randomString(rng: Rng): string {
  switch (rng.int(7)) {
    case 0:
      return '';
    case 1:
      return rng.pick(ADDRESSES);
    case 2:
      return rng.pick(PATTERNS);
    case 3:
      return rng.pick(GROUPS);
    case 4:
    case 5: {
      let s = '';
      for (let n = 1 + rng.int(16); n > 0; n--) s += rng.pick(ALPHABET);
      return s;
    }
    default:
      return rng.pick(['x', 'é', '😀', '.', 'a.']).repeat(rng.int(300));
  }
}

function randomUint(rng: Rng): number {
  return rng.pick([0, 1, 2, 3, 127, 128, 255, 300, 0x7fffffff, 2 ** 31, 2 ** 32, Number.MAX_SAFE_INTEGER, rng.int(1e6), Math.floor(rng.next() * 2 ** 53)]);
}

function randomBody(rng: Rng): { body: Uint8Array; flags: number } {
  switch (rng.int(5)) {
    case 0:
      return { body: new Uint8Array(0), flags: rng.int(4) };
    case 1: {
      const e = encodeBody({ n: rng.int(1000), s: randomString(rng) }, BodyCodec.Msgpack);
      return { body: e.bytes, flags: e.codec };
    }
    case 2: {
      const e = encodeBody([randomString(rng), rng.next()], BodyCodec.Json);
      return { body: e.bytes, flags: e.codec };
    }
    default:
      // Junk under a random codec: the Router must not care, receivers must cope.
      return { body: Uint8Array.from(rng.bytes(1 + rng.int(200))), flags: 1 + rng.int(3) };
  }
}

/** A well-formed frame of `kind` with random field values (and a random body where allowed). */
function randomFrame(rng: Rng, kind: number): Frame {
  for (;;) {
    const values: Record<string, string | number> = {};
    for (const [name, type] of schemaOf(kind).fields) {
      values[name] = type === 'str' ? randomString(rng) : type === 'uint' ? randomUint(rng) : rng.int(256);
    }
    const { body, flags } = schemaOf(kind).body ? randomBody(rng) : { body: new Uint8Array(0), flags: rng.chance(0.2) ? 1 + rng.int(3) : 0 };
    const f = frame(kind as Kind, values as never, body, flags) as Frame;
    if (encodeFrame(f).length - 4 <= MAX_FRAME) return f;
  }
}

const frameUnit = (f: Frame): number[] => [...encodeFrame(f)];

let helloCount = 0;
/** A HELLO the Router accepts: version 1, a fresh name (or anonymous), a valid namespace. */
function goodHello(rng: Rng): number[] {
  const name = rng.chance(0.5) ? `r${(helloCount++).toString(36)}` : '';
  const namespace = rng.pick(['', 'default', 'ns1', 'ns2']);
  return frameUnit(frame(Kind.Hello, { version: PROTOCOL_VERSION, name, namespace, secret: randomString(rng), token: randomString(rng), session: '' }));
}

// ---- malformed frames -------------------------------------------------------------------------

/** The header bytes of a random frame of `kind` (kind, flags, fields; no body). */
function header(rng: Rng, kind: number): number[] {
  const f = randomFrame(rng, kind);
  return [...encodeFrame({ ...f, body: new Uint8Array(0), flags: 0 } as Frame).subarray(4)];
}

/** Writes kind, flags and the fields before `stop`, with random valid values. */
function fieldsUntil(rng: Rng, kind: number, stop: number, flags = 0): ByteWriter {
  const w = new ByteWriter(64);
  w.u8(kind);
  w.u8(flags);
  schemaOf(kind).fields.slice(0, stop).forEach(([, type]) => {
    if (type === 'str') w.str(randomString(rng).slice(0, 20));
    else if (type === 'uint') w.varuint(randomUint(rng));
    else w.u8(rng.int(256));
  });
  return w;
}

const fieldIndexes = (kind: number, type: string): number[] =>
  schemaOf(kind).fields.flatMap(([, t], i) => (t === type ? [i] : []));

type Offence = (rng: Rng) => number[];

/** Breaches that are broken whatever the connection's state. */
const ANY_STATE: Record<string, Offence> = {
  relayOnlyKind: (rng) => frameUnit(randomFrame(rng, rng.pick(RELAY_ONLY))),
  truncatedField: (rng) => {
    const h = header(rng, rng.pick(ALL_KINDS));
    return unit(h.slice(0, rng.int(h.length)));
  },
  hugeStringLength: (rng) => {
    const kind = rng.pick(ALL_KINDS.filter((k) => fieldIndexes(k, 'str').length > 0));
    const w = fieldsUntil(rng, kind, rng.pick(fieldIndexes(kind, 'str')));
    w.varuint(rng.pick([MAX_FRAME, 2 ** 31, 2 ** 32 + 1, 2 ** 50, Number.MAX_SAFE_INTEGER, 100 + rng.int(1000)]));
    w.bytes(Uint8Array.from(rng.bytes(rng.int(20))));
    return unit([...w.take()]);
  },
  unknownKind: (rng) => unit([rng.pick(UNKNOWN_KINDS), 0, ...rng.bytes(rng.int(40))]),
  reservedFlags: (rng) => {
    const h = header(rng, rng.pick(ALL_KINDS));
    // Bits 0–1 are the codec and bit 2 is BODY_NEXT; any of bits 3–7 is reserved.
    h[1] = (rng.int(31) + 1) << 3 | rng.int(8);
    return unit(h);
  },
  bodyOnBodylessKind: (rng) => {
    const h = header(rng, rng.pick(ALL_KINDS.filter((k) => !schemaOf(k).body)));
    h[1] = rng.int(4);
    return unit([...h, ...rng.bytes(1 + rng.int(30))]);
  },
  bodyNextOnBodylessKind: (rng) => {
    const h = header(rng, rng.pick(ALL_KINDS.filter((k) => !schemaOf(k).body)));
    h[1] = BODY_NEXT | rng.int(4);
    return unit(h);
  },
  bodyNextWithoutCodec: (rng) => {
    const h = header(rng, rng.pick(ALL_KINDS.filter((k) => schemaOf(k).body)));
    h[1] = BODY_NEXT;
    return unit(h);
  },
  bodyNextWithBodyBytes: (rng) => {
    const h = header(rng, rng.pick(ALL_KINDS.filter((k) => schemaOf(k).body)));
    h[1] = BODY_NEXT | (1 + rng.int(3));
    return unit([...h, ...rng.bytes(1 + rng.int(30))]);
  },
  // A valid head whose body is to be the next message, followed by a frame in the same message.
  frameAfterBodyNext: (rng) => {
    const h = header(rng, rng.pick(ALL_KINDS.filter((k) => schemaOf(k).body)));
    h[1] = BODY_NEXT | (1 + rng.int(3));
    return unit(h);
  },
  bodyWithoutCodec: (rng) => unit([...header(rng, rng.pick(ALL_KINDS.filter((k) => schemaOf(k).body))), ...rng.bytes(1 + rng.int(30))]),
  invalidUtf8: (rng) => {
    const kind = rng.pick(ALL_KINDS.filter((k) => fieldIndexes(k, 'str').length > 0));
    const w = fieldsUntil(rng, kind, rng.pick(fieldIndexes(kind, 'str')));
    const bad = rng.pick([[0xff], [0xc3, 0x28], [0xc0, 0x80], [0xed, 0xa0, 0x80], [0xf8, 0x88, 0x80, 0x80, 0x80], [0xe2, 0x82]]);
    const s = [...Array<number>(rng.int(80)).fill(0x61), ...bad];
    w.varuint(s.length);
    w.bytes(Uint8Array.from(s));
    return unit([...w.take(), ...rng.bytes(rng.int(8))]);
  },
  oversizedVaruint: (rng) => {
    const kind = rng.pick(ALL_KINDS.filter((k) => fieldIndexes(k, 'uint').length > 0));
    const w = fieldsUntil(rng, kind, rng.pick(fieldIndexes(kind, 'uint')));
    w.bytes(Uint8Array.from(rng.chance(0.5) ? [0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x10 + rng.int(0x70)] : [...Array(8).fill(0xff), rng.int(128)]));
    return unit([...w.take(), ...rng.bytes(rng.int(8))]);
  },
  frameTooLarge: (rng) => [...le32(MAX_FRAME + 1 + rng.int(2 ** 31)), ...rng.bytes(rng.int(64))],
  lengthBeyondMessage: (rng) => {
    const rest = rng.bytes(rng.int(50));
    return [...le32(rest.length + 1 + rng.int(MAX_FRAME - rest.length)), ...rest];
  },
  shortFrame: (rng) => unit([...rng.bytes(rng.int(2))]),
};

/** Breaches of the handshake: only before WELCOME. */
const BEFORE_HELLO: Record<string, Offence> = {
  ...ANY_STATE,
  clientKindBeforeHello: (rng) => frameUnit(randomFrame(rng, rng.pick(FILLER_KINDS.concat(Kind.Bye)))),
  wrongVersion: (rng) => {
    const version = rng.pick([0, 2, 3, 0x7f, 0x80, 2 ** 31, Number.MAX_SAFE_INTEGER]);
    return frameUnit(frame(Kind.Hello, { version, name: '', namespace: '', secret: '', token: '', session: '' }));
  },
  badName: (rng) => frameUnit(frame(Kind.Hello, { version: 1, name: rng.pick(BAD_NAMES), namespace: '', secret: '', token: '', session: '' })),
  badNamespace: (rng) => frameUnit(frame(Kind.Hello, { version: 1, name: '', namespace: rng.pick(BAD_NAMES), secret: '', token: '', session: '' })),
};

/** Breaches after WELCOME. */
const AFTER_HELLO: Record<string, Offence> = {
  ...ANY_STATE,
  secondHello: (rng) => frameUnit(randomFrame(rng, Kind.Hello)),
};

// ---- what the Router must do: an independent statement of the rules ------------------------

type Outcome = { close: 'protocol' | 'limit'; reason: string } | { close: 'none' } | { close: 'bye' };

const FROM_CLIENT = new Set(CLIENT_KINDS);

/** The fate of a connection fed `messages` (one per transport message), per docs/protocol.md. */
function predict(messages: Uint8Array[]): Outcome {
  let state: 'handshake' | 'open' = 'handshake';
  const step = (f: Frame): Outcome | undefined => {
    if (!FROM_CLIENT.has(f.kind)) return { close: 'protocol', reason: `${kindName(f.kind)} frames are sent by the relay, not to it` };
    if (state === 'handshake') {
      if (f.kind !== Kind.Hello) return { close: 'protocol', reason: `${kindName(f.kind)} before WELCOME` };
      if (f.version !== PROTOCOL_VERSION) return { close: 'protocol', reason: `unsupported protocol version ${f.version} (relay speaks ${PROTOCOL_VERSION})` };
      const bad = (f.name && checkName(f.name)) || checkName(f.namespace || 'default', 'namespace');
      if (bad) return { close: 'protocol', reason: bad };
      state = 'open';
      return undefined;
    }
    if (f.kind === Kind.Hello) return { close: 'protocol', reason: 'second HELLO' };
    if (f.kind === Kind.Bye) return { close: 'bye' };
    return undefined;
  };
  // A frame flagged BODY_NEXT ends its message; the next message is its body.
  let head: { f: Frame; size: number } | undefined;
  for (const m of messages) {
    let outcome: Outcome | undefined;
    try {
      if (head) {
        const { f, size } = head;
        head = undefined;
        if (size - 4 + m.length > MAX_FRAME) throw new FrameTooLargeError(size - 4 + m.length, MAX_FRAME);
        if (m.length === 0) throw new ProtocolError('empty message');
        outcome = step(f);
      } else {
        decodeBatch(m, MAX_FRAME, (f, size) => {
          if (outcome) return;
          if (head) throw new ProtocolError('a frame follows one whose body is the next message');
          if (f.flags & BODY_NEXT) head = { f, size };
          else outcome = step(f);
        });
      }
    } catch (err) {
      if (!(err instanceof ProtocolError)) throw err;
      outcome ??= { close: err instanceof FrameTooLargeError ? 'limit' : 'protocol', reason: err.reason };
    }
    if (outcome) return outcome;
  }
  return { close: 'none' };
}

// ---- raw connections --------------------------------------------------------------------------

class RawClient {
  readonly frames: Frame[] = [];
  readonly decodeErrors: unknown[] = [];
  closeInfo: CloseInfo | undefined;
  readonly closed: Promise<CloseInfo>;
  readonly #send: (d: Uint8Array) => boolean;

  constructor(router: Router) {
    const [client, server] = memoryTransportPair();
    router.accept(server);
    this.#send = (d) => client.send(d);
    this.closed = new Promise((resolve) =>
      client.listen({
        message: (d) => {
          try {
            decodeBatch(d, Number.MAX_SAFE_INTEGER, (f) => this.frames.push(f));
          } catch (err) {
            this.decodeErrors.push(err);
          }
        },
        drain: () => {},
        close: (info) => {
          this.closeInfo = info;
          resolve(info);
        },
      }),
    );
  }

  send(data: Uint8Array): void {
    this.#send(data);
  }

  get welcome(): Extract<Frame, { kind: typeof Kind.Welcome }> | undefined {
    const f = this.frames[0];
    return f?.kind === Kind.Welcome ? f : undefined;
  }
}

function within<T>(p: Promise<T>, ms: number, what: () => string): Promise<T> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  return Promise.race([
    p.finally(() => clearTimeout(timer)),
    new Promise<never>((_, reject) => (timer = setTimeout(() => reject(new Error(`timed out: ${what()}`)), ms))),
  ]);
}

// ---- two real peers talking all along ---------------------------------------------------------

interface Talkers {
  alice: Peer;
  bob: Peer;
  stats: { aliceRequests: number; bobRequests: number; toBob: number; toAlice: number; junkToBob: number; junkToAlice: number };
  /** One explicit round trip each way, by request and by send/receive. */
  checkpoint(): Promise<void>;
  stop(): Promise<void>;
}

async function startTalkers(router: Router): Promise<Talkers> {
  const join = async (name: string): Promise<Peer> => {
    const [client, server] = memoryTransportPair();
    router.accept(server);
    return createPeer(client, { name, requestTimeout: 5000 });
  };
  const alice = await join('alice');
  const bob = await join('bob');
  // Junk sent to them by raw connections surfaces here; it must not stop them.
  alice.on('error', () => {});
  bob.on('error', () => {});
  bob.handle('echo', (body) => body);
  alice.handle('time', () => Date.now());
  const bobChat = bob.mailbox<{ seq: number }>('chat', { capacity: 100_000 });
  const aliceChat = alice.mailbox<{ seq: number }>('chat', { capacity: 100_000 });
  const stats = { aliceRequests: 0, bobRequests: 0, toBob: 0, toAlice: 0, junkToBob: 0, junkToAlice: 0 };
  const failures: unknown[] = [];
  let running = true;
  let wake: (() => void)[] = [];
  const notify = (): void => {
    for (const w of wake.splice(0)) w();
  };
  const until = (cond: () => boolean, what: string): Promise<void> =>
    within(
      new Promise<void>((resolve) => {
        const check = (): void => (cond() ? resolve() : void wake.push(check));
        check();
      }),
      5000,
      () => `${what} (${JSON.stringify(stats)})`,
    );

  const loop = (fn: (n: number) => Promise<void>): Promise<void> =>
    (async () => {
      for (let n = 0; running; n++) await fn(n);
    })().catch((err: unknown) => {
      if (running) failures.push(err);
    });
  const receiver = (box: typeof bobChat, from: string, count: 'toBob' | 'toAlice', junk: 'junkToBob' | 'junkToAlice'): Promise<void> =>
    loop(async () => {
      const m = await box.receive();
      if (m.from !== from) {
        stats[junk]++;
        return;
      }
      // Durable sends land once each, in send order.
      if (m.body.seq !== stats[count]) throw new Error(`${count}: got seq ${m.body.seq}, expected ${stats[count]}`);
      stats[count]++;
      notify();
    });

  const loops = [
    loop(async (n) => {
      const reply = await alice.request<{ n: number }>('bob/echo', { n });
      if (reply?.n !== n) throw new Error(`alice got echo ${JSON.stringify(reply)} for ${n}`);
      stats.aliceRequests++;
      notify();
    }),
    loop(async () => {
      const t = await bob.request('alice/time');
      if (typeof t !== 'number') throw new Error(`bob got time ${JSON.stringify(t)}`);
      stats.bobRequests++;
      notify();
    }),
    loop(async (seq) => void (await alice.send('bob/chat', { seq }, { waitForDelivery: true }))),
    loop(async (seq) => void (await bob.send('alice/chat', { seq }, { waitForDelivery: true }))),
  ];
  const receivers = [receiver(bobChat, 'alice', 'toBob', 'junkToBob'), receiver(aliceChat, 'bob', 'toAlice', 'junkToAlice')];

  let marks = 0;
  return {
    alice,
    bob,
    stats,
    async checkpoint() {
      if (failures.length > 0) throw failures[0];
      const mark = `m${marks++}`;
      await expect(alice.request('bob/echo', { mark }, { timeout: 5000 })).resolves.toEqual({ mark });
      await expect(bob.request('alice/time', undefined, { timeout: 5000 })).resolves.toEqual(expect.any(Number));
      const [a, b, r1, r2] = [stats.toBob, stats.toAlice, stats.aliceRequests, stats.bobRequests];
      await until(() => stats.toBob > a && stats.toAlice > b, 'alice and bob exchange messages');
      await until(() => stats.aliceRequests > r1 && stats.bobRequests > r2, 'the request loops make progress');
      expect(alice.connected && bob.connected).toBe(true);
      if (failures.length > 0) throw failures[0];
    },
    async stop() {
      running = false;
      notify();
      await Promise.all(loops);
      await Promise.all([alice.close(), bob.close()]);
      await Promise.all(receivers);
      wake = [];
      if (failures.length > 0) throw failures[0];
    },
  };
}

// ---- the barrage ------------------------------------------------------------------------------

interface Input {
  /** The transport messages to send, in order. */
  messages: Uint8Array[];
  expected: Extract<Outcome, { close: 'protocol' | 'limit' }>;
  /** Whether the connection completes its handshake before the breach. */
  handshaken: boolean;
  /** Frames between the HELLO and the breach with an invalid pattern, topic or group: each gets ERR PROTOCOL. */
  refusals: number[];
  fillers: number;
  category: string;
}

/** Up to 2000 random bytes; sometimes with a plausible length prefix or a real kind byte. */
function randomBytesInput(rng: Rng): Input {
  for (;;) {
    let bytes: number[];
    const shape = rng.int(10);
    if (shape < 3) bytes = [...rng.bytes(rng.int(17))];
    else if (shape < 6) bytes = [...rng.bytes(rng.int(2001))];
    else {
      // A length prefix that fits (or nearly fits) the message, then a kind that may be real.
      const body = rng.bytes(rng.int(2000));
      if (rng.chance(0.7) && body.length > 0) body[0] = rng.pick(ALL_KINDS);
      if (rng.chance(0.5) && body.length > 1) body[1] = rng.int(4);
      const len = rng.chance(0.7) ? body.length : Math.max(0, body.length + rng.int(9) - 4);
      bytes = [...le32(len), ...body];
      // ...and sometimes a second unit.
      if (rng.chance(0.2)) bytes.push(...le32(rng.int(50)), ...rng.bytes(rng.int(50)));
    }
    const messages = [Uint8Array.from(bytes)];
    const expected = predict(messages);
    // A random message that happens to be a valid HELLO (and nothing wrong after it) is not bad input.
    if (expected.close === 'protocol' || expected.close === 'limit') {
      return { messages, expected, handshaken: false, refusals: [], fillers: 0, category: `random-${shape < 3 ? 'short' : shape < 6 ? 'long' : 'prefixed'}` };
    }
  }
}

/** Whether the Router refuses this filler with ERR PROTOCOL (and keeps the connection). */
function refusalRef(f: Frame): number | undefined {
  switch (f.kind) {
    case Kind.Sub:
    case Kind.Unsub:
      return checkPattern(f.pattern) ? f.ref : undefined;
    case Kind.Join:
    case Kind.Leave:
      return checkName(f.group, 'group') ? f.ref : undefined;
    case Kind.Pub:
      return checkTopic(f.topic) ? 0 : undefined;
    default:
      return undefined;
  }
}

/** A well-formed frame that breaks the protocol, before or after a handshake and valid traffic. */
function wrongFrameInput(rng: Rng): Input {
  const handshaken = rng.chance(0.55);
  const table = handshaken ? AFTER_HELLO : BEFORE_HELLO;
  const category = rng.pick(Object.keys(table));
  const offence = table[category]!(rng);
  const refusals: number[] = [];
  let messages: Uint8Array[];
  let fillers = 0;
  if (!handshaken) {
    // A valid HELLO right after the breach, in the same message and the next: never processed.
    messages = [concat(offence, goodHello(rng))];
    if (rng.chance(0.3)) messages.push(concat(goodHello(rng)));
  } else {
    const pre: number[][] = [];
    for (let n = rng.int(4); n > 0; n--) {
      const f = randomFrame(rng, rng.pick(FILLER_KINDS));
      const ref = refusalRef(f);
      if (ref !== undefined) refusals.push(ref);
      pre.push(frameUnit(f));
      fillers++;
    }
    // A PING after the breach: its PONG must never come.
    const tail = concat(offence, frameUnit(frame(Kind.Ping, { nonce: CANARY })));
    const hello = goodHello(rng);
    switch (rng.int(3)) {
      case 0:
        messages = [concat(hello, ...pre, tail)];
        break;
      case 1:
        messages = [concat(hello, ...pre), tail];
        break;
      default:
        messages = [concat(hello), ...pre.map((p) => concat(p)), tail];
    }
    if (rng.chance(0.3)) messages.push(concat(frameUnit(frame(Kind.Ping, { nonce: CANARY }))));
  }
  const expected = predict(messages);
  if (expected.close !== 'protocol' && expected.close !== 'limit') {
    throw new Error(`generator bug: ${category} is not a breach: ${messages.map(hex).join(' | ')}`);
  }
  return { messages, expected, handshaken, refusals, fillers, category };
}

/** Checks one offending connection's fate; returns a description of what is wrong, if anything. */
function verify(raw: RawClient, input: Input): string | undefined {
  const { expected } = input;
  if (raw.decodeErrors.length > 0) return `the Router sent undecodable bytes: ${String(raw.decodeErrors[0])}`;
  const closeCode = expected.close === 'limit' ? 1009 : 1002;
  const byeCode = expected.close === 'limit' ? 'LIMIT' : 'PROTOCOL';
  if (raw.closeInfo?.code !== closeCode) return `close code ${raw.closeInfo?.code}, expected ${closeCode}`;
  const byes = raw.frames.filter((f) => f.kind === Kind.Bye);
  const last = raw.frames.at(-1);
  if (byes.length !== 1 || last?.kind !== Kind.Bye) return `expected exactly one BYE, last: ${JSON.stringify(raw.frames.map((f) => kindName(f.kind)))}`;
  if (last.code !== byeCode) return `BYE code ${last.code}, expected ${byeCode}`;
  if (last.message !== expected.reason) return `BYE message "${last.message}", expected "${expected.reason}"`;
  if (input.handshaken) {
    if (!raw.welcome) return 'no WELCOME before the breach';
    if (raw.frames.some((f) => f.kind === Kind.Pong && f.nonce === CANARY)) return 'a frame after the breach was processed (PONG to the canary PING)';
    for (const ref of input.refusals) {
      if (!raw.frames.some((f) => f.kind === Kind.Err && f.ref === ref && f.code === 'PROTOCOL')) return `no ERR PROTOCOL for refused ref ${ref}`;
    }
  } else if (raw.frames.some((f) => f.kind === Kind.Welcome)) return 'a HELLO after the breach was processed (WELCOME)';
  return undefined;
}

interface BarrageResult {
  categories: Map<string, number>;
  fillers: number;
}

async function barrage(router: Router, talkers: Talkers, rng: Rng, generate: (rng: Rng) => Input): Promise<BarrageResult> {
  const events: { id: string; error: ProtocolError }[] = [];
  const off = router.on('protocol-error', (e) => events.push(e));
  const categories = new Map<string, number>();
  let fillers = 0;
  try {
    for (let wave = 0; wave * WAVE < INPUTS; wave++) {
      const batch: { raw: RawClient; input: Input }[] = [];
      for (let i = 0; i < WAVE && wave * WAVE + i < INPUTS; i++) {
        const input = generate(rng);
        const raw = new RawClient(router);
        for (const m of input.messages) raw.send(m);
        batch.push({ raw, input });
        categories.set(input.category, (categories.get(input.category) ?? 0) + 1);
        fillers += input.fillers;
      }
      const eventsBefore = events.length;
      const where = (i: number): string =>
        `seed ${SEED}, wave ${wave}, input ${i} (${batch[i]!.input.category}): ${batch[i]!.input.messages.map(hex).join(' | ')}`;
      await within(
        Promise.all(batch.map((b) => b.raw.closed)),
        10_000,
        () => `raw connections still open: ${batch.flatMap((b, i) => (b.raw.closeInfo ? [] : [where(i)])).slice(0, 3).join('\n')}`,
      );
      for (let i = 0; i < batch.length; i++) {
        const problem = verify(batch[i]!.raw, batch[i]!.input);
        if (problem) throw new Error(`${problem}\n  at ${where(i)}\n  frames: ${JSON.stringify(batch[i]!.raw.frames.map((f) => ({ ...f, body: f.body.length })))}`);
      }
      // One 'protocol-error' per offending connection, with the reason its BYE carried.
      const waveEvents = events.slice(eventsBefore);
      expect(waveEvents.length, `protocol-error events in wave ${wave} (seed ${SEED})`).toBe(batch.length);
      expect(new Set(waveEvents.map((e) => e.id)).size).toBe(batch.length);
      for (const e of waveEvents) expect(e.error).toBeInstanceOf(ProtocolError);
      expect(waveEvents.map((e) => e.error.reason).sort()).toEqual(batch.map((b) => b.input.expected.reason).sort());
      const ids = new Set(waveEvents.map((e) => e.id));
      for (const b of batch) if (b.raw.welcome) expect(ids.has(b.raw.welcome.id), 'protocol-error for a handshaken raw connection').toBe(true);
      if (wave % CHECK_EVERY === CHECK_EVERY - 1) await talkers.checkpoint();
    }
  } finally {
    off();
  }
  // Nothing offending is left behind: only alice and bob remain.
  expect(router.connectionCount).toBe(2);
  return { categories, fillers };
}

// ---- tests ------------------------------------------------------------------------------------

let crashes: unknown[] = [];
const onCrash = (err: unknown): void => void crashes.push(err);
let router: Router | undefined;

beforeEach(() => {
  crashes = [];
  nodeProcess.on('uncaughtException', onCrash);
  nodeProcess.on('unhandledRejection', onCrash);
});

afterEach(async () => {
  await router?.close(1000);
  router = undefined;
  nodeProcess.off('uncaughtException', onCrash);
  nodeProcess.off('unhandledRejection', onCrash);
  expect(crashes).toEqual([]);
});

async function fuzzRouter(): Promise<{ router: Router; talkers: Talkers }> {
  router = new Router({ limits: { maxFrameBytes: MAX_FRAME } });
  const talkers = await startTalkers(router);
  return { router, talkers };
}

describe('Router - bad input barrage', () => {
  it(`closes each of ${INPUTS} connections sending random bytes, alone, while alice and bob keep talking`, async () => {
    const { router, talkers } = await fuzzRouter();
    const { categories } = await barrage(router, talkers, new Rng(SEED), randomBytesInput);
    await talkers.checkpoint();
    await talkers.stop();
    expect(crashes).toEqual([]);
    expect([...categories.keys()].sort()).toEqual(['random-long', 'random-prefixed', 'random-short']);
    expect(talkers.stats.aliceRequests).toBeGreaterThan(10);
    expect(talkers.stats.toBob).toBeGreaterThan(10);
  }, 60_000);

  it(`closes each of ${INPUTS} connections sending a well-formed but wrong frame, alone, while alice and bob keep talking`, async () => {
    const { router, talkers } = await fuzzRouter();
    const { categories, fillers } = await barrage(router, talkers, new Rng(SEED ^ 0x55aa55aa), wrongFrameInput);
    await talkers.checkpoint();
    await talkers.stop();
    expect(crashes).toEqual([]);
    // Every kind of breach was tried.
    expect([...categories.keys()].sort()).toEqual([...new Set([...Object.keys(BEFORE_HELLO), ...Object.keys(AFTER_HELLO)])].sort());
    expect(fillers).toBeGreaterThan(INPUTS / 2);
    expect(talkers.stats.aliceRequests).toBeGreaterThan(10);
    expect(talkers.stats.toBob).toBeGreaterThan(10);
  }, 60_000);
});

describe('Router - limits and handshake', () => {
  const hello = (name = ''): number[] => frameUnit(frame(Kind.Hello, { version: 1, name, namespace: '', secret: '', token: '', session: '' }));

  it('closes with 1009 and BYE LIMIT on a frame larger than maxFrameBytes, before or after the handshake', async () => {
    router = new Router({ limits: { maxFrameBytes: 1024 } });
    const errors: ProtocolError[] = [];
    router.on('protocol-error', (e) => errors.push(e.error));
    const big = frameUnit(frame(Kind.Pub, { topic: 'a.b', from: '' }, new Uint8Array(1025), BodyCodec.Raw));
    const early = new RawClient(router);
    early.send(Uint8Array.from(big));
    const late = new RawClient(router);
    late.send(Uint8Array.from(hello()));
    late.send(Uint8Array.from(big));
    for (const raw of [early, late]) {
      expect(await raw.closed).toMatchObject({ code: 1009 });
      expect(raw.frames.at(-1)).toMatchObject({ kind: Kind.Bye, code: 'LIMIT', message: 'frame of 1032 bytes exceeds the 1024-byte limit' });
    }
    expect(late.welcome?.maxFrame).toBe(1024);
    expect(errors).toHaveLength(2);
    expect(errors[0]).toBeInstanceOf(FrameTooLargeError);
    // A frame of exactly the limit is fine.
    const ok = new RawClient(router);
    ok.send(concat(hello(), frameUnit(frame(Kind.Pub, { topic: 'a.b', from: '' }, new Uint8Array(1017), BodyCodec.Raw)), frameUnit(frame(Kind.Ping, { nonce: 7 }))));
    await expect.poll(() => ok.frames.map((f) => f.kind)).toEqual([Kind.Welcome, Kind.Pong]);
  });

  it('closes a connection that never completes the handshake after handshakeTimeout, with 4005 and BYE TIMEOUT', async () => {
    router = new Router({ limits: { handshakeTimeout: 50 } });
    const started = Date.now();
    const silent = new RawClient(router);
    expect(await silent.closed).toMatchObject({ code: 4005 });
    expect(Date.now() - started).toBeGreaterThanOrEqual(45);
    expect(silent.frames).toEqual([expect.objectContaining({ kind: Kind.Bye, code: 'TIMEOUT', message: 'handshake not completed in time' })]);
    await expect.poll(() => router!.connectionCount).toBe(0);
  });

  it('times the handshake out while the auth hook has not answered, and ignores its late answer', async () => {
    let grant: (() => void) | undefined;
    router = new Router({
      limits: { handshakeTimeout: 50 },
      auth: ({ name }) => (name === 'slow' ? new Promise<void>((resolve) => (grant = resolve)) : undefined),
    });
    const connects: string[] = [];
    router.on('connect', (e) => connects.push(e.name ?? e.id));
    const raw = new RawClient(router);
    raw.send(Uint8Array.from(hello('slow')));
    expect(await raw.closed).toMatchObject({ code: 4005 });
    expect(raw.frames).toEqual([expect.objectContaining({ kind: Kind.Bye, code: 'TIMEOUT' })]);
    grant!();
    // A later handshake completes after the late answer has been handled.
    const probe = new RawClient(router);
    probe.send(Uint8Array.from(hello('probe')));
    await expect.poll(() => probe.welcome).toBeDefined();
    expect(connects).toEqual(['probe']);
    expect(router.connections().map((c) => c.name)).toEqual(['probe']);
  });

  it('a frame sent while the auth hook runs is a breach, and the pending HELLO then goes nowhere', async () => {
    router = new Router({ auth: async () => {} });
    const connects: unknown[] = [];
    const errors: ProtocolError[] = [];
    router.on('connect', (e) => connects.push(e));
    router.on('protocol-error', (e) => errors.push(e.error));
    const raw = new RawClient(router);
    raw.send(concat(hello('eager'), frameUnit(frame(Kind.Ping, { nonce: 1 }))));
    expect(await raw.closed).toMatchObject({ code: 1002 });
    expect(raw.frames).toEqual([expect.objectContaining({ kind: Kind.Bye, code: 'PROTOCOL', message: 'Ping before WELCOME' })]);
    expect(errors.map((e) => e.reason)).toEqual(['Ping before WELCOME']);
    expect(connects).toEqual([]);
    // The name was never taken.
    const again = new RawClient(router);
    again.send(Uint8Array.from(hello('eager')));
    await expect.poll(() => again.welcome?.name).toBe('eager');
  });

  it('reports a wrong protocol version or an invalid name as a protocol error', async () => {
    router = new Router();
    const reasons: string[] = [];
    router.on('protocol-error', (e) => reasons.push(e.error.reason));
    const v2 = new RawClient(router);
    v2.send(Uint8Array.from(frameUnit(frame(Kind.Hello, { version: 2, name: '', namespace: '', secret: '', token: '', session: '' }))));
    const badName = new RawClient(router);
    badName.send(Uint8Array.from(hello('a/b')));
    expect(await v2.closed).toMatchObject({ code: 1002 });
    expect(await badName.closed).toMatchObject({ code: 1002 });
    expect(v2.frames.at(-1)).toMatchObject({ kind: Kind.Bye, code: 'PROTOCOL', message: 'unsupported protocol version 2 (relay speaks 1)' });
    expect(badName.frames.at(-1)).toMatchObject({ kind: Kind.Bye, code: 'PROTOCOL', message: checkName('a/b') });
    expect(reasons).toEqual(['unsupported protocol version 2 (relay speaks 1)', checkName('a/b')]);
  });

  it('an empty message is a breach', async () => {
    router = new Router();
    const raw = new RawClient(router);
    raw.send(new Uint8Array(0));
    expect(await raw.closed).toMatchObject({ code: 1002 });
    expect(raw.frames.at(-1)).toMatchObject({ kind: Kind.Bye, code: 'PROTOCOL', message: 'empty message' });
  });

  it('refuses an invalid pattern, topic or group with ERR PROTOCOL and keeps the connection', async () => {
    router = new Router();
    const errors: unknown[] = [];
    router.on('protocol-error', (e) => errors.push(e));
    const raw = new RawClient(router);
    raw.send(
      concat(
        hello(),
        frameUnit(frame(Kind.Sub, { ref: 1, pattern: 'a..b' })),
        frameUnit(frame(Kind.Unsub, { ref: 2, pattern: '>.a' })),
        frameUnit(frame(Kind.Join, { ref: 3, group: 'a b' })),
        frameUnit(frame(Kind.Leave, { ref: 4, group: '~g' })),
        frameUnit(frame(Kind.Pub, { topic: 'a.*', from: '' })),
        frameUnit(frame(Kind.Sub, { ref: 5, pattern: 'a.*' })),
        frameUnit(frame(Kind.Ping, { nonce: 6 })),
      ),
    );
    await expect.poll(() => raw.frames.length).toBe(8);
    expect(raw.frames.slice(1).map((f) => [kindName(f.kind), 'ref' in f ? f.ref : f.kind === Kind.Pong ? f.nonce : -1, 'code' in f ? f.code : ''])).toEqual([
      ['Err', 1, 'PROTOCOL'],
      ['Err', 2, 'PROTOCOL'],
      ['Err', 3, 'PROTOCOL'],
      ['Err', 4, 'PROTOCOL'],
      ['Err', 0, 'PROTOCOL'],
      ['Ok', 5, ''],
      ['Pong', 6, ''],
    ]);
    expect(raw.closeInfo).toBeUndefined();
    expect(errors).toEqual([]);
  });

  it('refuses limits that cannot work', () => {
    expect(() => new Router({ limits: { maxFrameBytes: Infinity } })).toThrow(RangeError);
    expect(() => new Router({ limits: { maxFrameBytes: 0 } })).toThrow(RangeError);
    expect(() => new Router({ limits: { maxFrameBytes: 2 ** 32 } })).toThrow(RangeError);
    expect(() => new Router({ limits: { handshakeTimeout: Number.NaN } })).toThrow(RangeError);
    expect(() => new Router({ limits: { handshakeTimeout: -1 } })).toThrow(RangeError);
  });

  // The Router remembers which peer each request was routed to and forwards a REP only from it.
  it('does not let a third peer answer a request that was sent to someone else', async () => {
    router = new Router();
    const [ac, as] = memoryTransportPair();
    router.accept(as);
    const alice = await createPeer(ac, { name: 'alice' });
    const [bc, bs] = memoryTransportPair();
    router.accept(bs);
    const bob = await createPeer(bc, { name: 'bob' });
    let release: (() => void) | undefined;
    bob.handle('slow', () => new Promise<string>((resolve) => (release = () => resolve('from bob'))));
    const mallory = new RawClient(router);
    mallory.send(Uint8Array.from(hello('mallory')));
    await expect.poll(() => mallory.welcome).toBeDefined();
    const reply = alice.request('bob/slow', undefined, { timeout: 2000 });
    await expect.poll(() => release).toBeDefined();
    const forged = encodeBody('from mallory', BodyCodec.Msgpack);
    mallory.send(
      concat(
        frameUnit(frame(Kind.Rep, { to: 'alice', from: '', id: 1, code: '', message: '' }, forged.bytes, forged.codec)),
        frameUnit(frame(Kind.Ping, { nonce: 1 })),
      ),
    );
    // The PONG shows the Router has handled the forged REP; bob's real reply comes after it.
    await expect.poll(() => mallory.frames.some((f) => f.kind === Kind.Pong)).toBe(true);
    release!();
    try {
      expect(await reply).toBe('from bob');
    } finally {
      await Promise.all([alice.close(), bob.close()]);
    }
  });
});
