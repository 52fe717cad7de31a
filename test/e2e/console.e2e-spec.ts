import { existsSync } from 'node:fs';
import { mkdir, mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { chromium, type BrowserContext } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startStack, type Stack } from './stack.js';

/** Debian's chromium (apt package `chromium`; .ci/run installs it). */
const CHROMIUM = '/usr/bin/chromium';
const RESULTS = fileURLToPath(new URL('../../test-results/', import.meta.url));

const DOCUMENT = [
  'The lighthouse on Gull Rock was kept by Ada Lindqvist for forty years.',
  'Every night she climbed the hundred and twelve steps to light the lamp, and every morning she wrote the weather in a green ledger.',
  'In the winter of 1911 a storm tore the roof from the oil house, and Ada kept the light burning with whale oil from the village.',
].join(' ').concat(' ').repeat(6);

let stack: Stack;
let browser: BrowserContext;
let profile: string;

beforeAll(async () => {
  if (!existsSync(CHROMIUM)) throw new Error(`${CHROMIUM} is missing: apt-get install -y chromium`);
  stack = await startStack();
  profile = await mkdtemp(join(tmpdir(), 'e2llm-chromium-'));
  // The flags of the machine notes: no sandbox as root, no background traffic this closed network refuses, and a
  // fresh profile (playwright passes it as --user-data-dir).
  browser = await chromium.launchPersistentContext(profile, {
    executablePath: CHROMIUM,
    viewport: { width: 1100, height: 1300 },
    headless: true,
    args: [
      '--headless',
      '--no-sandbox',
      '--disable-gpu',
      '--disable-quic',
      '--no-first-run',
      '--disable-background-networking',
      '--disable-component-update',
      '--disable-sync',
    ],
  });
}, 120_000);

afterAll(async () => {
  await browser?.close();
  await stack?.stop();
  if (profile) await rm(profile, { recursive: true, force: true });
});

describe('web console in headless Chromium', () => {
  it('submits pasted text as a qa job, streams the answer and lists the job as succeeded', async () => {
    const page = await browser.newPage();
    const pageErrors: string[] = [];
    page.on('pageerror', (err) => pageErrors.push(err.message));
    page.on('console', (msg) => {
      if (msg.type() === 'error') pageErrors.push(msg.text());
    });

    // The SSE parser is eventsource-parser, served from its npm package.
    const parserLoads: number[] = [];
    page.on('response', (r) => r.url().endsWith('/console/assets/eventsource-parser.js') && parserLoads.push(r.status()));
    const response = await page.goto(`${stack.api.url}/`);
    expect(response?.status()).toBe(200);
    expect(response?.headers()['content-security-policy']).toContain("connect-src 'self'");
    await expect(page.title()).resolves.toBe('E2LLM console');

    await page.fill('#text', DOCUMENT);
    await page.selectOption('#task', 'qa');
    await page.fill('#prompt', 'Who kept the lighthouse?');
    await page.fill('#max-new-tokens', '16');
    await page.click('#submit');

    // The job shows up, its chunks encode (progress from SSE), and the answer arrives when it ends.
    await page.waitForSelector('#job-status.succeeded', { timeout: 60_000 });
    await page.waitForSelector('#answer[data-state="done"]', { timeout: 10_000 });
    const jobId = (await page.textContent('#job-id'))!.trim();
    expect(jobId).toMatch(/^job_/);
    const job = (await (await fetch(`${stack.api.url}/v1/jobs/${jobId}`)).json()) as { status: string; progress: { chunksTotal: number; chunksEncoded: number; chunksCached: number }; result: { text: string; evidence: { text: string }[] } };
    expect(job.status).toBe('succeeded');
    expect(await page.textContent('#answer')).toBe(job.result.text);
    // The evidence the answer rests on, best first, as the API gives it.
    expect(job.result.evidence.length).toBeGreaterThan(0);
    expect(await page.locator('#evidence li pre').allTextContents()).toEqual(job.result.evidence.map((e) => e.text));
    expect(await page.isVisible('#evidence-section')).toBe(true);
    expect(job.progress.chunksTotal).toBeGreaterThan(1);
    expect(await page.textContent('#chunks')).toContain(`${job.progress.chunksTotal} / ${job.progress.chunksTotal} chunks`);
    expect(await page.getAttribute('#progress', 'value')).toBe(String(job.progress.chunksTotal));

    // The past-jobs list (GET /v1/jobs) shows it as succeeded.
    const row = page.locator(`#jobs-body tr[data-id="${jobId}"]`);
    await row.locator('td.status.succeeded').waitFor({ timeout: 10_000 });
    expect(await row.locator('td').nth(2).textContent()).toBe('qa: Who kept the lighthouse?');

    await mkdir(RESULTS, { recursive: true });
    await page.screenshot({ path: join(RESULTS, 'console.png'), fullPage: true });
    expect(pageErrors).toEqual([]);
    expect(parserLoads).toEqual([200]);
    await page.close();
  });

  it('resumes a cut event stream with Last-Event-ID and shows the whole answer once', async () => {
    const page = await browser.newPage();
    const pageErrors: string[] = [];
    page.on('pageerror', (err) => pageErrors.push(err.message));
    const asked: (string | undefined)[] = [];
    let cutAfterId: string | undefined;
    // The first event stream is cut after the retry preamble and four events, as a dropped connection would end it;
    // the page must open it again from the last id it got. Later streams pass through.
    await page.route('**/v1/jobs/*/events', async (route) => {
      asked.push(route.request().headers()['last-event-id']);
      if (asked.length > 1) return route.continue();
      const full = await (await route.fetch()).text();
      const kept = full.split('\n\n').slice(0, 5);
      cutAfterId = /^id: ?(.*)$/m.exec(kept.at(-1)!)?.[1];
      await route.fulfill({ status: 200, headers: { 'content-type': 'text/event-stream' }, body: `${kept.join('\n\n')}\n\n` });
    });
    await page.goto(`${stack.api.url}/`);
    await page.fill('#text', `${DOCUMENT} Resumed.`);
    await page.selectOption('#task', 'summarize');
    await page.fill('#max-new-tokens', '24');
    await page.click('#submit');
    await page.waitForSelector('#job-status.succeeded', { timeout: 60_000 });
    await page.waitForSelector('#answer[data-state="done"]', { timeout: 10_000 });
    const jobId = (await page.textContent('#job-id'))!.trim();
    const job = (await (await fetch(`${stack.api.url}/v1/jobs/${jobId}`)).json()) as { result: { text: string } };
    expect(cutAfterId).toMatch(/^\d+-\d+$/);
    expect(asked).toEqual([undefined, cutAfterId]);
    expect(await page.textContent('#answer')).toBe(job.result.text);
    expect(pageErrors).toEqual([]);
    await page.close();
  });

  it('renders the API reference at /docs from the generated document, under its CSP', async () => {
    const page = await browser.newPage();
    const problems: string[] = [];
    page.on('pageerror', (e) => problems.push(e.message));
    // A browser asks for /favicon.ico by itself; any other failed request is a problem.
    page.on('response', (r) => r.status() >= 400 && !r.url().endsWith('/favicon.ico') && problems.push(`${r.status()} ${r.url()}`));
    await page.goto(`${stack.api.url}/docs`);
    await page.waitForSelector('.swagger-ui .info .title', { timeout: 20_000 });
    expect(await page.textContent('.swagger-ui .info .title')).toContain('E2LLM serving API');
    await page.waitForSelector('.opblock-summary-path', { timeout: 10_000 });
    const paths = await page.locator('.opblock-summary-path').allTextContents();
    expect(paths.map((p) => p.replace(/\u200b/g, ''))).toEqual(expect.arrayContaining(['/v1/jobs', '/v1/jobs/{id}']));
    expect(problems).toEqual([]);
    await page.close();
  });
});
