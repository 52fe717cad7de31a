// Runs a model package with onnxruntime-node against its golden.json, for f32 and f16 packages alike
// (f16: inputs_embeds, KV cache and logits in float16, embed_tokens.bin in f16). Prints one JSON object:
// {dtype, encoder, adapter, prefill, steps, logitScale, greedy, goldenGreedy, greedyMatches} where the numbers are
// max |onnx - golden|. Usage: node training/hf/scripts/check_package.mjs PKG [steps=4]
import * as ort from 'onnxruntime-node';
import fs from 'node:fs';
import path from 'node:path';

const dir = process.argv[2];
const steps = Number(process.argv[3] ?? 4);
const man = JSON.parse(fs.readFileSync(path.join(dir, 'manifest.json'), 'utf8'));
const g = JSON.parse(fs.readFileSync(path.join(dir, man.golden), 'utf8'));
const D = man.decoder;
const f16 = D.dtype === 'f16';
const opts = { intraOpNumThreads: 1, interOpNumThreads: 1 };
const enc = await ort.InferenceSession.create(path.join(dir, man.encoder.onnx), opts);
const ada = await ort.InferenceSession.create(path.join(dir, man.adapter.onnx), opts);
const dec = await ort.InferenceSession.create(path.join(dir, D.onnx), opts);

// IEEE half <-> float
const f32buf = new Float32Array(1);
const u32buf = new Uint32Array(f32buf.buffer);
function toHalf(v) {
  f32buf[0] = v;
  const x = u32buf[0];
  const sign = (x >>> 16) & 0x8000;
  let e = ((x >>> 23) & 0xff) - 127 + 15;
  let m = x & 0x7fffff;
  if (((x >>> 23) & 0xff) === 0xff) return sign | 0x7c00 | (m ? 0x200 : 0);
  if (e >= 0x1f) return sign | 0x7c00;
  if (e <= 0) {
    if (e < -10) return sign;
    m |= 0x800000;
    const shift = 14 - e;
    let h = m >>> shift;
    const rem = m & ((1 << shift) - 1), half = 1 << (shift - 1);
    if (rem > half || (rem === half && (h & 1))) h++;
    return sign | h;
  }
  let h = sign | (e << 10) | (m >>> 13);
  const rem = m & 0x1fff;
  if (rem > 0x1000 || (rem === 0x1000 && (h & 1))) h++;
  return h;
}
function fromHalf(h) {
  const s = h & 0x8000 ? -1 : 1, e = (h >>> 10) & 0x1f, m = h & 0x3ff;
  if (e === 0) return s * m * 2 ** -24;
  if (e === 0x1f) return m ? NaN : s * Infinity;
  return s * (1 + m / 1024) * 2 ** (e - 15);
}
const buf = fs.readFileSync(path.join(dir, D.embeddings.file));
const E = D.embeddings.dtype === 'f16'
  ? Float32Array.from(new Uint16Array(buf.buffer.slice(buf.byteOffset, buf.byteOffset + buf.byteLength)), fromHalf)
  : new Float32Array(buf.buffer.slice(buf.byteOffset, buf.byteOffset + buf.byteLength));
const row = (id) => E.subarray(id * D.hiddenSize, (id + 1) * D.hiddenSize);
const i64 = (arr, dims) => new ort.Tensor('int64', BigInt64Array.from(arr.map(BigInt)), dims);
const f32 = (arr, dims) => new ort.Tensor('float32', Float32Array.from(arr), dims);
const fdec = (arr, dims) => (f16 ? new ort.Tensor('float16', Uint16Array.from(arr, toHalf), dims) : f32(arr, dims));
const read = (t) => (f16 ? Float32Array.from(t.data, fromHalf) : t.data);
const maxDiff = (a, b) => { let m = 0; for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i] - b[i])); return a.length === b.length ? m : Infinity; };
const argmax = (a) => { let b = 0; for (let i = 1; i < a.length; i++) if (a[i] > a[b]) b = i; return b; };

let encD = 0;
for (let i = 0; i < g.chunks.length; i++) {
  const ids = g.encoderInputIds[i];
  const r = await enc.run({ input_ids: i64(ids, [1, ids.length]), attention_mask: i64(ids.map(() => 1), [1, ids.length]) });
  encD = Math.max(encD, maxDiff(r.chunk_embeddings.data, g.chunkEmbeddings[i]));
}
const ra = await ada.run({ chunk_embeddings: f32(g.chunkEmbeddings.flat(), [g.chunks.length, man.adapter.inputWidth]) });
const adaD = maxDiff(ra.soft_tokens.data, g.softTokens.flat());
const embeds = [];
for (const id of g.prefixIds) embeds.push(...row(id));
embeds.push(...g.softTokens.flat()); // the golden soft tokens, so decoder error is measured alone
for (const id of g.suffixIds) embeds.push(...row(id));
const L = embeds.length / D.hiddenSize;
const past = {};
for (let l = 0; l < D.layers; l++) for (const kv of ['key', 'value']) past[`past_key_values.${l}.${kv}`] = fdec([], [1, D.kvHeads, 0, D.headSize]);
let r = await dec.run({ inputs_embeds: fdec(embeds, [1, L, D.hiddenSize]), attention_mask: i64(Array(L).fill(1), [1, L]), position_ids: i64([...Array(L).keys()], [1, L]), ...past });
let logits = read(r.logits);
const prefill = maxDiff(logits, g.prefillLogits);
let scale = 0;
for (const v of g.prefillLogits) scale = Math.max(scale, Math.abs(v));
const greedy = [];
let stepD = 0;
const n = Math.min(steps, g.greedyTokens.length);
for (let k = 0; k < n; k++) {
  // teacher-forced on the golden tokens so one near-tie cannot derail the comparison
  stepD = Math.max(stepD, maxDiff(logits, g.stepLogits[k]));
  greedy.push(argmax(logits));
  if (k === n - 1) break;
  const t = g.greedyTokens[k];
  const feeds = {};
  for (let l = 0; l < D.layers; l++) for (const kv of ['key', 'value']) feeds[`past_key_values.${l}.${kv}`] = r[`present.${l}.${kv}`];
  r = await dec.run({ inputs_embeds: fdec(row(t), [1, 1, D.hiddenSize]), attention_mask: i64(Array(L + k + 1).fill(1), [1, L + k + 1]), position_ids: i64([L + k], [1, 1]), ...feeds });
  logits = read(r.logits);
}
const gold = g.greedyTokens.slice(0, n);
console.log(JSON.stringify({ dtype: D.dtype, encoder: encD, adapter: adaD, prefill, steps: stepD, logitScale: scale, greedy, goldenGreedy: gold, greedyMatches: greedy.filter((t, i) => t === gold[i]).length }));
