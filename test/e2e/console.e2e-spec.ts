import { existsSync } from 'node:fs';
import { mkdir, mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { chromium, type BrowserContext, type Page } from 'playwright-core';
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

interface Job {
  id: string;
  status: string;
  task: { type: string; question?: string; instruction?: string };
  createdAt: string;
  finishedAt: string | null;
  error: { code: string; message: string } | null;
  result: {
    text: string;
    finishReason: string;
    usage: Record<string, number | string>;
    timings: Record<string, number>;
    evidence: { chunkIndex: number; charStart: number; charEnd: number; page?: number; score: number; text: string }[];
  } | null;
}

async function createJob(body: object): Promise<Job> {
  const res = await fetch(`${stack.api.url}/v1/jobs`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) });
  expect(res.status).toBe(202);
  return (await res.json()) as Job;
}
async function getJob(id: string): Promise<Job> {
  return (await (await fetch(`${stack.api.url}/v1/jobs/${id}`)).json()) as Job;
}
async function waitEnded(id: string): Promise<Job> {
  for (const started = Date.now(); Date.now() - started < 60_000; await new Promise((r) => setTimeout(r, 200))) {
    const job = await getJob(id);
    if (['succeeded', 'failed', 'cancelled'].includes(job.status)) return job;
  }
  throw new Error(`job ${id} did not end in 60 s`);
}

const USAGE_KEYS = ['chunks', 'softTokens', 'encoderTokens', 'expandedChunks', 'expandedTokens', 'promptTokens', 'generatedTokens', 'chars'];
const TIMING_KEYS = ['queueMs', 'chunkMs', 'encodeMs', 'adapterMs', 'scoringMs', 'expandMs', 'prefillMs', 'decodeMs', 'totalMs'];

/** The job view shows an ended job as the API has it: task, status, answer, finish reason, usage, timings, evidence, error, total time. */
async function expectJobShown(page: Page, job: Job): Promise<void> {
  await page.waitForSelector(`#job-status.${job.status}`, { timeout: 10_000 });
  await page.waitForSelector('#elapsed[data-state="done"]', { timeout: 10_000 });
  expect((await page.textContent('#job-id'))!.trim()).toBe(job.id);
  const task = job.task.type === 'qa' ? `Question: ${job.task.question}` : job.task.type === 'instruct' ? `Instruction: ${job.task.instruction}` : `Task: ${job.task.type}`;
  expect(await page.textContent('#job-task')).toBe(task);
  expect(await page.getAttribute('#elapsed', 'data-ms')).toBe(String(Date.parse(job.finishedAt!) - Date.parse(job.createdAt)));
  expect(await page.textContent('#elapsed')).toMatch(new RegExp(`^${job.status} after \\d`));
  expect(await page.textContent('#job-error')).toBe(job.error ? `${job.error.code}: ${job.error.message}` : '');
  if (!job.result) {
    expect(await page.isVisible('#result-details')).toBe(false);
    expect(await page.isVisible('#evidence-section')).toBe(false);
    return;
  }
  await page.waitForSelector('#answer[data-state="done"]', { timeout: 10_000 });
  expect(await page.textContent('#answer')).toBe(job.result.text);
  expect(await page.isVisible('#result-details')).toBe(true);
  expect(await page.textContent('#finish-reason')).toBe(job.result.finishReason);
  for (const key of USAGE_KEYS) expect(await page.getAttribute(`#usage [data-key="${key}"] dd`, 'data-value'), key).toBe(String(job.result.usage[key]));
  for (const key of TIMING_KEYS) expect(await page.getAttribute(`#timings [data-key="${key}"] dd`, 'data-value'), key).toBe(String(job.result.timings[key]));
  expect(await page.textContent('#timings [data-key="totalMs"] dt')).toBe('total');
  expect(job.result.evidence.length).toBeGreaterThan(0);
  expect(await page.locator('#evidence li pre').allTextContents()).toEqual(job.result.evidence.map((e) => e.text));
  expect(await page.locator('#evidence li .muted').allTextContents()).toEqual(
    job.result.evidence.map((e) => expect.stringMatching(new RegExp(`^chunk ${e.chunkIndex}, characters ${e.charStart}-${e.charEnd}${e.page ? `, page ${e.page}` : ''}.*, score ${e.score.toFixed(3).replace('.', '\\.')}$`))),
  );
}

function collectErrors(page: Page): string[] {
  const errors: string[] = [];
  page.on('pageerror', (err) => errors.push(err.message));
  page.on('console', (msg) => {
    if (msg.type() === 'error') errors.push(msg.text());
  });
  return errors;
}

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
    // the page must open it again from the last id it got. Later streams pass through. The decoder takes no job until
    // that first stream is open: a job that ended before it would send its whole stream in two blocks, with nothing
    // to cut (a small document is answered in a few hundred milliseconds).
    const decoders = stack.decoder.workers;
    await Promise.all(decoders.map((w) => w.pause()));
    await page.route('**/v1/jobs/*/events', async (route) => {
      asked.push(route.request().headers()['last-event-id']);
      if (asked.length > 1) return route.continue();
      for (const w of decoders) w.resume();
      const full = await (await route.fetch()).text();
      const kept = full.split('\n\n').slice(0, 5);
      // The last id the page received: a block without one (a comment, the retry preamble) may end the kept part.
      cutAfterId = kept.map((block) => /^id: ?(.*)$/m.exec(block)?.[1]).filter((id) => id !== undefined).at(-1);
      await route.fulfill({ status: 200, headers: { 'content-type': 'text/event-stream' }, body: `${kept.join('\n\n')}\n\n` });
    });
    await page.goto(`${stack.api.url}/`);
    await page.fill('#text', `${DOCUMENT} Resumed.`);
    await page.selectOption('#task', 'summarize');
    await page.fill('#max-new-tokens', '24');
    try {
      await page.click('#submit');
      await page.waitForSelector('#job-status.succeeded', { timeout: 60_000 });
    } finally {
      for (const w of decoders) w.resume();
    }
    await page.waitForSelector('#answer[data-state="done"]', { timeout: 10_000 });
    const jobId = (await page.textContent('#job-id'))!.trim();
    const job = (await (await fetch(`${stack.api.url}/v1/jobs/${jobId}`)).json()) as { result: { text: string } };
    expect(cutAfterId).toMatch(/^\d+-\d+$/);
    expect(asked).toEqual([undefined, cutAfterId]);
    expect(await page.textContent('#answer')).toBe(job.result.text);
    expect(pageErrors).toEqual([]);
    await page.close();
  });

  it('opens a past job after a reload and from the list: question, answer, finish reason, usage, timings, evidence; a cancelled and a failed one with their errors', async () => {
    const page = await browser.newPage();
    const pageErrors = collectErrors(page);
    await page.goto(`${stack.api.url}/`);
    await page.fill('#text', `${DOCUMENT} Reloaded.`);
    await page.selectOption('#task', 'qa');
    await page.fill('#prompt', 'What did Ada write in the green ledger?');
    await page.fill('#max-new-tokens', '12');
    await page.click('#submit');
    await page.waitForSelector('#job-status.succeeded', { timeout: 60_000 });
    const jobId = (await page.textContent('#job-id'))!.trim();
    const job = await getJob(jobId);
    await expectJobShown(page, job);

    // A reload keeps the job in the address (#job_...) and reads it back whole from GET /v1/jobs/:id.
    expect(new URL(page.url()).hash).toBe(`#${jobId}`);
    const reads: string[] = [];
    page.on('request', (r) => r.url().includes('/v1/jobs/') && reads.push(new URL(r.url()).pathname));
    await page.reload();
    await expectJobShown(page, job);
    expect(reads).toContain(`/v1/jobs/${jobId}`);

    // A job never shown in this browser (created through the API, then cancelled) and the one above, opened by
    // clicking their rows in a fresh page.
    const cancelled = await createJob({ text: DOCUMENT.repeat(20), task: { type: 'summarize' }, generation: { maxNewTokens: 64 } });
    expect((await fetch(`${stack.api.url}/v1/jobs/${cancelled.id}/cancel`, { method: 'POST' })).status).toBe(200);
    const cancelledJob = await waitEnded(cancelled.id);
    expect(cancelledJob.status).toBe('cancelled');
    expect(cancelledJob.error).not.toBeNull();

    const fresh = await browser.newPage();
    const freshErrors = collectErrors(fresh);
    await fresh.goto(`${stack.api.url}/`);
    expect(await fresh.textContent('#job-id')).toBe('');
    await fresh.click(`#jobs-body tr[data-id="${cancelled.id}"]`);
    await expectJobShown(fresh, cancelledJob);
    await fresh.click(`#jobs-body tr[data-id="${jobId}"]`);
    await expectJobShown(fresh, job);
    expect(await fresh.getAttribute(`#jobs-body tr[data-id="${jobId}"]`, 'class')).toBe('open');

    // A failed job (the stack fails none on purpose, so GET /v1/jobs/:id answers one here): its status and error,
    // opened from the address.
    const failed: Job = { ...cancelledJob, id: 'job_0failedexample', status: 'failed', error: { code: 'INTERNAL', message: 'the decoder stopped' } };
    await fresh.route(`**/v1/jobs/${failed.id}`, (route) => route.fulfill({ status: 200, contentType: 'application/json', body: JSON.stringify(failed) }));
    await fresh.goto(`${stack.api.url}/#${failed.id}`);
    await expectJobShown(fresh, failed);
    expect(await fresh.getAttribute('#job-status', 'class')).toBe('status failed');
    expect(await fresh.isDisabled('#cancel')).toBe(true);
    expect(pageErrors).toEqual([]);
    expect(freshErrors).toEqual([]);
    await page.close();
    await fresh.close();
  });

  it('ticks the elapsed time while a job runs and shows its total when it ends', async () => {
    const page = await browser.newPage();
    const pageErrors = collectErrors(page);
    // The event stream is held until the test lets it through, so the page sees the job as queued for a while.
    let release!: () => void;
    const held = new Promise<void>((r) => (release = r));
    await page.route('**/v1/jobs/*/events', async (route) => {
      await held;
      await route.continue();
    });
    await page.goto(`${stack.api.url}/`);
    await page.fill('#text', `${DOCUMENT} Timed.`);
    await page.selectOption('#task', 'summarize');
    await page.fill('#max-new-tokens', '8');
    await page.click('#submit');
    await page.waitForSelector('#elapsed[data-state="running"]', { timeout: 10_000 });
    const first = Number(await page.getAttribute('#elapsed', 'data-ms'));
    await page.waitForTimeout(1200);
    const second = Number(await page.getAttribute('#elapsed', 'data-ms'));
    expect(second - first).toBeGreaterThanOrEqual(600); // ticks every 200 ms; slack for a loaded machine
    expect(await page.textContent('#elapsed')).toMatch(/^elapsed \d+(\.\d)? (ms|s)$/);
    expect(await page.getAttribute('#elapsed', 'data-state')).toBe('running');
    release();
    await page.waitForSelector('#job-status.succeeded', { timeout: 60_000 });
    const job = await getJob((await page.textContent('#job-id'))!.trim());
    await expectJobShown(page, job);
    // Stopped: the total stays.
    const total = await page.textContent('#elapsed');
    await page.waitForTimeout(500);
    expect(await page.textContent('#elapsed')).toBe(total);
    expect(pageErrors).toEqual([]);
    await page.close();
  });

  it('pages through more jobs than one page with the list cursor, older and back to newer', async () => {
    for (let i = 0; i < 7; i++) await createJob({ text: `Paged document number ${i}. ${DOCUMENT.slice(0, 300)}`, task: { type: 'summarize' }, generation: { maxNewTokens: 2 } });
    const all = (await (await fetch(`${stack.api.url}/v1/jobs?limit=100`)).json()) as { data: Job[]; hasMore: boolean };
    expect(all.hasMore).toBe(false);
    const ids = all.data.map((j) => j.id);
    expect(ids.length).toBeGreaterThan(10); // three pages of 5

    const page = await browser.newPage();
    const pageErrors = collectErrors(page);
    const listed: string[] = [];
    page.on('request', (r) => r.url().includes('/v1/jobs?') && listed.push(new URL(r.url()).search));
    await page.goto(`${stack.api.url}/`);
    await page.waitForSelector('#jobs-body tr');
    await page.selectOption('#page-size', '5');
    await expect.poll(() => page.locator('#jobs-body tr').count(), { timeout: 10_000 }).toBe(5);
    const rowIds = () => page.locator('#jobs-body tr').evaluateAll((rows) => rows.map((r) => r.getAttribute('data-id') as string));
    const onPage = (n: number) => page.locator('#page-info', { hasText: new RegExp(`^page ${n}\\b`) }).waitFor();
    expect(await page.isDisabled('#newer')).toBe(true);

    const pages: string[][] = [await rowIds()];
    while (!(await page.isDisabled('#older'))) {
      await page.click('#older');
      await onPage(pages.length + 1);
      pages.push(await rowIds());
    }
    expect(pages.length).toBe(Math.ceil(ids.length / 5));
    expect(pages.slice(0, -1).every((p) => p.length === 5)).toBe(true);
    expect(pages.flat()).toEqual(ids);
    expect(await page.isDisabled('#newer')).toBe(false);
    // The second page was read with the first page's cursor.
    const firstPage = (await (await fetch(`${stack.api.url}/v1/jobs?limit=5`)).json()) as { nextCursor: string };
    expect(listed).toContain(`?${new URLSearchParams({ limit: '5', after: firstPage.nextCursor })}`);

    // Newer walks back through the same pages.
    for (let n = pages.length - 1; n >= 1; n--) {
      await page.click('#newer');
      await onPage(n);
      expect(await rowIds()).toEqual(pages[n - 1]);
    }
    expect(await page.isDisabled('#newer')).toBe(true);

    // A row on a later page opens like any other.
    await page.click('#older');
    await onPage(2);
    await page.click(`#jobs-body tr[data-id="${pages[1][0]}"]`);
    await page.locator('#job-id', { hasText: pages[1][0] }).waitFor();
    await Promise.all(all.data.map((j) => waitEnded(j.id)));
    expect(pageErrors).toEqual([]);
    await page.close();
  });

  it('is usable at 390 px: no sideways scrolling, the layout stacks, the answer and evidence are visible', async () => {
    const created = await createJob({ text: DOCUMENT, task: { type: 'qa', question: 'How many steps did she climb every night?' }, generation: { maxNewTokens: 12 } });
    const job = await waitEnded(created.id);
    expect(job.status).toBe('succeeded');
    const page = await browser.newPage();
    const pageErrors = collectErrors(page);
    await page.setViewportSize({ width: 390, height: 844 });
    await page.goto(`${stack.api.url}/#${job.id}`);
    await expectJobShown(page, job);
    await page.waitForSelector(`#jobs-body tr[data-id="${job.id}"]`);

    // No sideways scrolling: the page is no wider than the viewport.
    expect(Number(await page.evaluate('document.documentElement.scrollWidth'))).toBeLessThanOrEqual(390);
    expect(Number(await page.evaluate('document.body.scrollWidth'))).toBeLessThanOrEqual(390);
    for (const part of ['#answer', '#evidence li pre', '#usage', '#timings', `#jobs-body tr[data-id="${job.id}"]`, '#older']) {
      const box = (await page.locator(part).first().boundingBox())!;
      expect(box, part).not.toBeNull();
      expect(box.x, part).toBeGreaterThanOrEqual(0);
      expect(box.x + box.width, part).toBeLessThanOrEqual(390);
      if (part !== '#older') expect(box.width, part).toBeGreaterThan(200);
    }
    // The layout stacks: the table's header is gone (each row is a card) and the form's two columns (task, max new
    // tokens) sit one above the other.
    expect(await page.isVisible('thead')).toBe(false);
    const task = (await page.locator('#task').boundingBox())!;
    const maxTokens = (await page.locator('#max-new-tokens').boundingBox())!;
    expect(task.y + task.height).toBeLessThanOrEqual(maxTokens.y);
    expect(await page.isVisible('#answer')).toBe(true);
    expect(await page.isVisible('#evidence li pre')).toBe(true);
    expect(await page.isVisible('#result-details')).toBe(true);
    // The job's row reads as a card: each cell labelled.
    const cell = await page.locator(`#jobs-body tr[data-id="${job.id}"] td`).first().evaluate((td) => td.ownerDocument.defaultView!.getComputedStyle(td, '::before').content);
    expect(cell).toBe('"id: "');

    await mkdir(RESULTS, { recursive: true });
    await page.screenshot({ path: join(RESULTS, 'console-390.png'), fullPage: true });
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
