import { createServer, type IncomingMessage, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { runCli } from '../../../test/cli-harness.js';

/** A stand-in API: answers DELETE for one job and one document, 404 NOT_FOUND for anything else. */
let server: Server;
let url: string;
const seen: { method: string; url: string; auth: string | undefined }[] = [];

beforeAll(async () => {
  server = createServer((req: IncomingMessage, res) => {
    seen.push({ method: req.method!, url: req.url!, auth: req.headers.authorization });
    const send = (status: number, body: unknown) => res.writeHead(status, { 'content-type': 'application/json' }).end(JSON.stringify(body));
    if (req.method === 'DELETE' && req.url === '/v1/jobs/job_1') return send(200, { object: 'job', id: 'job_1', deleted: true, jobs: [] });
    if (req.method === 'DELETE' && req.url === '/v1/documents/doc_1') return send(200, { object: 'document', id: 'doc_1', deleted: true, jobs: ['job_2', 'job_3'] });
    send(404, { error: { code: 'NOT_FOUND', message: `no such id: ${req.url}` } });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
});

afterAll(() => new Promise<void>((r) => server.close(() => r())));

const cli = (argv: string[]) => runCli(argv);

describe('e2llm delete', () => {
  it('deletes jobs and documents by id, one line each, with the API key', async () => {
    seen.length = 0;
    const r = await cli(['delete', 'job_1', 'doc_1', '--url', url, '--api-key', 'k-123']);
    expect(r).toEqual({ code: 0, stdout: 'deleted job job_1\ndeleted document doc_1 and its jobs job_2 job_3\n', stderr: '' });
    expect(seen).toEqual([
      { method: 'DELETE', url: '/v1/jobs/job_1', auth: 'Bearer k-123' },
      { method: 'DELETE', url: '/v1/documents/doc_1', auth: 'Bearer k-123' },
    ]);
    const json = await cli(['delete', 'job_1', '--url', url, '--json']);
    expect(JSON.parse(json.stdout)).toEqual({ object: 'job', id: 'job_1', deleted: true, jobs: [] });
  });

  it('stops at an unknown id with its code and exit status, and refuses what is not an id before sending anything', async () => {
    seen.length = 0;
    const r = await cli(['delete', 'job_1', 'job_unknown', 'doc_1', '--url', url]);
    expect(r.stdout).toBe('deleted job job_1\n');
    expect(r.stderr).toMatch(/^e2llm: error NOT_FOUND: /);
    expect(r.code).not.toBe(0);
    expect(seen.map((s) => s.url)).toEqual(['/v1/jobs/job_1', '/v1/jobs/job_unknown']);
    seen.length = 0;
    const bad = await cli(['delete', 'job_1', '../etc', '--url', url]);
    expect(bad.stderr).toMatch(/error INPUT_INVALID: "\.\.\/etc" is neither a job id/);
    expect(bad.code).not.toBe(0);
    expect((await cli(['delete', '--url', url])).stderr).toMatch(/INPUT_INVALID: delete takes one or more/);
    expect(seen).toEqual([]);
  });
});
