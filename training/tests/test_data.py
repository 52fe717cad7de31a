"""Fast checks of the training data generators and batch layout (< 10 s)."""
import random
import unittest

from training.e2llm.data import tasks as T
from training.e2llm.data.corpus import load_documents, sentences
from training.e2llm.export import TEMPLATES

DOCS = [
    "GNU GENERAL PUBLIC LICENSE\nVersion 3, 29 June 2007\n\nEveryone is permitted to copy and distribute verbatim "
    "copies of this license document. Changing it is not allowed. The licenses for most software are designed to "
    "take away your freedom to share and change it.\nBy contrast, the GNU General Public License is intended to "
    "guarantee your freedom to share and change all versions of a program.\n" * 6,
    "Permission is hereby granted, free of charge, to any person obtaining a copy of this software. The above "
    "copyright notice shall be included in all copies. THE SOFTWARE IS PROVIDED AS IS.\n" * 8,
]


class GeneratorTest(unittest.TestCase):
    def test_all_generators_shape(self):
        rng = random.Random(0)
        for name, gen in T.GENERATORS.items():
            for n_chunks, cc in ((1, 128), (3, 256), (4, 512)):
                s = gen(rng, DOCS, n_chunks, cc)
                self.assertIn(s.template, TEMPLATES, name)
                self.assertTrue(s.chunks and all(0 < len(c) <= cc for c in s.chunks), name)
                self.assertTrue(s.answer.strip(), name)
                prefix, suffix = s.prompt()
                self.assertNotIn("{", prefix + suffix)

    def test_needle_in_document_and_answer(self):
        rng = random.Random(1)
        for _ in range(20):
            s = T.gen_niah_single(rng, DOCS, 4, 512)
            text = "".join(s.chunks)
            value = s.answer.strip()
            key = s.fields["question"].split(" for ")[1].split(" mentioned")[0]
            self.assertRegex(value, r"^([0-9]{7}|[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12})$")
            self.assertIn(f"for {key} is: {value}.", text)
            self.assertIn("One of the special magic ", text)

    def test_multikey_multivalue_vt(self):
        rng = random.Random(2)
        s = T.gen_niah_multikey(rng, DOCS, 4, 512)
        self.assertGreaterEqual("".join(s.chunks).count("One of the special magic"), 2)
        self.assertIn(s.answer.strip(), "".join(s.chunks))
        s = T.gen_niah_multivalue(rng, DOCS, 4, 512)
        text = "".join(s.chunks)
        vals = s.answer.strip().split(", ")
        self.assertGreaterEqual(len(vals), 2)
        self.assertEqual(sorted(vals, key=text.index), vals)  # document order
        s = T.gen_vt(rng, DOCS, 4, 512)
        text = "".join(s.chunks)
        names = s.answer.split()
        value = s.fields["instruction"].split("value ")[1].split(" ")[0]
        self.assertIn(f"VAR {names[0]} = {value}.", text)
        for a, b in zip(names, names[1:]):
            self.assertIn(f"VAR {b} = VAR {a}.", text)

    def test_cwe_fwe_answers_are_the_most_frequent(self):
        rng = random.Random(3)
        for gen in (T.gen_cwe, T.gen_fwe):
            s = gen(rng, DOCS, 4, 512)
            words = [w for w in "".join(s.chunks).split() if w.isalpha()]
            counts = {w: words.count(w) for w in set(words)}
            top = s.answer.split()
            others = [c for w, c in counts.items() if w not in top]
            self.assertGreaterEqual(min(counts[w] for w in top), max(others), gen.__name__)

    def test_reconstruct_restates_window(self):
        rng = random.Random(4)
        s = T.gen_reconstruct(rng, DOCS, 3, 256)
        self.assertEqual(s.answer, "".join(s.chunks))
        self.assertEqual(s.template, "reconstruct")

    def test_seeded(self):
        a = [T.sample_task(random.Random(7), DOCS, {"niah_single": 1, "vt": 1}, 3, 256) for _ in range(3)]
        b = [T.sample_task(random.Random(7), DOCS, {"niah_single": 1, "vt": 1}, 3, 256) for _ in range(3)]
        self.assertEqual([(x.chunks, x.answer) for x in a], [(x.chunks, x.answer) for x in b])

    def test_insert_keeps_text(self):
        rng = random.Random(5)
        hay = DOCS[1]
        out = T.insert_sentences(rng, hay, ["XX one.", "YY two."])
        self.assertEqual(out.replace("XX one.", "").replace("YY two.", "").replace("  ", " ").replace("\n\n", "\n").replace(" \n", "\n").strip()[:100],
                         hay.strip()[:100])
        self.assertLess(out.index("XX one."), out.index("YY two."))
        self.assertEqual("".join(sentences(hay)), hay)

    def test_corpus_excludes_python_docs(self):
        from training.e2llm.tokenizer import corpus_files
        self.assertFalse(any("python" in p.lower() for p in corpus_files()))


class BatchTest(unittest.TestCase):
    def test_labels_are_answer_tokens(self):
        import torch
        from training.e2llm.modules import build_model
        from training.e2llm.tokenizer import EOS_ID, ByteLevelBPETokenizer
        from training.e2llm.train import ChunkIds, build_batch
        import os
        root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
        tok = ByteLevelBPETokenizer.from_file(os.path.join(root, "models", "e2llm-tiny", "tokenizer.json"))
        model = build_model(0)
        ids = ChunkIds(tok, 256)
        rng = random.Random(0)
        samples = [T.gen_niah_single(rng, DOCS, 2, 256), T.gen_reconstruct(rng, DOCS, 1, 128)]
        with torch.no_grad():
            X, A, Y, W, soft, emb, enc_ids = build_batch(model, ids, samples, torch.device("cpu"), 0.5)
        for i, s in enumerate(samples):
            want = tok.encode(s.answer) + [EOS_ID]
            self.assertEqual(Y[i][Y[i] >= 0].tolist(), want)
            self.assertTrue(torch.all(W[i][Y[i] >= 0] == (0.5 if s.template == "reconstruct" else 1.0)))
        self.assertEqual(soft.shape[0], sum(len(s.chunks) for s in samples))


if __name__ == "__main__":
    unittest.main()
