/** Groups and presence alone: memberships kept across links, broadcasts, the peers list, presence events. */
import { encode } from '@msgpack/msgpack';
import { describe, expect, it } from 'vitest';
import { BodyCodec, frame, Kind, PresenceEvent } from '../../src/internal.js';
import { ClosedError, ProtocolError } from '../../src/index.js';
import { Groups } from '../../src/peer/groups.js';
import { Registrations } from '../../src/peer/registrations.js';
import { testPort } from './port.js';

function make() {
  const port = testPort();
  const regs = new Registrations(port, 1000);
  return { port, regs, groups: new Groups(port, regs) };
}

describe('Groups', () => {
  it('joins, sends the membership again on a new link, and leaves', async () => {
    const { port, regs, groups } = make();
    const joined = groups.join('team');
    regs.onOk(frame(Kind.Ok, { ref: port.frames(Kind.Join)[0]!.ref }));
    await joined;
    regs.linkLost(new ClosedError('link closed'));
    regs.attached();
    expect(port.frames(Kind.Join).map((f) => f.group)).toEqual(['team', 'team']);
    expect(groups.inspect().groups).toEqual(['team']);
    const left = groups.leave('team');
    regs.onOk(frame(Kind.Ok, { ref: port.frames(Kind.Leave)[0]!.ref }));
    await left;
    expect(groups.inspect().groups).toEqual([]);
    await expect(groups.join('bad name')).rejects.toBeInstanceOf(TypeError);
  });

  it('lists peers from the relay and refuses a reply that is not a list', async () => {
    const { port, regs, groups } = make();
    const list = groups.peers();
    regs.onOk(frame(Kind.Ok, { ref: port.frames(Kind.Peers)[0]!.ref }, encode([{ name: 'bob', id: '~1' }]), BodyCodec.Msgpack));
    await expect(list).resolves.toEqual([{ name: 'bob', id: '~1' }]);
    const bad = groups.peers();
    regs.onOk(frame(Kind.Ok, { ref: port.frames(Kind.Peers)[1]!.ref }, encode({ not: 'a list' }), BodyCodec.Msgpack));
    await expect(bad).rejects.toBeInstanceOf(ProtocolError);
  });

  it('turns presence frames into peer-join and peer-leave events, watching once', () => {
    const { port, groups } = make();
    groups.watch();
    groups.watch();
    expect(port.frames(Kind.Watch)).toHaveLength(1);
    groups.onPresence(frame(Kind.Presence, { event: PresenceEvent.Join, name: 'bob', id: '~2' }));
    groups.onPresence(frame(Kind.Presence, { event: PresenceEvent.Leave, name: 'bob', id: '~2' }));
    expect(port.of('peer-join')).toEqual([{ name: 'bob', id: '~2' }]);
    expect(port.of('peer-leave')).toEqual([{ name: 'bob', id: '~2' }]);
    expect(groups.inspect().watching).toBe(true);
  });

  it('broadcasts a BCAST frame to a group', () => {
    const { port, groups } = make();
    groups.broadcast('team/chat', 'hi');
    expect(port.frames(Kind.Bcast)[0]).toMatchObject({ to: 'team/chat' });
    expect(() => groups.broadcast('', 'hi')).toThrow(TypeError);
  });
});
