// The int8 encoder (training/scripts/quantize_encoder.py) against the f32 one, in onnxruntime-node, on real chunks.
// Usage (repo root): node training/scripts/bench_encoder_int8.mjs F32.onnx INT8.onnx [INT8b.onnx ...]
//   env: ROUNDS (default 5): alternating timed rounds per batch size; BATCHES (default 8,64); THREADS (0: ort decides)
// 1. Closeness: pooled vectors of 256 chunks (GPL-3 and the Vim-manual essay text, 512 characters each, as the
//    package's chunking), one padded batch of 16 at a time: max |diff|, and min / mean cosine similarity.
// 2. Speed: the same padded batches through each model, A/B alternated each round (the machine is shared), best
//    round per model; tokens/s counts the real (unpadded) tokens, as padded tokens would flatter long pads.
import * as ort from 'onnxruntime-node';
import { Tokenizer } from '@huggingface/tokenizers';
import fs from 'node:fs';

const [f32Path, ...int8Paths] = process.argv.slice(2);
if (!f32Path || int8Paths.length === 0) throw new Error('usage: bench_encoder_int8.mjs F32.onnx INT8.onnx [...]');
const rounds = Number(process.env.ROUNDS ?? 5);
const batchSizes = (process.env.BATCHES ?? '8,64').split(',').map(Number);
const threads = Number(process.env.THREADS ?? 0);
const man = JSON.parse(fs.readFileSync('models/e2llm-tiny/manifest.json', 'utf8'));
const tok = new Tokenizer(JSON.parse(fs.readFileSync('models/e2llm-tiny/tokenizer.json', 'utf8')), {});

const chunkText = (text, n) => {
  const out = [];
  for (let i = 0; i + 512 <= text.length && out.length < n; i += 512) out.push(text.slice(i, i + 512));
  return out;
};
const texts = [
  ...chunkText(fs.readFileSync('samples/gpl-3.0.txt', 'utf8'), 64),
  ...chunkText(fs.readFileSync('libs/eval/data/vim-manual-prose.txt', 'utf8').slice(200_000), 192),
];
const ids = texts.map((t) => [man.encoder.clsTokenId, ...tok.encode(t, { add_special_tokens: false }).ids].slice(0, man.encoder.maxTokens));

const feeds = (batch) => {
  const longest = Math.max(...batch.map((s) => s.length));
  const data = new BigInt64Array(batch.length * longest);
  const mask = new BigInt64Array(batch.length * longest);
  batch.forEach((s, r) => s.forEach((id, t) => { data[r * longest + t] = BigInt(id); mask[r * longest + t] = 1n; }));
  return { input_ids: new ort.Tensor('int64', data, [batch.length, longest]), attention_mask: new ort.Tensor('int64', mask, [batch.length, longest]) };
};
const open = (p) => ort.InferenceSession.create(p, { graphOptimizationLevel: 'all', ...(threads > 0 ? { intraOpNumThreads: threads } : {}) });
const embed = async (session, batches) => {
  const out = [];
  for (const b of batches) out.push(...chunkRows((await session.run(feeds(b))).chunk_embeddings.data, man.encoder.width));
  return out;
};
const chunkRows = (data, w) => Array.from({ length: data.length / w }, (_, i) => data.subarray(i * w, (i + 1) * w));
const cosine = (a, b) => {
  let ab = 0, aa = 0, bb = 0;
  for (let i = 0; i < a.length; i++) { ab += a[i] * b[i]; aa += a[i] * a[i]; bb += b[i] * b[i]; }
  return ab / Math.sqrt(aa * bb);
};
const groups = (list, n) => Array.from({ length: Math.ceil(list.length / n) }, (_, i) => list.slice(i * n, (i + 1) * n));

const models = [{ name: 'f32', path: f32Path }, ...int8Paths.map((p) => ({ name: p.split('/').pop(), path: p }))];
for (const m of models) m.session = await open(m.path);
const ref = await embed(models[0].session, groups(ids, 16));
for (const m of models.slice(1)) {
  const got = await embed(m.session, groups(ids, 16));
  let maxAbs = 0, minCos = 1, sumCos = 0, refMax = 0;
  got.forEach((v, i) => {
    for (let j = 0; j < v.length; j++) { maxAbs = Math.max(maxAbs, Math.abs(v[j] - ref[i][j])); refMax = Math.max(refMax, Math.abs(ref[i][j])); }
    const c = cosine(v, ref[i]);
    minCos = Math.min(minCos, c);
    sumCos += c;
  });
  console.log(`closeness ${m.name} vs f32 over ${ids.length} chunks: max|diff| ${maxAbs.toFixed(4)} (max |f32| ${refMax.toFixed(3)}), cosine min ${minCos.toFixed(5)} mean ${(sumCos / got.length).toFixed(5)}`);
}

for (const bs of batchSizes) {
  const batches = groups(ids, bs).filter((b) => b.length === bs);
  const realTokens = batches.reduce((n, b) => n + b.reduce((k, s) => k + s.length, 0), 0);
  const prepared = batches.map(feeds);
  for (const m of models) await m.session.run(prepared[0]); // warm-up
  const best = new Map(models.map((m) => [m.name, Infinity]));
  for (let r = 0; r < rounds; r++) {
    for (const m of r % 2 === 0 ? models : [...models].reverse()) {
      const t0 = process.hrtime.bigint();
      for (const f of prepared) await m.session.run(f);
      best.set(m.name, Math.min(best.get(m.name), Number(process.hrtime.bigint() - t0) / 1e9));
    }
  }
  const line = models.map((m) => `${m.name} ${Math.round(realTokens / best.get(m.name))} tok/s (${(best.get(m.name) * 1000).toFixed(0)} ms)`);
  console.log(`batch ${bs}: ${batches.length} batches, ${realTokens} real tokens, best of ${rounds}: ${line.join(' | ')}`);
}
for (const m of models) await m.session.release();
