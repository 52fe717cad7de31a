import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';

/** One request the fake engine received: its path, headers and parsed JSON body, and its number (from 1). */
export interface FakeRequest {
  n: number;
  method: string;
  path: string;
  headers: IncomingMessage['headers'];
  body: any;
}

export type FakeHandler = (req: FakeRequest, res: ServerResponse) => void | Promise<void>;

export interface FakeEngine {
  url: string;
  requests: FakeRequest[];
  /** Replaces what the engine does from the next request on. */
  behave(handler: FakeHandler): void;
  stop(): Promise<void>;
}

/**
 * An HTTP server that answers as told: the hostile engine of the tests (malformed JSON, wrong shapes, errors, silence,
 * a stream cut mid-way). GET /health answers 200 unless the handler says otherwise.
 */
export async function startFakeEngine(handler: FakeHandler): Promise<FakeEngine> {
  let current = handler;
  const requests: FakeRequest[] = [];
  const server: Server = createServer(async (req, res) => {
    let raw = '';
    for await (const c of req) raw += c;
    const r: FakeRequest = { n: requests.length + 1, method: req.method!, path: req.url!, headers: req.headers, body: raw ? JSON.parse(raw) : null };
    requests.push(r);
    await current(r, res);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    requests,
    behave: (h) => (current = h),
    stop: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}

export function sseHead(res: ServerResponse): void {
  res.writeHead(200, { 'content-type': 'text/event-stream', 'cache-control': 'no-cache' });
}

export function sse(res: ServerResponse, data: unknown): void {
  res.write(`data: ${typeof data === 'string' ? data : JSON.stringify(data)}\n\n`);
}

/** A vLLM completions chunk carrying `ids`. */
export function vllmChunk(ids: number[], finish: string | null = null, stopReason: string | number | null = null) {
  return { id: 'cmpl-x', object: 'text_completion', created: 0, model: 'm', choices: [{ index: 0, text: 'x', logprobs: null, finish_reason: finish, stop_reason: stopReason, token_ids: ids }] };
}

/** A well-behaved streamed vLLM answer of `ids`, ended by `finish`. */
export function vllmAnswer(ids: number[], finish = 'length'): FakeHandler {
  return (req, res) => {
    if (req.method === 'GET') return void res.end('');
    sseHead(res);
    ids.forEach((id, i) => sse(res, vllmChunk([id], i === ids.length - 1 ? finish : null)));
    sse(res, '[DONE]');
    res.end();
  };
}
