/**
 * Topic matching for pub/sub. Topics are dot-separated tokens; in a pattern `*` matches exactly
 * one token and `>` (last token only) matches one or more remaining tokens, as in NATS.
 */
import { badChar } from './address.js';

/** Longest topic or pattern, in characters. */
export const MAX_TOPIC_LENGTH = 1024;

/**
 * Returns why `topic` is not a valid concrete topic (no wildcards, no empty token, the
 * identifier character rule of `badChar`, `/` allowed), or undefined.
 */
export function checkTopic(topic: string): string | undefined {
  if (typeof topic !== 'string' || topic.length === 0) return 'topic must be a non-empty string';
  if (topic.length > MAX_TOPIC_LENGTH) return `topic longer than ${MAX_TOPIC_LENGTH} characters`;
  // Topics that start with "$" are the relay's own (the admin trace): peers subscribe, never publish.
  if (topic.charCodeAt(0) === 0x24) return `topic "${topic}" starts with "$" (reserved for the relay)`;
  const bad = badChar(topic, true);
  if (bad) return `topic ${JSON.stringify(topic)} contains ${bad}`;
  // A scan, not split(): this runs for every publish, at the peer and at the relay.
  let start = 0;
  for (let i = 0; i <= topic.length; i++) {
    if (i < topic.length && topic.charCodeAt(i) !== 0x2e) continue;
    if (i === start) return `topic "${topic}" has an empty token`;
    if (i === start + 1) {
      const c = topic.charCodeAt(start);
      if (c === 0x2a || c === 0x3e) return `topic "${topic}" contains a wildcard; publish to a concrete topic`;
    }
    start = i + 1;
  }
  return undefined;
}

const tokenCache = new Map<string, string[]>();
/** `topic.split('.')`, cached: publishers reuse a few topics, so most lookups hit. Bounded to 4096 entries. */
export function tokensOf(topic: string): string[] {
  let t = tokenCache.get(topic);
  if (t === undefined) {
    if (tokenCache.size >= 4096) tokenCache.clear();
    t = topic.split('.');
    tokenCache.set(topic, t);
  }
  return t;
}

/** Returns why `pattern` is invalid, or undefined when valid. */
export function checkPattern(pattern: string): string | undefined {
  if (typeof pattern !== 'string' || pattern.length === 0) return 'pattern must be a non-empty string';
  if (pattern.length > MAX_TOPIC_LENGTH) return `pattern longer than ${MAX_TOPIC_LENGTH} characters`;
  const bad = badChar(pattern, true);
  if (bad) return `pattern ${JSON.stringify(pattern)} contains ${bad}`;
  const tokens = pattern.split('.');
  for (let i = 0; i < tokens.length; i++) {
    const t = tokens[i]!;
    if (t.length === 0) return `pattern "${pattern}" has an empty token`;
    if (t === '>' && i !== tokens.length - 1) return `">" must be the last token of "${pattern}"`;
  }
  return undefined;
}

/** Whether a concrete topic matches a pattern. */
export function matchTopic(pattern: string, topic: string): boolean {
  const p = tokensOf(pattern);
  const t = tokensOf(topic);
  for (let i = 0; i < p.length; i++) {
    const pt = p[i]!;
    if (pt === '>') return t.length > i;
    if (i >= t.length) return false;
    if (pt !== '*' && pt !== t[i]) return false;
  }
  return p.length === t.length;
}

/**
 * A node of the trie. Chains of single-child nodes are stored as one node whose `seg` holds
 * several tokens (a radix, or path-compressed, trie), and a node's collections exist only once
 * something is in them: memory grows with the patterns' characters and their branch points,
 * not with one object per token.
 */
interface Node<T> {
  /** The tokens from the parent to this node, joined by `.` ('' at the root). */
  seg: string;
  /** Children by the first token of their `seg`. */
  kids: Map<string, Node<T>> | undefined;
  /** Subscribers whose pattern ends here. */
  here: Set<T> | undefined;
  /** Subscribers whose pattern ends with `>` here. */
  rest: Set<T> | undefined;
}

const node = <T>(seg: string): Node<T> => ({ seg, kids: undefined, here: undefined, rest: undefined });

/**
 * Consumes the tokens of `seg` against `t` from `i`; returns the index after them, or -1 when a
 * token differs (`*` in `seg` matches any one token). No allocation: the publish path runs it.
 */
function consume(seg: string, t: readonly string[], i: number): number {
  let pos = 0;
  for (;;) {
    if (i >= t.length) return -1;
    let end = seg.indexOf('.', pos);
    if (end < 0) end = seg.length;
    const tok = t[i]!;
    const star = end - pos === 1 && seg.charCodeAt(pos) === 0x2a;
    if (!star && (tok.length !== end - pos || !seg.startsWith(tok, pos))) return -1;
    i++;
    if (end === seg.length) return i;
    pos = end + 1;
  }
}

/** A trie of patterns to subscribers: matching costs O(tokens × wildcards), not O(subscriptions). */
export class TopicTrie<T> {
  readonly #root: Node<T> = node('');

  add(pattern: string, sub: T): void {
    const tokens = pattern.split('.');
    const rest = tokens[tokens.length - 1] === '>';
    if (rest) tokens.pop();
    let n = this.#root;
    let i = 0;
    while (i < tokens.length) {
      const kids = (n.kids ??= new Map());
      const child = kids.get(tokens[i]!);
      if (!child) {
        const leaf = node<T>(tokens.slice(i).join('.'));
        kids.set(tokens[i]!, leaf);
        n = leaf;
        break;
      }
      const seg = child.seg.split('.');
      let k = 1;
      while (k < seg.length && i + k < tokens.length && seg[k] === tokens[i + k]) k++;
      if (k < seg.length) {
        // The pattern leaves the chain part-way: split it there.
        const mid = node<T>(seg.slice(0, k).join('.'));
        child.seg = seg.slice(k).join('.');
        mid.kids = new Map([[seg[k]!, child]]);
        kids.set(tokens[i]!, mid);
        n = mid;
      } else n = child;
      i += k;
    }
    if (rest) (n.rest ??= new Set()).add(sub);
    else (n.here ??= new Set()).add(sub);
  }

  remove(pattern: string, sub: T): void {
    const tokens = pattern.split('.');
    const rest = tokens[tokens.length - 1] === '>';
    if (rest) tokens.pop();
    const path: Node<T>[] = [this.#root];
    let n = this.#root;
    let i = 0;
    while (i < tokens.length) {
      const child = n.kids?.get(tokens[i]!);
      if (!child) return;
      const seg = child.seg.split('.');
      if (i + seg.length > tokens.length) return;
      for (let k = 0; k < seg.length; k++) if (seg[k] !== tokens[i + k]) return;
      i += seg.length;
      path.push((n = child));
    }
    const set = rest ? n.rest : n.here;
    if (!set?.delete(sub)) return;
    if (set.size === 0) {
      if (rest) n.rest = undefined;
      else n.here = undefined;
    }
    // Prune nodes left empty, and merge a node left with one child and no subscribers into
    // that child, so churn leaves the trie as compact as if the pattern had never been added.
    for (let d = path.length - 1; d > 0; d--) {
      const x = path[d]!;
      const parent = path[d - 1]!;
      const key = firstToken(x.seg);
      if (x.here === undefined && x.rest === undefined && (x.kids === undefined || x.kids.size === 0)) {
        parent.kids!.delete(key);
        if (parent.kids!.size === 0) parent.kids = undefined;
        continue;
      }
      if (x.here === undefined && x.rest === undefined && x.kids!.size === 1) {
        const only = x.kids!.values().next().value!;
        only.seg = `${x.seg}.${only.seg}`;
        parent.kids!.set(key, only);
      }
      break;
    }
    const root = this.#root;
    if (root.kids?.size === 0) root.kids = undefined;
  }

  /** How many nodes the trie holds and the characters of their segments (for tests and metrics). */
  stats(): TrieStats {
    const out: TrieStats = { nodes: 0, chars: 0 };
    const visit = (n: Node<T>): void => {
      out.nodes++;
      out.chars += n.seg.length;
      if (n.kids) for (const k of n.kids.values()) visit(k);
    };
    visit(this.#root);
    return out;
  }

  /** Adds every subscriber matching `topic` to `out` (a Set, so each appears once). */
  match(topic: string, out: Set<T>): Set<T> {
    this.#walk(this.#root, tokensOf(topic), 0, out);
    return out;
  }

  #walk(n: Node<T>, tokens: string[], i: number, out: Set<T>): void {
    if (i === tokens.length) {
      if (n.here) for (const s of n.here) out.add(s);
      return;
    }
    if (n.rest) for (const s of n.rest) out.add(s);
    const kids = n.kids;
    if (!kids) return;
    const exact = kids.get(tokens[i]!);
    if (exact) {
      const j = consume(exact.seg, tokens, i);
      if (j >= 0) this.#walk(exact, tokens, j, out);
    }
    const star = kids.get('*');
    if (star) {
      const j = consume(star.seg, tokens, i);
      if (j >= 0) this.#walk(star, tokens, j, out);
    }
  }
}

/** Nodes and the characters of their segments: what the trie holds beyond its subscribers. */
export interface TrieStats {
  nodes: number;
  chars: number;
}

function firstToken(seg: string): string {
  const i = seg.indexOf('.');
  return i < 0 ? seg : seg.slice(0, i);
}
