import { spawn, type ChildProcess } from 'node:child_process';
import { fileURLToPath } from 'node:url';

const SERVER = fileURLToPath(new URL('./engine_server.py', import.meta.url));

export interface EngineProcess {
  /** Base URL, e.g. http://127.0.0.1:40123 */
  url: string;
  /** What the server wrote to stderr (shown when a test fails). */
  stderr(): string;
  stop(): Promise<void>;
}

/**
 * Starts test/engines/engine_server.py (Debian's Python and torch) as a stand-in vLLM, SGLang or TEI on a free
 * loopback port and resolves once it listens. One thread for torch: the machine's cores are shared.
 */
export function startEngineProcess(kind: 'vllm' | 'sglang' | 'tei', args: string[] = [], readyTimeoutMs = 90_000): Promise<EngineProcess> {
  const child: ChildProcess = spawn('/usr/bin/python3', [SERVER, kind, '--port', '0', ...args], {
    env: { ...process.env, OPENBLAS_NUM_THREADS: '1', OMP_NUM_THREADS: '1' },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let err = '';
  child.stderr!.on('data', (c: Buffer) => (err = (err + c.toString()).slice(-8000)));
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  const handle = (url: string): EngineProcess => ({
    url,
    stderr: () => err,
    async stop() {
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGTERM');
      await exited;
    },
  });
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      reject(new Error(`engine_server.py ${kind} did not start in ${readyTimeoutMs} ms: ${err}`));
    }, readyTimeoutMs);
    let out = '';
    child.stdout!.on('data', (c: Buffer) => {
      out += c.toString();
      const m = /READY (\d+)/.exec(out);
      if (m) {
        clearTimeout(timer);
        resolve(handle(`http://127.0.0.1:${m[1]}`));
      }
    });
    child.once('exit', (code) => {
      clearTimeout(timer);
      reject(new Error(`engine_server.py ${kind} exited with ${code} before it listened: ${err}`));
    });
  });
}
