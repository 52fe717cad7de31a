"""The selective-expansion recipe: which chunks a sample gives the decoder raw, and the batch layout it makes."""
import random
import unittest

import torch

from training.e2llm import train as TR
from training.e2llm.data import expansion as X
from training.e2llm.data import tasks as T
from training.tests.test_data import DOCS


class ChooseExpansionTest(unittest.TestCase):
    CHUNKS = ["plain text a.", "the needle 1234567 here.", "plain text b.", "a distractor 7654321.", "plain text c."]

    def test_evidence_chunks_always_and_extras_prefer_distractors(self):
        pol = X.policy({"p": 1.0, "max_extra": 1, "miss_p": 0.0})
        rng = random.Random(0)
        for _ in range(50):
            got = X.choose_expansion(rng, self.CHUNKS, "niah_single", ["1234567"], ["a distractor 7654321."], pol)
            self.assertIn(1, got)
            self.assertLessEqual(len(got), 2)
            if len(got) == 2:
                self.assertEqual(got, [1, 3])  # the one extra is the distractor's chunk, what BM25 ranks next

    def test_off_raw_documents_and_non_evidence_tasks(self):
        rng = random.Random(1)
        self.assertEqual(X.choose_expansion(rng, self.CHUNKS, "niah_single", ["1234567"], [], X.policy({})), [])
        raw = X.policy({"raw_doc_p": 1.0, "raw_doc_max_chunks": 5})
        self.assertEqual(X.choose_expansion(rng, self.CHUNKS, "cwe", [], [], raw), [0, 1, 2, 3, 4])
        small = X.policy({"raw_doc_p": 1.0, "raw_doc_max_chunks": 4, "p": 0.0})
        self.assertEqual(X.choose_expansion(rng, self.CHUNKS, "cwe", [], [], small), [])

    def test_unknown_setting_refused(self):
        with self.assertRaisesRegex(ValueError, "raw_doc"):
            X.policy({"raw_docs_p": 0.1})


class ExpandedSamplesTest(unittest.TestCase):
    def test_distractors_and_dense_needles_only_with_expansion(self):
        rng = random.Random(3)
        pol = {"p": 1.0, "distract_p": 1.0}
        for _ in range(20):
            s = T.sample_task(rng, DOCS, {"niah_single": 1.0, "niah_multikey": 1.0}, 4, 256, None, pol)
            value = s.answer.strip()
            self.assertTrue(s.distractors)
            self.assertTrue(all(value not in d for d in s.distractors))
            self.assertTrue(any(value in s.chunks[i] for i in s.expand))
        # without a policy the stream is the old one: no distractors, nothing expanded
        s = T.sample_task(random.Random(3), DOCS, {"niah_single": 1.0}, 4, 256)
        self.assertEqual((s.expand, s.distractors), ([], []))

    def test_lookup_restates_a_sentence_of_an_expanded_chunk(self):
        rng = random.Random(4)
        for _ in range(10):
            s = T.sample_task(rng, DOCS, {"lookup": 1.0}, 4, 256, None, {"p": 0.5})
            if s.task != "lookup":
                continue
            sent = s.answer.strip()
            self.assertTrue(any(sent in s.chunks[i] for i in s.expand))
            self.assertTrue(s.fields["question"].endswith("?"))

    def test_batch_puts_raw_tokens_in_place(self):
        model = TR.build_model(0)
        tok = TR.ByteLevelBPETokenizer.from_file("models/e2llm-tiny/tokenizer.json")
        ids = TR.ChunkIds(tok, model.cfg.encoder.max_tokens)
        s = T.Sample("niah_single", "qa", ["first chunk.", "second chunk here.", "third."], " 1", {"question": "q?"})
        X0 = TR.build_batch(model, ids, [s], "cpu", 1.0)[0]
        s.expand = [1]
        X1, _, Y1, _, soft, _, _ = TR.build_batch(model, ids, [s], "cpu", 1.0)
        raw = ids.encode(s.chunks[1])
        self.assertEqual(X1.shape[1], X0.shape[1] + len(raw) - 1)
        P = 1 + len(ids.encode(s.prompt()[0]))
        E = model.decoder.embed_tokens.weight
        torch.testing.assert_close(X1[0, P], soft[0])
        torch.testing.assert_close(X1[0, P + 1: P + 1 + len(raw)], E[torch.tensor(raw)])
        torch.testing.assert_close(X1[0, P + 1 + len(raw)], soft[2])
        self.assertEqual(int((Y1 >= 0).sum()), 2)  # the answer and EOS, after the longer context


if __name__ == "__main__":
    unittest.main()
