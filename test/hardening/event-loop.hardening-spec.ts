import { spawn } from 'node:child_process';
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

/**
 * Polls /healthz every 20 ms from a process of its own until stopped, and gives every latency: measured from the test
 * process, whose own event loop is busy pushing 96 MB of bodies, the client's delays would count as the server's.
 */
const POLLER = `
const url = process.argv[1]; const out = []; const t0 = performance.now(); let stop = false;
process.on('SIGTERM', () => { stop = true; });
while (!stop) {
  const a = performance.now();
  const res = await fetch(url + '/healthz', { signal: AbortSignal.timeout(30000) });
  await res.arrayBuffer();
  out.push([Math.round(a - t0), Math.round(performance.now() - a), res.status]);
  await new Promise((r) => setTimeout(r, 20));
}
process.stdout.write(JSON.stringify(out));
`;

async function healthLatencies(url: string, until: Promise<unknown>): Promise<{ at: number; ms: number; status: number }[]> {
  const poller = spawn(process.execPath, ['--input-type=module', '-e', POLLER, url], { stdio: ['ignore', 'pipe', 'inherit'] });
  let out = '';
  poller.stdout!.on('data', (d: Buffer) => (out += d.toString()));
  const exited = new Promise((r) => poller.on('exit', r));
  await until.catch(() => undefined);
  poller.kill('SIGTERM');
  await exited;
  return (JSON.parse(out) as [number, number, number][]).map(([at, ms, status]) => ({ at, ms, status }));
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
    const polls = await healthLatencies(url, submissions);
    const answers = await submissions;
    const wall = performance.now() - t0;
    const latencies = polls.map((p) => p.ms);
    const worst = Math.max(...latencies);
    console.log(`8 submissions in ${Math.round(wall)} ms; /healthz ${latencies.length} polls from another process, worst ${worst} ms, median ${latencies.sort((a, b) => a - b)[latencies.length >> 1]} ms; answers ${answers.map((a) => `${a.status} ${a.body.error?.code ?? ''}`).join(', ')}`);
    expect(polls.every((p) => p.status === 200)).toBe(true);
    for (const a of answers) {
      expect(a.status).toBeLessThan(500);
      expect(a.body.error?.code).toBe('CONTEXT_TOO_LONG');
    }
    expect(latencies.length).toBeGreaterThan(3);
    expect(worst).toBeLessThan(200);
  }, 180_000);
});
