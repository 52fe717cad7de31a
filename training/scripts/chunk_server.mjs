// The serving chunker (libs/shared/src/chunker.ts, built to libs/shared/dist) for Python: training cuts text
// exactly as the API and `e2llm ask` do. One JSON request per stdin line,
//   {"text": "...", "chunkChars": 512, "overlapChars": 0}
// one JSON answer per stdout line: {"chunks": ["...", ...]} or {"error": "..."}.
// Usage (repo root, after the build): node training/scripts/chunk_server.mjs
import { createInterface } from 'node:readline';
import { chunkText } from '../../libs/shared/dist/chunker.js';

const lines = createInterface({ input: process.stdin, crlfDelay: Infinity });
for await (const line of lines) {
  let answer;
  try {
    const { text, chunkChars, overlapChars = 0 } = JSON.parse(line);
    answer = { chunks: chunkText(text, { chunkChars, overlapChars }).map((c) => c.text) };
  } catch (err) {
    answer = { error: String(err?.message ?? err) };
  }
  process.stdout.write(`${JSON.stringify(answer)}\n`);
}
