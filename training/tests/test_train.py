"""A few training steps run, checkpoint, resume, and lower the loss (CI-sized: about 5 s on one thread)."""
import csv
import os
import tempfile
import unittest

import torch

from training.e2llm import train as T
from training.tests.test_data import DOCS

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


class TrainSmokeTest(unittest.TestCase):
    def test_steps_lower_loss_and_resume(self):
        threads = torch.get_num_threads()
        with tempfile.TemporaryDirectory() as d:
            cfg = dict(T.DEFAULTS, name="smoke", run_dir=d, threads=1, lr=2e-3, warmup_steps=3, log_every=4,
                       max_steps=12, max_train_seconds=600, ckpt_every_s=1e9, _docs=DOCS, probe_weight=1.0,
                       stages=[{"until": 1.0, "chunk_chars": 64, "max_chunks": 1, "batch_size": 4,
                                "mix": {"niah_single": 1.0, "reconstruct": 1.0}}])
            try:
                res = T.train(cfg, fresh=True, quiet=True)
                self.assertEqual(res["step"], 12)
                self.assertTrue(os.path.exists(os.path.join(d, "ckpt.pt")))
                with open(os.path.join(d, "loss.csv")) as f:
                    rows = list(csv.DictReader(f))
                self.assertEqual([int(r["step"]) for r in rows], [4, 8, 12])
                self.assertLess(float(rows[-1]["loss"]), float(rows[0]["loss"]) - 0.5)
                cfg["max_steps"] = 14
                res2 = T.train(cfg, quiet=True)  # resumes from ckpt.pt
                self.assertEqual(res2["step"], 14)
                ck = torch.load(os.path.join(d, "ckpt.pt"), map_location="cpu")
                self.assertIn("probe", ck)
            finally:
                torch.set_num_threads(threads)

    def test_frozen_encoder_stage(self):
        """A stage with "train_encoder": false updates the adapter and decoder only, and a run initialised from a
        checkpoint that holds probe heads starts with them."""
        threads = torch.get_num_threads()
        with tempfile.TemporaryDirectory() as d:
            init = os.path.join(d, "init.pt")
            model = T.build_model(0)
            probe = T.NeedleProbe(model.cfg.encoder.hidden)
            torch.nn.init.constant_(probe.has.bias, 3.0)
            torch.save({"config": model.cfg.to_dict(), "model": model.state_dict(), "probe": probe.state_dict()}, init)
            cfg = dict(T.DEFAULTS, name="frozen", run_dir=d, init=init, threads=1, lr=2e-3, warmup_steps=1,
                       log_every=3, max_steps=3, max_train_seconds=600, ckpt_every_s=1e9, _docs=DOCS, probe_weight=1.0,
                       rescale_adapter=False,
                       stages=[{"until": 1.0, "chunk_chars": 64, "max_chunks": 1, "batch_size": 4, "train_encoder": False,
                                "mix": {"niah_single": 1.0, "reconstruct": 1.0}}])
            try:
                T.train(cfg, fresh=True, quiet=True)
                ck = torch.load(os.path.join(d, "ckpt.pt"), map_location="cpu")
                before = model.state_dict()
                for k, v in ck["model"].items():
                    if k.startswith("encoder."):
                        torch.testing.assert_close(v, before[k], atol=0, rtol=0, msg=k)
                self.assertFalse(torch.equal(ck["model"]["adapter.fc2.weight"], before["adapter.fc2.weight"]))
                self.assertEqual(float(ck["probe"]["has.bias"][0]), 3.0)  # carried over, not trained while frozen
            finally:
                torch.set_num_threads(threads)


class DeterminismTest(unittest.TestCase):
    def test_a_seeded_run_is_reproducible(self):
        """Two runs of one seeded config give bit-identical weights (while the learning rate follows the step: after
        warm-up it follows training seconds, which no two runs share), expansion and lookup samples included. This is
        the check that a re-cut of the training code changed nothing."""
        threads = torch.get_num_threads()
        weights = []
        try:
            for _ in range(2):
                with tempfile.TemporaryDirectory() as d:
                    cfg = dict(T.DEFAULTS, name="det", run_dir=d, threads=1, lr=2e-3, warmup_steps=10, log_every=2,
                               max_steps=3, max_train_seconds=600, ckpt_every_s=1e9, _docs=DOCS, probe_weight=1.0,
                               stages=[{"until": 1.0, "chunk_chars": 64, "max_chunks": 2, "batch_size": 3,
                                        "expand": {"p": 0.5, "raw_doc_p": 0.2},
                                        "mix": {"niah_single": 1.0, "reconstruct": 1.0, "lookup": 1.0}}])
                    T.train(cfg, fresh=True, quiet=True)
                    weights.append(torch.load(os.path.join(d, "ckpt.pt"), map_location="cpu")["model"])
        finally:
            torch.set_num_threads(threads)
        a, b = weights
        self.assertTrue(all(torch.equal(a[k], b[k]) for k in a))


class ConfigTest(unittest.TestCase):
    def test_every_shipped_config_loads(self):
        folder = os.path.join(ROOT, "training", "configs")
        for name in sorted(os.listdir(folder)):
            T.load_config(os.path.join(folder, name))

    def test_misspelt_keys_are_refused(self):
        base = dict(T.DEFAULTS)
        with self.assertRaisesRegex(ValueError, "unknown key 'learning_rate'"):
            T.check_config(dict(base, learning_rate=1e-3))
        bad_stage = [{"until": 1.0, "chunk_chars": 64, "max_chunks": 1, "batch_size": 2, "mix": {"niah_singel": 1.0},
                      "expand": {"p": 0.5, "rawdoc_p": 0.1}, "pad_chunk": [1, 2]}]
        with self.assertRaises(ValueError) as e:
            T.check_config(dict(base, stages=bad_stage))
        msg = str(e.exception)
        for part in ("unknown key 'pad_chunk'", "unknown task 'niah_singel'", "rawdoc_p"):
            self.assertIn(part, msg)


if __name__ == "__main__":
    unittest.main()
