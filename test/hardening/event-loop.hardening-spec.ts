import { afterAll, describe, expect, it } from 'vitest';
import { startServe, type ServeProcess } from './serve-process.js';

/**
 * No request may hold the API's event loop: 8 parallel submissions of millions of characters of Thai with combining
 * marks (12 MB of JSON each) while /healthz is polled from outside. Cutting and tokenizing run on the planning
 * threads, and a text that cannot fit the window is refused from its length alone, so health answers promptly and
 * no submission gets a 5xx (the attack run saw 503 QUEUE_UNAVAILABLE and an 11.7 s /healthz).
 */
let serve: ServeProcess | undefined;

afterAll(async () => {
  await serve?.cleanup();
});

/** Thai consonants each with a combining vowel mark above: two code points, one grapheme. */
function thai(codePoints: number): string {
  const pair = '\u0e01\u0e34';
  return pair.repeat(Math.ceil(codePoints / 2)).slice(0, codePoints);
}

async function healthLatencies(url: string, until: Promise<unknown>): Promise<number[]> {
  const out: number[] = [];
  let done = false;
  void until.finally(() => (done = true));
  while (!done) {
    const t0 = performance.now();
    const res = await fetch(`${url}/healthz`, { signal: AbortSignal.timeout(30_000) });
    await res.arrayBuffer();
    out.push(performance.now() - t0);
    if (process.env.DEBUG_HEALTH) console.log('health', Math.round(out.at(-1)!));
    expect(res.status).toBe(200);
    await new Promise((r) => setTimeout(r, 20));
  }
  return out;
}

describe('the event loop under oversized submissions', () => {
  it('answers /healthz within 200 ms while 8 such requests are in flight, and none gets a 5xx', async () => {
    serve = await startServe();
    const { url } = serve;
    // 4M code points: over what the window can hold whatever the cut; 1.9M: under it, so it is cut and tokenized.
    const bodies = [4_000_000, 4_000_000, 4_000_000, 4_000_000, 1_900_000, 1_900_000, 4_000_000, 4_000_000].map((n) =>
      Buffer.from(JSON.stringify({ text: thai(n), task: { type: 'qa', question: 'What is written here?' } })),
    );
    const t0 = performance.now();
    const submissions = Promise.all(
      bodies.map(async (body) => {
        const res = await fetch(`${url}/v1/jobs`, { method: 'POST', headers: { 'content-type': 'application/json' }, body, signal: AbortSignal.timeout(120_000) });
        return { status: res.status, body: (await res.json()) as { error?: { code: string } } };
      }),
    );
    const latencies = await healthLatencies(url, submissions);
    const answers = await submissions;
    const wall = performance.now() - t0;
    const worst = Math.max(...latencies);
    console.log(`8 submissions in ${Math.round(wall)} ms; /healthz ${latencies.length} polls, worst ${Math.round(worst)} ms; answers ${answers.map((a) => `${a.status} ${a.body.error?.code ?? ''}`).join(', ')}`);
    for (const a of answers) {
      expect(a.status).toBeLessThan(500);
      expect(a.body.error?.code).toBe('CONTEXT_TOO_LONG');
    }
    expect(latencies.length).toBeGreaterThan(3);
    expect(worst).toBeLessThan(200);
  }, 180_000);
});
