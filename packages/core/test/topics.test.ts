import { describe, expect, it } from 'vitest';
import { matchTopic } from '../src/index.js';
import { checkAddress, checkName, checkPattern, checkTopic, TopicTrie } from '../src/internal.js';
import { Rng } from '../src/testing.js';

/** [pattern, topic, matches] */
const table: [string, string, boolean][] = [
  // literal
  ['a', 'a', true],
  ['a', 'b', false],
  ['a.b', 'a.b', true],
  ['a.b', 'a', false],
  ['a.b', 'a.b.c', false],
  ['a.b.c', 'a.b', false],
  ['a.b', 'a.c', false],
  ['a.b', 'b.a', false],
  ['room.lobby', 'room.lobbyist', false],
  ['room', 'room.lobby', false],
  // `*`: exactly one token
  ['*', 'a', true],
  ['*', 'a.b', false],
  ['a.*', 'a.b', true],
  ['a.*', 'a', false],
  ['a.*', 'a.b.c', false],
  ['a.*', 'b.c', false],
  ['*.b', 'a.b', true],
  ['*.b', 'a.c', false],
  ['*.b', 'b', false],
  ['a.*.c', 'a.b.c', true],
  ['a.*.c', 'a.x.c', true],
  ['a.*.c', 'a.b.d', false],
  ['a.*.c', 'a.c', false],
  ['a.*.c', 'a.b.b.c', false],
  ['*.*', 'a.b', true],
  ['*.*', 'a', false],
  ['*.*', 'a.b.c', false],
  ['*.*.*', 'x.y.z', true],
  // `>`: one or more remaining tokens
  ['>', 'a', true],
  ['>', 'a.b.c.d', true],
  ['a.>', 'a.b', true],
  ['a.>', 'a.b.c', true],
  ['a.>', 'a', false],
  ['a.>', 'b.c', false],
  ['a.b.>', 'a.b.c.d.e', true],
  ['a.b.>', 'a.b', false],
  ['a.b.>', 'a.c.d', false],
  // mixed
  ['*.>', 'a', false],
  ['*.>', 'a.b', true],
  ['*.>', 'a.b.c', true],
  ['a.*.>', 'a.b.c', true],
  ['a.*.>', 'a.b', false],
  ['*.b.>', 'a.b.c', true],
  ['*.b.>', 'a.c.c', false],
  // wildcard characters inside a token are literal
  ['a*', 'ab', false],
  ['a*', 'a*', true],
  ['a.b*', 'a.bc', false],
  ['a>', 'a>', true],
  ['a>', 'ab', false],
  // tokens are compared exactly
  ['Room', 'room', false],
  ['room.lobby', 'room.lobby', true],
];

describe('matchTopic', () => {
  it.each(table)('pattern %j against topic %j gives %j', (pattern, topic, expected) => {
    expect(checkPattern(pattern)).toBeUndefined();
    expect(checkTopic(topic)).toBeUndefined();
    expect(matchTopic(pattern, topic)).toBe(expected);
  });
});

describe('TopicTrie', () => {
  it.each(table)('pattern %j against topic %j gives %j', (pattern, topic, expected) => {
    const trie = new TopicTrie<string>();
    trie.add(pattern, 'sub');
    expect(trie.match(topic, new Set()).has('sub')).toBe(expected);
  });

  it('finds exactly the patterns matchTopic matches when all are subscribed at once', () => {
    const patterns = [...new Set(table.map(([p]) => p))];
    const topics = [...new Set(table.map(([, t]) => t)), 'x', 'x.y', 'a.b.c.d', 'q.b.r.s'];
    const trie = new TopicTrie<string>();
    for (const p of patterns) trie.add(p, p);
    for (const topic of topics) {
      const got = [...trie.match(topic, new Set())].sort();
      const want = patterns.filter((p) => matchTopic(p, topic)).sort();
      expect(got, `topic ${topic}`).toEqual(want);
    }
  });

  it('reports a subscriber once when several of its patterns match', () => {
    const trie = new TopicTrie<string>();
    trie.add('room.*', 'alice');
    trie.add('room.>', 'alice');
    trie.add('>', 'alice');
    trie.add('room.lobby', 'alice');
    trie.add('room.*', 'bob');
    expect([...trie.match('room.lobby', new Set())].sort()).toEqual(['alice', 'bob']);
  });

  it('stops matching a removed pattern and keeps the others', () => {
    const trie = new TopicTrie<string>();
    trie.add('a.*', 's1');
    trie.add('a.>', 's2');
    trie.add('a.b', 's3');
    trie.add('a.b', 's4');
    trie.remove('a.*', 's1');
    trie.remove('a.b', 's3');
    expect([...trie.match('a.b', new Set())].sort()).toEqual(['s2', 's4']);
    trie.remove('a.>', 's2');
    trie.remove('a.b', 's4');
    expect(trie.match('a.b', new Set()).size).toBe(0);
    // Removing what is not there is harmless, and the trie can be reused.
    trie.remove('x.y.z', 's1');
    trie.remove('a.b', 's4');
    trie.add('a.b', 's5');
    expect([...trie.match('a.b', new Set())]).toEqual(['s5']);
  });

  it('removes one subscriber\'s pattern without touching another subscriber on the same pattern', () => {
    const trie = new TopicTrie<string>();
    trie.add('a.>', 's1');
    trie.add('a.>', 's2');
    trie.remove('a.>', 's1');
    expect([...trie.match('a.b.c', new Set())]).toEqual(['s2']);
  });
});

describe('TopicTrie against a model', () => {
  /** Random patterns over a small alphabet, so that they share prefixes and branch often. */
  function randomPattern(rng: Rng): string {
    const n = 1 + rng.int(5);
    const tokens: string[] = [];
    for (let i = 0; i < n; i++) tokens.push(rng.chance(0.2) ? '*' : rng.pick(['a', 'b', 'c', 'dd']));
    if (rng.chance(0.25)) tokens.push('>');
    return tokens.join('.');
  }

  it('matches what matchTopic says after random adds and removes, and is empty again once all are removed', () => {
    const rng = new Rng(0x7219);
    const trie = new TopicTrie<string>();
    const model = new Map<string, Set<string>>(); // subscriber -> patterns
    for (let step = 0; step < 4000; step++) {
      const sub = rng.pick(['s1', 's2', 's3', 's4']);
      const pattern = randomPattern(rng);
      const mine = model.get(sub) ?? new Set<string>();
      model.set(sub, mine);
      if (rng.chance(0.55)) {
        if (!mine.has(pattern)) trie.add(pattern, sub);
        mine.add(pattern);
      } else {
        // Remove one the subscriber has (or, sometimes, one it does not: harmless).
        const victim = mine.size > 0 && rng.chance(0.8) ? rng.pick([...mine]) : pattern;
        trie.remove(victim, sub);
        mine.delete(victim);
      }
      if (step % 20 === 0) {
        const topic = Array.from({ length: 1 + rng.int(5) }, () => rng.pick(['a', 'b', 'c', 'dd', 'e'])).join('.');
        const want = [...model].filter(([, ps]) => [...ps].some((p) => matchTopic(p, topic))).map(([s]) => s).sort();
        expect([...trie.match(topic, new Set())].sort(), `step ${step}, topic ${topic}`).toEqual(want);
      }
    }
    for (const [sub, ps] of model) for (const p of ps) trie.remove(p, sub);
    expect(trie.stats()).toEqual({ nodes: 1, chars: 0 });
  });

  it('holds a long pattern in one node, not one per token', () => {
    const trie = new TopicTrie<number>();
    const long = Array.from({ length: 500 }, (_, i) => `t${i % 7}`).join('.');
    trie.add(long, 1);
    expect(trie.stats()).toEqual({ nodes: 2, chars: long.length });
    // A second pattern branching in the middle adds one split and one leaf.
    const branch = `${long.split('.').slice(0, 250).join('.')}.x.y`;
    trie.add(branch, 2);
    expect(trie.stats().nodes).toBe(4);
    expect(trie.match(long, new Set())).toEqual(new Set([1]));
    expect(trie.match(branch, new Set())).toEqual(new Set([2]));
    trie.remove(branch, 2);
    expect(trie.stats()).toEqual({ nodes: 2, chars: long.length });
  });
});

describe('the identifier character rule', () => {
  const refused: [string, string][] = [
    ['NUL', 'a\u0000b'],
    ['a C0 control', 'a\u001fb'],
    ['DEL', 'a\u007fb'],
    ['C1 U+0080', 'a\u0080b'],
    ['C1 NEL U+0085', 'a\u0085b'],
    ['C1 CSI U+009B', 'a\u009bb'],
    ['C1 U+009F', 'a\u009fb'],
    ['a space', 'a b'],
    ['a tab', 'a\tb'],
    ['no-break space', 'a\u00a0b'],
    ['line separator', 'a\u2028b'],
    ['ideographic space', 'a\u3000b'],
    ['byte order mark', 'a\ufeffb'],
    ['a lone high surrogate', 'a\ud800b'],
    ['a lone low surrogate', 'a\udc00b'],
    ['a high surrogate at the end', 'ab\ud83d'],
  ];
  it.each(refused)('refuses %s in names, ports, topics and patterns', (_what, s) => {
    expect(checkName(s)).toEqual(expect.any(String));
    expect(checkAddress(`bob/${s}`)).toEqual(expect.any(String));
    expect(checkTopic(`room.${s}`)).toEqual(expect.any(String));
    expect(checkPattern(`room.${s}.>`)).toEqual(expect.any(String));
  });

  it.each(['café', 'Ünïcødé', '日本語', 'emoji\u{1F600}', 'a-b_c.d', 'x\u00a1'])('accepts %j everywhere', (s) => {
    expect(checkName(s)).toBeUndefined();
    expect(checkAddress(`bob/${s}`)).toBeUndefined();
    expect(checkTopic(`room.${s}`)).toBeUndefined();
    expect(checkPattern(`room.${s}.>`)).toBeUndefined();
  });

  it('refuses "/" in names but allows it in topics', () => {
    expect(checkName('a/b')).toEqual(expect.any(String));
    expect(checkTopic('a/b.c')).toBeUndefined();
  });
});

describe('checkTopic and checkPattern', () => {
  it.each(['', 'a..b', '.a', 'a.', 'a.*', '>', 'a.>', 'x'.repeat(1025)])('refuses %j as a topic', (topic) => {
    expect(checkTopic(topic)).toEqual(expect.any(String));
  });

  it.each(['', 'a..b', '.a', 'a.', '>.a', 'a.>.b', 'x'.repeat(1025)])('refuses %j as a pattern', (pattern) => {
    expect(checkPattern(pattern)).toEqual(expect.any(String));
  });

  it.each(['a', 'a.b.c', 'a*', 'x'.repeat(1024)])('accepts %j as a topic and as a pattern', (s) => {
    expect(checkTopic(s)).toBeUndefined();
    expect(checkPattern(s)).toBeUndefined();
  });
});
