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


def _tokenizer_model_ids():
    """The shipped tokenizer, the seeded model and a ChunkIds over them (torch imported only by the tests that need it)."""
    import os
    from training.e2llm.modules import build_model
    from training.e2llm.tokenizer import ByteLevelBPETokenizer
    from training.e2llm.train import ChunkIds
    root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    tok = ByteLevelBPETokenizer.from_file(os.path.join(root, "models", "e2llm-tiny", "tokenizer.json"))
    return tok, build_model(0), ChunkIds(tok, 256)


class BatchTest(unittest.TestCase):
    def test_labels_are_answer_tokens(self):
        import torch
        from training.e2llm.tokenizer import EOS_ID
        from training.e2llm.train import build_batch
        tok, model, ids = _tokenizer_model_ids()
        rng = random.Random(0)
        samples = [T.gen_niah_single(rng, DOCS, 2, 256), T.gen_reconstruct(rng, DOCS, 1, 128)]
        with torch.no_grad():
            X, A, Y, W, soft, emb, enc_ids = build_batch(model, ids, samples, torch.device("cpu"), 0.5)
        for i, s in enumerate(samples):
            want = tok.encode(s.answer) + [EOS_ID]
            self.assertEqual(Y[i][Y[i] >= 0].tolist(), want)
            self.assertTrue(torch.all(W[i][Y[i] >= 0] == (0.5 if s.template == "reconstruct" else 1.0)))
        self.assertEqual(soft.shape[0], sum(len(s.chunks) for s in samples))

    def test_bank_padding_puts_the_document_inside_the_haystack(self):
        import torch
        from training.e2llm.tokenizer import EOS_ID
        from training.e2llm.train import HaystackBank, bank_extras, build_batch, fill_bank
        tok, model, ids = _tokenizer_model_ids()
        rng = random.Random(3)
        bank = HaystackBank(128, model.cfg.encoder.hidden, torch.device("cpu"))
        with torch.no_grad():
            # plain haystack chunks fill the bank; chunks holding a needle never do
            fill_samples = [T.gen_reconstruct(rng, DOCS, 4, 128) for _ in range(40)]
            needle = T.gen_niah_single(random.Random(1), DOCS, 2, 128)
            X0, _, _, _, _, emb0, _ = build_batch(model, ids, fill_samples + [needle], torch.device("cpu"), 0.5)
            fill_bank(bank, fill_samples + [needle], emb0)
            plain = sum(len(s.chunks) for s in fill_samples)
            self.assertEqual(bank.count["prose"], plain)
            self.assertTrue(bank.ready("prose"))
            s = T.gen_niah_multikey(random.Random(5), DOCS, 2, 256)
            r = T.gen_reconstruct(random.Random(6), DOCS, 1, 128)  # not a haystack document: never padded
            extras = bank_extras(model, bank, [s, r], (40, 40), random.Random(7))
            self.assertIsNone(extras[1])
            k, pad = extras[0]
            self.assertEqual(pad.shape[0] + len(s.chunks), 40)
            X, A, Y, W, soft, _, _ = build_batch(model, ids, [s], torch.device("cpu"), 0.5, extras=[extras[0]])
        P = 1 + len(ids.encode(s.prompt()[0]))
        n = len(s.chunks)
        self.assertTrue(torch.allclose(X[0, P + k: P + k + n], soft[:n]))  # own chunks, in order, after k pads
        self.assertTrue(torch.allclose(X[0, P: P + k], pad[:k]))
        self.assertEqual(Y[0][Y[0] >= 0].tolist(), tok.encode(s.answer) + [EOS_ID])
        self.assertEqual(int(A[0].sum()), P + 40 + len(ids.encode(s.prompt()[1])) + len(tok.encode(s.answer)))

    def test_needle_probe_targets(self):
        import torch
        from training.e2llm.train import NEEDLE_VALUE, NeedleProbe
        texts = ["The sky is blue. One of the special magic numbers for calm-fox is: 8165449. Here we go.",
                 "One of the special magic uuids for odd-owl is: 0f1e2d3c-4b5a-6978-8796-a5b4c3d2e1f0.",
                 "No needle here.",
                 "One of the special magic numbers for a-b is: 1111111. One of the special magic numbers for c-d is: 2222222."]
        self.assertEqual([NEEDLE_VALUE.findall(t) for t in texts],
                         [["8165449"], ["0f1e2d3c-4b5a-6978-8796-a5b4c3d2e1f0"], [], ["1111111", "2222222"]])
        probe = NeedleProbe(8)
        torch.manual_seed(0)
        emb = torch.randn(4, 8)
        opt = torch.optim.Adam(probe.parameters(), lr=0.05)
        first = None
        for _ in range(200):  # 4 fixed vectors: the heads can memorise the digits of the two single-needle chunks
            loss, acc = probe.loss(emb, texts)
            first = float(loss) if first is None else first
            opt.zero_grad()
            loss.backward()
            opt.step()
        self.assertLess(float(loss), first / 10)
        self.assertEqual(acc, 1.0)  # over 7 digits + 32 hex digits: the 4th chunk (two needles) has no digit target


if __name__ == "__main__":
    unittest.main()


class DebianDocsCorpusTest(unittest.TestCase):
    def test_more_genres_disjoint_split_and_nothing_reserved(self):
        from training.e2llm.data import debian_docs

        files = debian_docs.doc_files()
        if not files:
            self.skipTest("no Debian documentation installed")
        self.assertFalse([p for _, p in files if "python" in p.lower() or "vim" in p.lower()])
        self.assertLessEqual({k for k, _ in files[:3]}, {"info", "man", "plain"})
        train, held = load_documents(sources=["debian-docs"], docs_max_bytes=600_000)
        self.assertTrue(train and held)
        self.assertFalse(set(train) & set(held))
        self.assertTrue(all(len(d) >= 400 and "\x1f" not in d and not d.startswith("File: ") for d in train + held))
        # the default is what the shipped model was trained on: the licences alone
        self.assertEqual(load_documents(max_bytes=200_000), load_documents(max_bytes=200_000, sources=["licences"]))
        with self.assertRaises(ValueError):
            load_documents(sources=["python-docs"])
