import { createHash } from 'node:crypto';
import { afterAll, describe, expect, it } from 'vitest';
import { JsonBodyPool } from './json-body-pool.js';

/** Large bodies are parsed on a thread, which also hashes the text there, off the event loop. */
const pool = new JsonBodyPool({ threads: 1, maxQueue: 4, maxTextCodePoints: 10_000_000, maxDocumentChars: 10_000_000 });
afterAll(() => pool.close());

describe('JsonBodyPool', () => {
  it('gives a large body\'s fields and its text\'s sha256; a small one is parsed in place, unhashed', async () => {
    const text = 'The keeper of the northern light was Ada. '.repeat(20_000);
    const large = await pool.parse(Buffer.from(JSON.stringify({ text, task: { type: 'summarize' } })));
    expect(large.fields).toEqual({ text, task: { type: 'summarize' } });
    expect(large.textSha256).toBe(createHash('sha256').update(text).digest('hex'));
    const small = await pool.parse(Buffer.from(JSON.stringify({ text: 'short', task: { type: 'summarize' } })));
    expect(small).toEqual({ fields: { text: 'short', task: { type: 'summarize' } } });
  });

  it('refuses on the thread what no cut could fit, with its code', async () => {
    const tight = new JsonBodyPool({ threads: 1, maxQueue: 4, maxTextCodePoints: 1000 });
    await expect(tight.parse(Buffer.from(JSON.stringify({ text: 'x'.repeat(300_000) })))).rejects.toMatchObject({ code: 'CONTEXT_TOO_LONG' });
    await tight.close();
  });
});
