import json
import os
import unittest

from training.e2llm.tokenizer import (
    BYTE_DECODER, BYTE_ENCODER, SPECIAL_TOKENS, VOCAB_SIZE, ByteLevelBPETokenizer, split_isolated, tokenizer_json,
    train_bpe,
)

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
PACKAGED = os.path.join(ROOT, "models", "e2llm-tiny", "tokenizer.json")

SAMPLES = [
    "Hello  world!\n\nÅngström 42 🙂 日本",
    "", " ", "\r\n", "a\r\nb\r\n\r\nc", "\ttabs\t and   spaces   ",
    "It's don't we're I've I'm you'll he'd",
    "3.14159 1,000,000 2024-05-01 0x1F",
    "e-mail: foo.bar@example.com; https://www.gnu.org/licenses/",
    "🙂🙃👍🏽👨‍👩‍👧", "日本語のテキスト、中文文本。한국어", "naïve café Straße e\u0301",
    "ctrl\x00nul\x07bell\x1besc\x7fdel\x85nel\u00a0nbsp\u200bzw\ufeffbom",
    "x" * 300,
]


def small_tokenizer() -> ByteLevelBPETokenizer:
    texts = ["the licence, the license; the licensee's rights. 1234 5678\n" * 5, "Ångström 日本 🙂 " * 3]
    vocab, merges = train_bpe(texts, vocab_size=300)
    return ByteLevelBPETokenizer(tokenizer_json(vocab, merges))


class TokenizerTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.tok = ByteLevelBPETokenizer.from_file(PACKAGED) if os.path.exists(PACKAGED) else small_tokenizer()

    def test_bytes_to_unicode_is_bijective(self):
        self.assertEqual(len(BYTE_ENCODER), 256)
        self.assertEqual(len(set(BYTE_ENCODER.values())), 256)
        self.assertEqual(BYTE_ENCODER[ord(" ")], "Ġ")
        self.assertEqual({BYTE_DECODER[c] for c in BYTE_ENCODER.values()}, set(range(256)))

    def test_split_keeps_everything(self):
        for s in SAMPLES:
            self.assertEqual("".join(split_isolated(s)), s)
        self.assertEqual(split_isolated("Hello  world!\n\nA 42"), ["Hello", " ", " world", "!", "\n\n", "A", " 4", "2"])

    def test_round_trip(self):
        for s in SAMPLES:
            ids = self.tok.encode(s)
            self.assertTrue(all(0 <= i < self.tok.vocab_size for i in ids))
            self.assertEqual(self.tok.decode(ids), s)

    def test_specials(self):
        for i, t in enumerate(SPECIAL_TOKENS):
            self.assertEqual(self.tok.encode(t), [i])
        self.assertEqual(self.tok.encode("a<eos>b")[1:-1], [2])
        self.assertEqual(self.tok.decode([1, *self.tok.encode("hi"), 2], skip_special_tokens=True), "hi")

    def test_small_training_is_deterministic(self):
        a, b = small_tokenizer(), small_tokenizer()
        self.assertEqual(a.ranks, b.ranks)
        self.assertEqual(a.vocab_size, 300)
        s = "the licensee's licence 1234"
        self.assertEqual(a.decode(a.encode(s)), s)
        self.assertLess(len(a.encode(s)), len(s.encode("utf-8")))

    @unittest.skipUnless(os.path.exists(PACKAGED), "no packaged tokenizer")
    def test_packaged_tokenizer_shape(self):
        with open(PACKAGED, encoding="utf-8") as f:
            j = json.load(f)
        self.assertEqual(j["model"]["type"], "BPE")
        self.assertEqual(len(j["model"]["vocab"]), VOCAB_SIZE)
        self.assertEqual(sorted(j["model"]["vocab"].values()), list(range(VOCAB_SIZE)))
        self.assertIsNone(j["normalizer"])
        self.assertIsNone(j["post_processor"])
        self.assertEqual([t["content"] for t in j["added_tokens"]], SPECIAL_TOKENS)
        self.assertTrue(all(t["special"] for t in j["added_tokens"]))
        split, bl = j["pre_tokenizer"]["pretokenizers"]
        self.assertEqual((split["type"], split["behavior"], split["invert"]), ("Split", "Isolated", False))
        self.assertEqual((bl["type"], bl["add_prefix_space"], bl["use_regex"]), ("ByteLevel", False, False))
        self.assertEqual(j["decoder"]["type"], "ByteLevel")


if __name__ == "__main__":
    unittest.main()
