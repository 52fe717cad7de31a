// One measurement in a fresh process (so peak memory is this case's alone). Usage: node bench/child.mjs KIND JSON.
// Prints one JSON line on stdout. Reaches into the runtime's private members (decoder.forward & co.) only to build
// the full-context baseline and the raw-onnxruntime reference; the E2LLM path is the public API.
import { readFileSync } from 'node:fs';
import * as ort from 'onnxruntime-node';
import { E2llmModel } from '@lib/model-runtime';
import { ENCODER_BATCH_COST_TOKENS, GenerationParams, loadConfig, planPaddedBatches } from '@lib/shared';

const [kind, argJson] = process.argv.slice(2);
const args = JSON.parse(argJson ?? '{}');
const config = loadConfig(process.env);
const mib = () => process.resourceUsage().maxRSS / 1024;
const task = { type: 'qa', question: 'Which version of the licence may you choose?' };
const firstToken = GenerationParams.parse({ maxNewTokens: 1 });
const median = (xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];

function argmax(a) {
  let best = 0;
  for (let i = 1; i < a.length; i++) if (a[i] > a[best]) best = i;
  return best;
}

const kinds = {
  /** E2LLM time to first token: chunk, encode, adapter, prefill, first token. */
  async e2llm() {
    const text = readFileSync(args.doc, 'utf8');
    const model = await E2llmModel.load(config);
    const loadedMiB = mib();
    await model.ask(text.slice(0, 4000), task, firstToken);
    const runs = [];
    for (let i = 0; i < args.reps; i++) runs.push(await model.ask(text, task, firstToken));
    const best = runs.reduce((a, r) => (r.timings.totalMs < a.timings.totalMs ? r : a));
    return { ttftMs: median(runs.map((r) => r.timings.totalMs)), timings: best.timings, usage: best.usage, loadedMiB, peakMiB: mib() };
  },

  /**
   * Full context: the same decoder reading the document's own tokens. Prefill runs in blocks over the KV cache
   * (chunked prefill), which gives logits identical to one pass (checked below) with far less memory: the strongest
   * baseline this decoder allows. The window check is the only thing bypassed.
   */
  async full() {
    const text = readFileSync(args.doc, 'utf8');
    const model = await E2llmModel.load(config, { decoder: true });
    const dec = model.decoder;
    const d = model.pkg.manifest.decoder.hiddenSize;
    const loadedMiB = mib();
    const prefill = async (ids) => {
      const emb = dec.embed(ids);
      let past = dec.emptyPast();
      let out;
      for (let s = 0; s < ids.length; s += args.block) {
        const n = Math.min(args.block, ids.length - s);
        out = await dec.forward(emb.subarray(s * d, (s + n) * d), n, s, past);
        past = dec.presentAsPast(out);
      }
      return dec.logitsOf(out);
    };
    const ask = async (doc) => {
      const t0 = performance.now();
      const p = model.promptIds(task);
      const ids = [...p.prefixIds, ...dec.tokenizer.encode(doc), ...p.suffixIds];
      const token = argmax(await prefill(ids));
      return { ms: performance.now() - t0, promptTokens: ids.length, token };
    };
    // Parity of the chunked prefill with one pass, on a short prefix.
    const p = model.promptIds(task);
    const shortIds = [...p.prefixIds, ...dec.tokenizer.encode(text.slice(0, 6000)), ...p.suffixIds];
    const one = dec.logitsOf(await dec.forward(dec.embed(shortIds), shortIds.length, 0, dec.emptyPast()));
    const blocked = await prefill(shortIds);
    let parity = 0;
    for (let i = 0; i < one.length; i++) parity = Math.max(parity, Math.abs(one[i] - blocked[i]));
    const runs = [];
    for (let i = 0; i < args.reps; i++) runs.push(await ask(text));
    return { ttftMs: median(runs.map((r) => r.ms)), promptTokens: runs[0].promptTokens, parityMaxAbs: parity, loadedMiB, peakMiB: mib() };
  },

  /** Encoder throughput per batching setting: the runtime's encode() against session.run on the same batches. */
  async encoder() {
    const text = readFileSync(args.doc, 'utf8');
    const model = await E2llmModel.load(config, { encoder: true });
    const enc = model.encoder;
    const spec = model.pkg.manifest.encoder;
    const chunkIds = model.chunk(text).map((c) => c.ids);
    const tokens = chunkIds.reduce((a, c) => a + c.length, 0);
    const results = [];
    for (const limits of args.settings) {
      enc.limits = limits;
      const batches = planPaddedBatches(chunkIds.map((c) => c.length), { ...limits, batchCostTokens: ENCODER_BATCH_COST_TOKENS });
      const feeds = batches.map((b) => {
        const rows = b.map((i) => chunkIds[i]);
        const longest = Math.max(...rows.map((r) => r.length));
        const ids = new BigInt64Array(rows.length * longest).fill(BigInt(spec.padTokenId));
        const mask = new BigInt64Array(rows.length * longest);
        rows.forEach((r, k) => r.forEach((id, t) => ((ids[k * longest + t] = BigInt(id)), (mask[k * longest + t] = 1n))));
        return { input_ids: new ort.Tensor('int64', ids, [rows.length, longest]), attention_mask: new ort.Tensor('int64', mask, [rows.length, longest]) };
      });
      const padded = feeds.reduce((a, f) => a + f.input_ids.size, 0);
      // Query-key pairs the attention layers compute (padded), for the FLOP count.
      const attnPairs = feeds.reduce((a, f) => a + f.input_ids.dims[0] * f.input_ids.dims[1] ** 2, 0);
      let workerMs = Infinity;
      let rawMs = Infinity;
      for (let rep = 0; rep < args.reps; rep++) {
        // Alternate so both see the same machine load.
        let t = performance.now();
        for (const f of feeds) await enc.session.run(f);
        rawMs = Math.min(rawMs, performance.now() - t);
        t = performance.now();
        await enc.encode(chunkIds);
        workerMs = Math.min(workerMs, performance.now() - t);
      }
      results.push({ ...limits, batches: batches.length, chunks: chunkIds.length, tokens, paddedTokens: padded, attnPairs, workerMs, rawMs });
    }
    return { results, peakMiB: mib() };
  },

  /** Decoder: prefill time per soft token, and time per generated token with the KV cache. */
  async decoder() {
    const text = readFileSync(args.doc, 'utf8');
    const model = await E2llmModel.load(config);
    const dec = model.decoder;
    const d = model.pkg.manifest.decoder.hiddenSize;
    const chunks = model.chunk(text);
    const soft = await model.adapter.run(await model.encoder.encode(chunks.map((c) => c.ids)), chunks.length);
    const p = model.promptIds(task);
    const prefill = [];
    for (const n of args.softCounts.filter((n) => n <= chunks.length).concat(chunks.length)) {
      const input = new Float32Array((p.prefixIds.length + n + p.suffixIds.length) * d);
      input.set(dec.embed(p.prefixIds), 0);
      input.set(soft.subarray(0, n * d), p.prefixIds.length * d);
      input.set(dec.embed(p.suffixIds), (p.prefixIds.length + n) * d);
      const len = input.length / d;
      const times = [];
      for (let i = 0; i < args.reps; i++) {
        const t = performance.now();
        await dec.forward(input, len, 0, dec.emptyPast());
        times.push(performance.now() - t);
      }
      prefill.push({ softTokens: n, positions: len, ms: median(times) });
    }
    // Generation: greedy steps over the KV cache after the whole document, as generate() runs them (EOS ignored so
    // an untrained model still makes every step).
    const all = new Float32Array((p.prefixIds.length + chunks.length + p.suffixIds.length) * d);
    all.set(dec.embed(p.prefixIds), 0);
    all.set(soft, p.prefixIds.length * d);
    all.set(dec.embed(p.suffixIds), (p.prefixIds.length + chunks.length) * d);
    const len = all.length / d;
    let out = await dec.forward(all, len, 0, dec.emptyPast());
    const t = performance.now();
    for (let i = 0; i < args.steps; i++) {
      const token = argmax(dec.logitsOf(out));
      out = await dec.forward(dec.embed([token]), 1, len + i, dec.presentAsPast(out));
    }
    const stepMs = (performance.now() - t) / args.steps;
    // And generate() itself, as the API and CLI call it.
    const gen = await dec.generate({ ...p, context: soft }, GenerationParams.parse({ maxNewTokens: args.steps }));
    return { prefill, steps: args.steps, contextPositions: len, stepMs, generate: { tokens: gen.tokens.length, decodeMs: gen.decodeMs, prefillMs: gen.prefillMs }, peakMiB: mib() };
  },

  /** onnxruntime's large-matmul rate with the runtime's session settings. */
  async matmul() {
    const opts = {
      executionProviders: [...config.executionProviders],
      graphOptimizationLevel: config.graphOptimization,
      ...(config.intraOpThreads > 0 ? { intraOpNumThreads: config.intraOpThreads } : {}),
    };
    const session = await ort.InferenceSession.create(args.onnx, opts);
    const { m, k, n } = args;
    const a = new Float32Array(m * k).map((_, i) => ((i * 7919) % 1000) / 1000 - 0.5);
    const feeds = { A: new ort.Tensor('float32', a, [m, k]) };
    await session.run(feeds);
    const times = [];
    for (let i = 0; i < args.reps; i++) {
      const t = performance.now();
      await session.run(feeds);
      times.push(performance.now() - t);
    }
    const ms = Math.min(...times);
    return { m, k, n, ms, flops: (2 * m * k * n) / (ms / 1000), peakMiB: mib() };
  },

  /** The in-process answer with the API's generation defaults (what the pipeline is compared with). */
  async ask() {
    const text = readFileSync(args.doc, 'utf8');
    const model = await E2llmModel.load(config);
    await model.ask(text.slice(0, 4000), task, firstToken);
    const params = GenerationParams.parse(args.generation);
    const runs = [];
    for (let i = 0; i < args.reps; i++) runs.push(await model.ask(text, args.task ?? task, params));
    return { totalMs: runs.map((r) => r.timings.totalMs), answer: runs[0].answer, timings: runs[0].timings, usage: runs[0].usage, peakMiB: mib() };
  },
};

const fn = kinds[kind];
if (!fn) throw new Error(`unknown kind ${kind}`);
const result = await fn();
process.stdout.write(`${JSON.stringify(result)}\n`);
process.exit(0);
