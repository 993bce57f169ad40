import { describe, expect, it } from 'vitest';
import { matchTopic } from '../src/index.js';
import { checkPattern, checkTopic, TopicTrie } from '../src/internal.js';

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
