/** Pub/sub alone: one relay registration per pattern, and publishes dispatched to matching handlers. */
import { describe, expect, it, vi } from 'vitest';
import { BodyCodec, decodeBody, encodeBody, frame, Kind } from '../../src/internal.js';
import { ClosedError } from '../../src/index.js';
import { PubSub } from '../../src/peer/pubsub.js';
import { Registrations } from '../../src/peer/registrations.js';
import { closePort, testPort } from './port.js';

function make() {
  const port = testPort();
  const regs = new Registrations(port, 1000);
  return { port, regs, ps: new PubSub(port, regs) };
}

function pub(topic: string, value: unknown) {
  const { bytes, codec } = encodeBody(value, BodyCodec.Msgpack);
  return frame(Kind.Pub, { topic, from: 'alice' }, bytes, codec);
}

describe('PubSub', () => {
  it('registers a pattern once however many handlers share it, and unregisters with the last', async () => {
    const { port, regs, ps } = make();
    const a = ps.subscribe('news.*', () => {});
    const b = ps.subscribe('news.*', () => {});
    expect(port.frames(Kind.Sub).map((f) => f.pattern)).toEqual(['news.*']);
    regs.onOk(frame(Kind.Ok, { ref: port.frames(Kind.Sub)[0]!.ref }));
    await Promise.all([a.ready, b.ready]);
    a.unsubscribe();
    expect(port.frames(Kind.Unsub)).toHaveLength(0);
    b.unsubscribe();
    expect(port.frames(Kind.Unsub).map((f) => f.pattern)).toEqual(['news.*']);
    expect(ps.inspect().subscriptions).toEqual([]);
  });

  it('dispatches a publish to every handler whose pattern matches, decoding it once', () => {
    const { ps } = make();
    const got: string[] = [];
    ps.subscribe<number>('news.*', (body, meta) => got.push(`star ${meta.topic} ${body} ${meta.from}`));
    ps.subscribe<number>('news.>', (body) => got.push(`tail ${body}`));
    ps.subscribe<number>('sport.*', (body) => got.push(`sport ${body}`));
    ps.onPub(pub('news.eu', 1));
    ps.onPub(pub('news.eu.fr', 2));
    expect(got).toEqual(['star news.eu 1 alice', 'tail 1', 'tail 2']);
    expect(ps.inspect().received).toBe(2);
  });

  it('reports a throwing handler as an error and still runs the others', () => {
    const { port, ps } = make();
    const other = vi.fn();
    ps.subscribe('a', () => {
      throw new Error('handler bug');
    });
    ps.subscribe('a', other);
    ps.onPub(pub('a', 1));
    expect(other).toHaveBeenCalledOnce();
    expect((port.errors[0] as Error).message).toBe('handler bug');
  });

  it('publishes a PUB frame, and refuses bad topics and patterns with TypeError', () => {
    const { port, ps } = make();
    ps.publish('news.eu', { n: 1 });
    const f = port.frames(Kind.Pub)[0]!;
    expect([f.topic, decodeBody(f.body, f.flags)]).toEqual(['news.eu', { n: 1 }]);
    expect(() => ps.publish('news.*', 1)).toThrow(TypeError);
    expect(() => ps.subscribe('a..b', () => {})).toThrow(TypeError);
  });

  it('forgets a subscription the relay refuses', async () => {
    const { port, regs, ps } = make();
    const s = ps.subscribe('a.>', () => {});
    regs.onErr(frame(Kind.Err, { ref: port.frames(Kind.Sub)[0]!.ref, code: 'LIMIT', message: 'too many subscriptions' }));
    await expect(s.ready).rejects.toMatchObject({ code: 'LIMIT' });
    expect(ps.inspect().subscriptions).toEqual([]);
  });

  it('refuses to subscribe or publish once closed', () => {
    const { port, regs, ps } = make();
    regs.closed(closePort(port));
    expect(() => ps.subscribe('a', () => {})).toThrow(ClosedError);
    expect(() => ps.publish('a', 1)).toThrow(ClosedError);
  });
});
