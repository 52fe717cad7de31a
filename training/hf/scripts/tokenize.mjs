// Encode texts with @huggingface/tokenizers (the runtime's tokenizer) WITHOUT special tokens.
// Usage: node training/hf/scripts/tokenize.mjs tokenizer.json < {"texts": [...]} > {"ids": [[...], ...]}
import { Tokenizer } from '@huggingface/tokenizers';
import fs from 'node:fs';

const tok = new Tokenizer(JSON.parse(fs.readFileSync(process.argv[2], 'utf8')), {});
const { texts } = JSON.parse(fs.readFileSync(0, 'utf8'));
process.stdout.write(JSON.stringify({ ids: texts.map((t) => tok.encode(t, { add_special_tokens: false }).ids) }));
