/**
 * Topic matching for pub/sub. Topics are dot-separated tokens; in a pattern `*` matches exactly
 * one token and `>` (last token only) matches one or more remaining tokens, as in NATS.
 */

/** Returns why `topic` is not a valid concrete topic (no wildcards, no empty token), or undefined. */
export function checkTopic(topic: string): string | undefined {
  if (typeof topic !== 'string' || topic.length === 0) return 'topic must be a non-empty string';
  if (topic.length > 1024) return 'topic longer than 1024 characters';
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
  if (pattern.length > 1024) return 'pattern longer than 1024 characters';
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

interface Node<T> {
  children: Map<string, Node<T>>;
  /** Subscribers whose pattern ends here. */
  here: Set<T>;
  /** Subscribers whose pattern ends with `>` here. */
  rest: Set<T>;
}

const node = <T>(): Node<T> => ({ children: new Map(), here: new Set(), rest: new Set() });

/** A token trie of patterns to subscribers: matching costs O(tokens × wildcards), not O(subscriptions). */
export class TopicTrie<T> {
  readonly #root: Node<T> = node();

  add(pattern: string, sub: T): void {
    let n = this.#root;
    const tokens = pattern.split('.');
    for (let i = 0; i < tokens.length; i++) {
      const t = tokens[i]!;
      if (t === '>') {
        n.rest.add(sub);
        return;
      }
      let c = n.children.get(t);
      if (!c) n.children.set(t, (c = node()));
      n = c;
    }
    n.here.add(sub);
  }

  remove(pattern: string, sub: T): void {
    const path: [Node<T>, string][] = [];
    let n = this.#root;
    const tokens = pattern.split('.');
    for (const t of tokens) {
      if (t === '>') {
        n.rest.delete(sub);
        break;
      }
      const c = n.children.get(t);
      if (!c) return;
      path.push([n, t]);
      n = c;
    }
    if (tokens[tokens.length - 1] !== '>') n.here.delete(sub);
    // Prune empty nodes so the trie does not grow with churn.
    for (let i = path.length - 1; i >= 0; i--) {
      const [parent, t] = path[i]!;
      const c = parent.children.get(t)!;
      if (c.children.size === 0 && c.here.size === 0 && c.rest.size === 0) parent.children.delete(t);
      else break;
    }
  }

  /** Adds every subscriber matching `topic` to `out` (a Set, so each appears once). */
  match(topic: string, out: Set<T>): Set<T> {
    this.#walk(this.#root, tokensOf(topic), 0, out);
    return out;
  }

  #walk(n: Node<T>, tokens: string[], i: number, out: Set<T>): void {
    if (i === tokens.length) {
      for (const s of n.here) out.add(s);
      return;
    }
    for (const s of n.rest) out.add(s);
    const exact = n.children.get(tokens[i]!);
    if (exact) this.#walk(exact, tokens, i + 1, out);
    const star = n.children.get('*');
    if (star) this.#walk(star, tokens, i + 1, out);
  }
}
