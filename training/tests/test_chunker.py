"""Training cuts text exactly as serving does: chunk_text (through the Node chunk server) against the TypeScript
chunker run directly by Node, on thousands of random and adversarial texts. Any difference fails."""
import json
import os
import random
import subprocess
import unittest

from training.e2llm.chunker import BUILT, ROOT
from training.e2llm.export import chunk_text

FRAGMENTS = ["the", " The", "licence", " ", "  ", "\n", "\n\n", "\r\n", "\r", "\t", ".", ". ", "? ", "! ", "…", "。", "！",
             "\"", "')", "42", "3.14", "e\u0301", "a\u0308", "🙂", "👍🏽", "👨\u200d👩\u200d👧", "🇫🇷", "日本語", "中文文本",
             "한국어", "\u0e01\u0e34", "नमस्ते", "\u2028", "\u0085", "\u00a0", "\u200b", "x" * 700, "y" * 513,
             # a lone high surrogate (Python strings hold code points: two lone halves side by side would be one
             # character in JavaScript, a text no UTF-8 input can give)
             "\ud83d", "\U00020000", "Ünïcödé"]


def random_texts(n: int, seed: int = 7):
    rng = random.Random(seed)
    out = ["", " ", "a", "a\r\nb", "word " * 300, "\n" * 1000, "x" * 5000, "🙂" * 600, "e\u0301" * 400]
    while len(out) < n:
        out.append("".join(rng.choice(FRAGMENTS) for _ in range(rng.randint(1, 400))))
    return out


class ServingChunkerParity(unittest.TestCase):
    def test_chunk_text_is_the_typescript_chunker(self):
        texts = [t for t in random_texts(400) if t.strip() or t]
        settings = [(512, 0), (64, 0), (16, 4), (2, 0)]
        script = ("import { chunkText } from './libs/shared/dist/chunker.js';"
                  "let s='';process.stdin.on('data',d=>s+=d).on('end',()=>{const {texts,settings}=JSON.parse(s);"
                  "process.stdout.write(JSON.stringify(settings.map(([c,o])=>texts.map(t=>chunkText(t,{chunkChars:c,overlapChars:o}).map(x=>x.text)))));});")
        direct = json.loads(subprocess.run(["node", "--input-type=module", "-e", script], cwd=ROOT, check=True, text=True,
                                           encoding="utf-8", capture_output=True,
                                           input=json.dumps({"texts": texts, "settings": settings})).stdout)
        for (chunk_chars, overlap), expected in zip(settings, direct):
            for text, want in zip(texts, expected):
                got = chunk_text(text, chunk_chars, overlap)
                self.assertEqual(got, want, f"chunkChars {chunk_chars} overlap {overlap}: {text[:80]!r}")
                if overlap == 0:
                    self.assertEqual("".join(got), text)

    def test_bad_settings_are_the_chunkers_errors(self):
        with self.assertRaises(ValueError):
            chunk_text("text", 0)


if __name__ == "__main__":
    unittest.main()
