// Cross-check: the Python encoder (training/e2llm/tokenizer.py) against @huggingface/tokenizers (JS)
// on a few hundred varied strings. Exits non-zero on any mismatch.
// Usage (repo root): node training/scripts/check_tokenizer_parity.mjs [models/e2llm-tiny/tokenizer.json] [N]
import { Tokenizer } from '@huggingface/tokenizers';
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';

const path = process.argv[2] ?? 'models/e2llm-tiny/tokenizer.json';
const nRandom = Number(process.argv[3] ?? 400);
const json = JSON.parse(fs.readFileSync(path, 'utf8'));
const tok = new Tokenizer(json, {});

const fixed = [
  'Hello  world!\n\nÅngström 42 🙂 日本',
  '', ' ', '  ', '\n', '\r\n', 'a\r\nb\r\n\r\nc', '\t\tindented\ttabs\t', 'trailing spaces   ',
  "It's don't we're I've I'm you'll he'd 'S 'quoted'", 'CAPS lower MiXeD', '3.14159 1,000,000 2024-05-01 0x1F',
  'e-mail: foo.bar@example.com; url: https://www.gnu.org/licenses/', '(a) [b] {c} <d> "e" `f` ~g^ |h| \\i/',
  '🙂🙃👍🏽👨‍👩‍👧 emoji sequences', '日本語のテキスト、中文文本。한국어 텍스트', 'Ünïcödé naïve café résumé Straße ØÆÅ',
  'e\u0301 combining a\u0308', 'non\u00a0breaking\u2003em\u3000ideographic', 'zero\u200bwidth\ufeffbom',
  'ctrl\u0000nul\u0007bell\u001besc\u007fdel\u0085nel', '<bos>special<eos> <cls>x<pad> <bos <eos>> <<cls>>',
  'GNU GENERAL PUBLIC LICENSE\n                       Version 3, 29 June 2007\n',
  '    1. Source Code.\n\n  The "source code" for a work means...', '    \n\n   \n', 'x' .repeat(300), ' '.repeat(50) + 'y',
  'αβγ δέζ Привет мир שלום مرحبا नमस्ते', 'math: ∑∫√∞ ≤ ≥ ≠ ± × ÷ → ⇒', '\ud83d\ude42\ud83d', 'a\u{10FFFF}b\u{1F600}',
  "''''' ''s ' s 'll'", '1st 2nd 3rd 4th 100%', '$5.00 €10 £3 ¥500', '...!!!???---___===+++', 'end.',
];

// Deterministic pseudo-random strings from varied fragments.
let seed = 12345;
const rnd = () => ((seed = (seed * 1103515245 + 12345) % 2147483648) / 2147483648);
const frags = ['the', ' The', 'licen', 'se', ' ', '  ', '\n', '\n\n', '\r\n', '\t', '0', '7', '42', '1999', '.', ',', ';', ':',
  '!', '?', '(', ')', '"', "'", "'s", "'ll", '-', '--', '/', '\\', '@', '#', '<', '>', '<bos>', '<eos>', '<cls>', '<pad>',
  'é', 'Å', 'ß', 'ö', '日', '本', '語', '🙂', '👍🏽', '\u00a0', '\u3000', '\u200b', '\u0000', '\u0007', '\u001f', '\u007f',
  'Copyright', ' (C)', ' Free Software Foundation', ' Inc.', 'https://', 'www', '_', '*', '**', '&', '%', '$', 'α', 'Ж'];
const randoms = [];
for (let i = 0; i < nRandom; i++) {
  const n = 1 + Math.floor(rnd() * 40);
  let s = '';
  for (let k = 0; k < n; k++) s += frags[Math.floor(rnd() * frags.length)];
  randoms.push(s);
}
// Real text slices from the sample documents.
const realTexts = [];
for (const f of fs.existsSync('samples') ? fs.readdirSync('samples') : []) {
  if (!f.endsWith('.txt')) continue;
  const t = fs.readFileSync(`samples/${f}`, 'utf8');
  for (let i = 0; i < 50; i++) {
    const a = Math.floor(rnd() * t.length);
    realTexts.push(t.slice(a, a + Math.floor(rnd() * 600)));
  }
  realTexts.push(t);
}
const texts = [...fixed, ...randoms, ...realTexts];

const py = JSON.parse(execFileSync('/usr/bin/python3', ['-m', 'training.scripts.encode_json'], {
  input: JSON.stringify({ tokenizer: path, texts }), maxBuffer: 1 << 28,
  env: { ...process.env, OPENBLAS_NUM_THREADS: '2', OMP_NUM_THREADS: '2' },
}).toString());

let bad = 0;
for (let i = 0; i < texts.length; i++) {
  const js = tok.encode(texts[i], { add_special_tokens: false }).ids;
  const p = py.ids[i];
  const same = js.length === p.length && js.every((v, k) => v === p[k]);
  let decOk = true;
  if (js.length > 0) {
    const jd = tok.decode(js, { clean_up_tokenization_spaces: false });
    decOk = jd === py.decoded[i];
    if (!decOk && bad < 10) console.error(`decode mismatch #${i}: ${JSON.stringify(jd)} vs ${JSON.stringify(py.decoded[i])}`);
  }
  if (!same || !decOk) {
    bad++;
    if (bad <= 10) console.error(`MISMATCH #${i} ${JSON.stringify(texts[i]).slice(0, 200)}\n js=${JSON.stringify(js).slice(0, 300)}\n py=${JSON.stringify(p).slice(0, 300)}`);
  }
}
const sample = tok.encode(fixed[0], { add_special_tokens: false }).ids;
console.log(`example ${JSON.stringify(fixed[0])} -> ${JSON.stringify(sample)}`);
console.log(`${texts.length - bad}/${texts.length} strings identical (ids and decode)`);
process.exit(bad ? 1 : 0);
