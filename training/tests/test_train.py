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


if __name__ == "__main__":
    unittest.main()
