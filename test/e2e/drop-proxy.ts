import { createServer, request, type IncomingHttpHeaders, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';

/** What the proxy saw of one event-stream connection. */
export interface StreamSeen {
  lastEventId: string | undefined;
  /** The ids of the events it passed on, in order. */
  ids: string[];
  /** True when the proxy cut this connection. */
  cut: boolean;
}

export interface DropProxy {
  url: string;
  streams: StreamSeen[];
  close(): Promise<void>;
}

/**
 * An HTTP proxy in front of the API that cuts event streams: the first `cuts` connections to /v1/jobs/:id/events
 * have their socket destroyed right after `afterBlocks` whole SSE blocks (the `retry:` preamble counts as one), as a
 * network failure or a restarting load balancer would. Everything else passes through untouched.
 */
export async function startDropProxy(target: string, opts: { cuts: number; afterBlocks: number }): Promise<DropProxy> {
  const to = new URL(target);
  const streams: StreamSeen[] = [];
  let cutsLeft = opts.cuts;
  const server: Server = createServer((req, res) => {
    const isStream = /^\/v1\/jobs\/[^/]+\/events/.test(req.url ?? '');
    const upstream = request({ host: to.hostname, port: to.port, method: req.method, path: req.url, headers: req.headers as IncomingHttpHeaders }, (up) => {
      res.writeHead(up.statusCode ?? 502, up.headers);
      if (!isStream) return void up.pipe(res);
      const seen: StreamSeen = { lastEventId: header(req.headers['last-event-id']), ids: [], cut: false };
      streams.push(seen);
      const cut = cutsLeft-- > 0;
      let pending = '';
      let blocks = 0;
      up.setEncoding('utf8');
      up.on('data', (chunk: string) => {
        pending += chunk;
        let end: number;
        while (!seen.cut && (end = pending.indexOf('\n\n')) >= 0) {
          const block = pending.slice(0, end + 2);
          pending = pending.slice(end + 2);
          const id = /^id: ?(.*)$/m.exec(block)?.[1];
          if (id) seen.ids.push(id);
          if (cut && ++blocks >= opts.afterBlocks) {
            // Cut once the last block has left (destroying at once would drop writes still buffered).
            seen.cut = true;
            up.destroy();
            res.write(block, () => req.socket.destroy());
          } else res.write(block);
        }
      });
      up.on('end', () => {
        if (!seen.cut) res.end(pending);
      });
    });
    upstream.on('error', () => res.destroy());
    req.pipe(upstream);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    streams,
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}

function header(v: string | string[] | undefined): string | undefined {
  return Array.isArray(v) ? v[0] : v;
}
