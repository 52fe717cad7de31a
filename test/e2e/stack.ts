import { randomBytes } from 'node:crypto';
import { createServer, type IncomingHttpHeaders, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { pino } from 'pino';
import { startApi, type ApiHandle } from '@app/api';
import { startDecoderWorker, type DecoderWorkerHandle } from '@app/decoder-worker';
import { startEncoderWorker, type EncoderWorkerHandle } from '@app/encoder-worker';
import { startTestS3Server, type TestS3Server } from '@lib/blob-store/testing';
import { loadConfig, type Config } from '@lib/shared';
import { generateWebhookSecret } from '@lib/webhooks';

export interface Stack {
  config: Config;
  api: ApiHandle;
  encoder: EncoderWorkerHandle;
  decoder: DecoderWorkerHandle;
  s3: TestS3Server;
  stop(): Promise<void>;
}

/**
 * The composed stack for black-box tests: the API on a random loopback port, both workers, the machine's Redis
 * under a key prefix of this run's own, and a real S3 protocol server.
 */
export async function startStack(overrides: Partial<Config> = {}): Promise<Stack> {
  const s3 = await startTestS3Server('e2llm-e2e');
  const config = loadConfig(
    {},
    {
      redisPrefix: `e2llm-test-${randomBytes(6).toString('hex')}`,
      port: 0,
      blobStore: 's3',
      s3Endpoint: s3.endpoint,
      s3Bucket: 'e2llm-e2e',
      s3ForcePathStyle: true,
      s3AccessKeyId: s3.config.accessKeyId,
      s3SecretAccessKey: s3.config.secretAccessKey,
      webhookSecret: generateWebhookSecret(),
      webhookAllowLoopback: true,
      webhookBackoffMs: 200,
      logLevel: 'warn',
      ...overrides,
    },
  );
  const logger = pino({ level: config.logLevel });
  const encoder = await startEncoderWorker(config, { logger });
  const decoder = await startDecoderWorker(config, { logger });
  const api = await startApi(config, { logger });
  return {
    config,
    api,
    encoder,
    decoder,
    s3,
    async stop() {
      await api.close();
      await encoder.close();
      await decoder.close();
      await s3.stop();
    },
  };
}

/** A local receiver for webhooks: what it was sent, in order; each delivery answered 204. */
export async function webhookReceiver(): Promise<{ url: string; received: { body: string; headers: IncomingHttpHeaders }[]; close(): void }> {
  const received: { body: string; headers: IncomingHttpHeaders }[] = [];
  const server: Server = createServer((req, res) => {
    let body = '';
    req.on('data', (c) => (body += c));
    req.on('end', () => {
      received.push({ body, headers: req.headers });
      res.writeHead(204).end();
    });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  return { url: `http://127.0.0.1:${(server.address() as AddressInfo).port}/hooks`, received, close: () => server.close() };
}
