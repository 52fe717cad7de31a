import { pino } from 'pino';
import { loadConfig } from '@lib/shared';
import type { CliIo } from './main.js';

/**
 * Long-running roles. `serve` is the embedded default: the API and both workers in one process (local-folder blobs,
 * the bundled model, the Redis at REDIS_URL). `api`, `encoder-worker` and `decoder-worker` run one role each, for
 * scale-out. The CLI is the launcher: the apps themselves never import one another.
 */
export type Role = 'serve' | 'api' | 'encoder-worker' | 'decoder-worker';

export async function serveCommand(role: Role, io: CliIo): Promise<number> {
  const config = loadConfig(io.env);
  const logger = pino({ level: config.logLevel, base: { role } });
  const { setupOtlpTracing } = await import('@lib/job-store');
  await setupOtlpTracing(config.otelEndpoint);
  const closers: (() => Promise<void>)[] = [];
  if (role === 'serve' || role === 'encoder-worker') {
    const { startEncoderWorker } = await import('@app/encoder-worker');
    closers.push((await startEncoderWorker(config, { logger: logger.child({ app: 'encoder-worker' }) })).close);
  }
  if (role === 'serve' || role === 'decoder-worker') {
    const { startDecoderWorker } = await import('@app/decoder-worker');
    closers.push((await startDecoderWorker(config, { logger: logger.child({ app: 'decoder-worker' }) })).close);
  }
  if (role === 'serve' || role === 'api') {
    const { startApi } = await import('@app/api');
    const api = await startApi(config, { logger: logger.child({ app: 'api' }) });
    closers.unshift(api.close);
    logger.info({ url: api.url, blobStore: config.blobStore, dataDir: config.dataDir }, `listening on ${api.url}`);
  }
  // The one shutdown path, in every mode: the first SIGTERM or SIGINT drains (nothing else listens for signals; the
  // API registers no shutdown hooks of its own, which re-raised the signal and killed the process mid-drain). A
  // second SIGINT is a person pressing Ctrl-C again: leave at once, the jobs in hand are retried after a restart.
  await new Promise<void>((resolve) => {
    let draining = false;
    const onSignal = (signal: NodeJS.Signals) => {
      if (!draining) {
        draining = true;
        logger.info({ signal }, 'draining: finishing jobs in hand');
        resolve();
      } else if (signal === 'SIGINT') {
        logger.warn({ signal }, 'second interrupt: exiting without draining');
        process.exit(130);
      } else {
        logger.info({ signal }, 'already draining');
      }
    };
    process.on('SIGTERM', onSignal);
    process.on('SIGINT', onSignal);
  });
  // The API stops taking requests first, then the workers finish what they hold.
  for (const close of closers) await close();
  logger.info('drained: every job in hand finished');
  return 0;
}
