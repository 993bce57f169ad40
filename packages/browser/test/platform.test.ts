import { describe, expect, it } from 'vitest';

describe('@missive/browser outside a browser', () => {
  it('import - fails at once in Node, naming the missing globals and @missive/node', async () => {
    await expect(import('@missive/browser')).rejects.toThrow(/runs in browsers.*no global (WebSocket and )?indexedDB.*import @missive\/node instead/s);
  });
});
