// Benchmark documents: real, offline text (the sample, Debian's licence texts, package copyright files), with
// repeated paragraphs dropped so that no two chunks are alike (the pipeline would otherwise serve repeats from its
// soft-prompt cache), cut to an exact size in decoder tokens.
import { createHash } from 'node:crypto';
import { existsSync, lstatSync, readFileSync, readdirSync } from 'node:fs';
import { join } from 'node:path';

function sources(root) {
  const files = [join(root, 'samples/gpl-3.0.txt')];
  const lic = '/usr/share/common-licenses';
  if (existsSync(lic)) {
    for (const f of readdirSync(lic).sort()) if (!lstatSync(join(lic, f)).isSymbolicLink()) files.push(join(lic, f));
  }
  const doc = '/usr/share/doc';
  if (existsSync(doc)) {
    for (const d of readdirSync(doc).sort()) {
      const f = join(doc, d, 'copyright');
      if (existsSync(f) && !lstatSync(f).isSymbolicLink()) files.push(f);
    }
  }
  return files;
}

/** About `minChars` of distinct paragraphs, in a fixed order. */
export function buildCorpus(root, minChars) {
  const seen = new Set();
  const parts = [];
  let size = 0;
  for (const file of sources(root)) {
    let text;
    try {
      text = readFileSync(file, 'utf8');
    } catch {
      continue;
    }
    for (const para of text.replace(/\r\n/g, '\n').split(/\n\s*\n/)) {
      const p = para.trim();
      if (p.length < 40) continue;
      const h = createHash('sha1').update(p.replace(/\s+/g, ' ').toLowerCase()).digest('hex');
      if (seen.has(h)) continue;
      seen.add(h);
      parts.push(p);
      size += p.length + 2;
    }
    if (size >= minChars) break;
  }
  if (size < minChars) throw new Error(`only ${size} characters of distinct offline text found; ${minChars} needed`);
  return parts.join('\n\n');
}

/** The longest prefix of `corpus` with at most `tokens` decoder tokens (within 0.2%). */
export function cutToTokens(corpus, tokens, tokenizer) {
  let len = Math.min(corpus.length, Math.round(tokens * 3.8));
  let count = tokenizer.encode(corpus.slice(0, len)).length;
  for (let i = 0; i < 8 && Math.abs(count - tokens) > tokens * 0.002; i++) {
    len = Math.min(corpus.length, Math.max(1, Math.round(len * (tokens / count))));
    count = tokenizer.encode(corpus.slice(0, len)).length;
  }
  if (count > tokens * 1.002 || count < tokens * 0.998) throw new Error(`could not size a document to ${tokens} tokens (got ${count})`);
  return { text: corpus.slice(0, len), tokens: count };
}
