// ONNX Runtime (onnxruntime-node) against the PyTorch reference in golden.json.
// Usage (repo root): node training/scripts/check_onnx_parity.mjs [models/e2llm-tiny] [tolerance=1e-4]
// Checks: tokenizer ids (JS) == golden ids; encoder (one chunk at a time and as a padded batch),
// adapter, decoder prefill with an EMPTY past, 31 cached greedy steps (32 tokens), and left-padded
// batched decoding == unpadded. Exits non-zero on any mismatch.
import * as ort from 'onnxruntime-node';
import { Tokenizer } from '@huggingface/tokenizers';
import fs from 'node:fs';
import path from 'node:path';

const dir = process.argv[2] ?? 'models/e2llm-tiny';
const tol = Number(process.argv[3] ?? 1e-4);
const man = JSON.parse(fs.readFileSync(path.join(dir, 'manifest.json'), 'utf8'));
const g = JSON.parse(fs.readFileSync(path.join(dir, man.golden), 'utf8'));
const tok = new Tokenizer(JSON.parse(fs.readFileSync(path.join(dir, man.encoder.tokenizer), 'utf8')), {});
const D = man.decoder;
const opts = { intraOpNumThreads: 2, interOpNumThreads: 1 };
const enc = await ort.InferenceSession.create(path.join(dir, man.encoder.onnx), opts);
const ada = await ort.InferenceSession.create(path.join(dir, man.adapter.onnx), opts);
const dec = await ort.InferenceSession.create(path.join(dir, D.onnx), opts);
const buf = fs.readFileSync(path.join(dir, D.embeddings.file));
const E = new Float32Array(buf.buffer.slice(buf.byteOffset, buf.byteOffset + buf.byteLength));

let failures = 0;
const fail = (msg) => { failures++; console.error('FAIL', msg); };
const maxDiff = (a, b) => { let m = 0; for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i] - b[i])); return a.length === b.length ? m : Infinity; };
const check = (name, a, b) => { const d = maxDiff(a, b); if (!(d <= tol)) fail(`${name}: max |diff| ${d}`); return d; };
const eqIds = (name, a, b) => { if (JSON.stringify(a) !== JSON.stringify(b)) fail(`${name}: ${JSON.stringify(a)} != ${JSON.stringify(b)}`); };
const i64 = (arr, dims) => new ort.Tensor('int64', BigInt64Array.from(arr.map(BigInt)), dims);
const f32 = (arr, dims) => new ort.Tensor('float32', Float32Array.from(arr), dims);
const argmax = (a) => { let b = 0; for (let i = 1; i < a.length; i++) if (a[i] > a[b]) b = i; return b; };
const row = (id) => E.subarray(id * D.hiddenSize, (id + 1) * D.hiddenSize);

// 1. tokenizer
g.chunks.forEach((c, i) => eqIds(`encoderInputIds[${i}]`, [man.encoder.clsTokenId, ...tok.encode(c, { add_special_tokens: false }).ids].slice(0, man.encoder.maxTokens), g.encoderInputIds[i]));
const tpl = man.prompt.templates[g.task.type].replace('{question}', g.task.question);
const [pre, suf] = tpl.split(man.prompt.placeholder);
eqIds('prefixIds', [D.bosTokenId, ...tok.encode(pre, { add_special_tokens: false }).ids], g.prefixIds);
eqIds('suffixIds', tok.encode(suf, { add_special_tokens: false }).ids, g.suffixIds);

// 2. encoder: single and padded batch
let encD = 0;
for (let i = 0; i < g.chunks.length; i++) {
  const ids = g.encoderInputIds[i];
  const r = await enc.run({ input_ids: i64(ids, [1, ids.length]), attention_mask: i64(ids.map(() => 1), [1, ids.length]) });
  encD = Math.max(encD, check(`chunkEmbeddings[${i}] (single)`, r.chunk_embeddings.data, g.chunkEmbeddings[i]));
}
const T = Math.max(...g.encoderInputIds.map((x) => x.length));
const padded = g.encoderInputIds.flatMap((x) => [...x, ...Array(T - x.length).fill(man.encoder.padTokenId)]);
const pmask = g.encoderInputIds.flatMap((x) => [...x.map(() => 1), ...Array(T - x.length).fill(0)]);
const rb = await enc.run({ input_ids: i64(padded, [g.chunks.length, T]), attention_mask: i64(pmask, [g.chunks.length, T]) });
encD = Math.max(encD, check('chunkEmbeddings (padded batch)', rb.chunk_embeddings.data, g.chunkEmbeddings.flat()));

// 3. adapter
const ra = await ada.run({ chunk_embeddings: f32(g.chunkEmbeddings.flat(), [g.chunks.length, man.adapter.inputWidth]) });
const adaD = check('softTokens', ra.soft_tokens.data, g.softTokens.flat());
const soft = ra.soft_tokens.data;

// 4. decoder: prefill (empty past) + cached greedy
const emptyPast = (batch) => { const f = {}; for (let l = 0; l < D.layers; l++) for (const kv of ['key', 'value']) f[`past_key_values.${l}.${kv}`] = new ort.Tensor('float32', new Float32Array(0), [batch, D.kvHeads, 0, D.headSize]); return f; };
const presentsToPast = (r) => { const f = {}; for (let l = 0; l < D.layers; l++) for (const kv of ['key', 'value']) f[`past_key_values.${l}.${kv}`] = r[`present.${l}.${kv}`]; return f; };
const embeds = [];
for (const id of g.prefixIds) embeds.push(...row(id));
embeds.push(...soft);
for (const id of g.suffixIds) embeds.push(...row(id));
const L = embeds.length / D.hiddenSize;
let r = await dec.run({ inputs_embeds: f32(embeds, [1, L, D.hiddenSize]), attention_mask: i64(Array(L).fill(1), [1, L]), position_ids: i64([...Array(L).keys()], [1, L]), ...emptyPast(1) });
if (JSON.stringify(r.logits.dims) !== JSON.stringify([1, 1, D.vocabSize])) fail(`logits dims ${r.logits.dims}`);
if (r['present.0.key'].dims[2] !== L) fail(`present length ${r['present.0.key'].dims}`);
let decD = check('prefillLogits', r.logits.data, g.prefillLogits);
const greedy = [];
for (let k = 0; k < g.greedyTokens.length; k++) {
  decD = Math.max(decD, check(`stepLogits[${k}]`, r.logits.data, g.stepLogits[k]));
  const t = argmax(r.logits.data);
  greedy.push(t);
  if (k === g.greedyTokens.length - 1) break;
  r = await dec.run({ inputs_embeds: f32(row(t), [1, 1, D.hiddenSize]), attention_mask: i64(Array(L + k + 1).fill(1), [1, L + k + 1]), position_ids: i64([L + k], [1, 1]), ...presentsToPast(r) });
}
eqIds('greedyTokens', greedy, g.greedyTokens);
eqIds('greedyTokensNoCache', greedy, g.greedyTokensNoCache);

// 5. batched decoding, row 1 left-padded by 3: must equal the unpadded run
const P = 3;
const b0 = embeds.concat(Array(P * D.hiddenSize).fill(0)); // row 0: L+P real tokens (prompt + 3 zero vectors) - just a different row
const b1 = Array(P * D.hiddenSize).fill(0.5).concat(embeds); // row 1: 3 pad positions then the prompt
const m = [...Array(L + P).fill(1), ...Array(P).fill(0), ...Array(L).fill(1)];
const pos = [...Array(L + P).keys(), ...Array(P).fill(0), ...Array(L).keys()];
let rb2 = await dec.run({ inputs_embeds: f32(b0.concat(b1), [2, L + P, D.hiddenSize]), attention_mask: i64(m, [2, L + P]), position_ids: i64(pos, [2, L + P]), ...emptyPast(2) });
const padD = check('left-padded batch row logits', rb2.logits.data.subarray(D.vocabSize), g.prefillLogits);
// one cached step on the batch
const t0 = g.greedyTokens[0];
const step = [...Array(D.hiddenSize).fill(0), ...row(t0)];
rb2 = await dec.run({ inputs_embeds: f32(step, [2, 1, D.hiddenSize]), attention_mask: i64([...Array(L + P + 1).fill(1), ...Array(P).fill(0), ...Array(L + 1).fill(1)], [2, L + P + 1]), position_ids: i64([L + P, L], [2, 1]), ...presentsToPast(rb2) });
check('left-padded batch cached step', rb2.logits.data.subarray(D.vocabSize), g.stepLogits[1]);

console.log(`encoder max|diff| ${encD.toExponential(2)}, adapter ${adaD.toExponential(2)}, decoder (prefill + ${g.greedyTokens.length - 1} cached steps) ${decD.toExponential(2)}, left-padded batch ${padD.toExponential(2)}`);
console.log(`greedy (onnxruntime, cached) ${JSON.stringify(greedy)}`);
console.log(failures ? `${failures} FAILURES` : `OK: onnxruntime matches PyTorch within ${tol}`);
process.exit(failures ? 1 : 0);
