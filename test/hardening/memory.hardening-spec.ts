import { readFileSync } from 'node:fs';
import { afterAll, describe, expect, it } from 'vitest';
import { makeDocx } from '@lib/extract/testing';
import { loadConfig } from '@lib/shared';
import { startServe, type ServeProcess } from './serve-process.js';

/**
 * Extraction memory is bounded as a whole: 8 worst-case uploads at once (DOCX files whose document.xml inflates to
 * just under MAX_DOCX_BYTES, HTML files of millions of elements) against `e2llm serve`. The attack run took
 * `npm start` from 1.3 GB to 5.5 GB with 8 such HTML files. The budget over the idle process is the extraction
 * pool's (EXTRACT_THREADS x (EXTRACT_MEMORY_MB + MAX_DOCX_BYTES)) plus the request bodies held while they wait and
 * a margin for the allocator: documented in docs/reliability.md.
 */
let serve: ServeProcess | undefined;

afterAll(async () => {
  await serve?.cleanup();
});

const MIB = 1024 * 1024;

function memoryOf(pid: number): { rss: number; peak: number } {
  const status = readFileSync(`/proc/${pid}/status`, 'utf8');
  const kb = (field: string) => Number(new RegExp(`^${field}:\\s+(\\d+) kB`, 'm').exec(status)![1]) * 1024;
  return { rss: kb('VmRSS'), peak: kb('VmHWM') };
}

describe('extraction memory under 8 parallel worst-case uploads', () => {
  it('keeps the process within its documented budget, with no 5xx', async () => {
    serve = await startServe();
    const config = loadConfig({});
    const pid = serve.proc.pid!;
    // Warm the process up (first requests load code paths) before the baseline is read.
    await fetch(`${serve.url}/v1/jobs`, { method: 'POST', body: (() => { const f = new FormData(); f.append('file', new Blob([makeDocx(['warm'])]), 'w.docx'); f.append('task', '{"type":"summarize"}'); return f; })() });
    const baseline = memoryOf(pid).rss;
    // document.xml just under MAX_DOCX_BYTES: a million one-letter paragraphs (55 bytes of XML each).
    const paragraphs = Math.floor((config.maxDocxBytes - 4096) / 55);
    const docx = makeDocx(Array.from({ length: paragraphs }, () => 'x'));
    const html = new TextEncoder().encode(`<html><body>${'<p><b>x</b></p>'.repeat(Math.floor((6 * MIB) / 15))}</body></html>`);
    const uploads = [docx, html, docx, html, docx, html, docx, html].map((bytes, i) => {
      const form = new FormData();
      form.append('file', new Blob([bytes]), i % 2 === 0 ? 'bomb.docx' : 'big.html');
      form.append('task', '{"type":"summarize"}');
      return form;
    });
    const answers = await Promise.all(uploads.map(async (body) => {
      const res = await fetch(`${serve!.url}/v1/jobs`, { method: 'POST', body });
      return { status: res.status, code: ((await res.json()) as { error?: { code: string } }).error?.code };
    }));
    const { peak } = memoryOf(pid);
    const budget = config.extractThreads * (config.extractMemoryMb * MIB + config.maxDocxBytes) + uploads.length * html.length + 256 * MIB;
    console.log(`docx ${(docx.length / MIB).toFixed(1)} MiB (document.xml ${(paragraphs * 55 / MIB).toFixed(0)} MiB), html ${(html.length / MIB).toFixed(1)} MiB; answers ${answers.map((a) => `${a.status}${a.code ? ` ${a.code}` : ''}`).join(', ')}; RSS idle ${(baseline / MIB).toFixed(0)} MiB, peak ${(peak / MIB).toFixed(0)} MiB (+${((peak - baseline) / MIB).toFixed(0)}), budget +${(budget / MIB).toFixed(0)} MiB`);
    for (const a of answers) expect(a.status).toBeLessThan(500);
    expect(peak - baseline).toBeLessThan(budget);
  }, 300_000);
});
