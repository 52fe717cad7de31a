import json
import os
import sys
import tempfile
import unittest

import numpy as np
import onnx

from training.e2llm import export as ex

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
PACKAGED = os.path.join(ROOT, "models", "e2llm-tiny")
SAMPLE = os.path.join(ROOT, "samples", "gpl-3.0.txt")


def _io(model_path):
    m = onnx.load(model_path)
    dims = lambda v: [d.dim_param or d.dim_value for d in v.type.tensor_type.shape.dim]
    return ({i.name: (i.type.tensor_type.elem_type, dims(i)) for i in m.graph.input},
            {o.name: (o.type.tensor_type.elem_type, dims(o)) for o in m.graph.output})


class ExportTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.TemporaryDirectory()
        cls.out = cls.tmp.name
        tok = os.path.join(PACKAGED, "tokenizer.json")
        cls.man = ex.export_package(cls.out, seed=0, tokenizer=tok if os.path.exists(tok) else None,
                                    sample=SAMPLE, check=True)  # check=True runs onnx.checker (full_check)

    @classmethod
    def tearDownClass(cls):
        cls.tmp.cleanup()

    def test_files_and_size(self):
        names = sorted(os.listdir(self.out))
        self.assertEqual(names, ["adapter.onnx", "decoder.onnx", "embed_tokens.bin", "encoder.onnx", "golden.json",
                                 "manifest.json", "tokenizer.json"])
        total = sum(os.path.getsize(os.path.join(self.out, n)) for n in names)
        self.assertLess(total, 30_000_000)
        self.assertEqual(os.path.getsize(os.path.join(self.out, "embed_tokens.bin")), 4096 * 256 * 4)

    def test_manifest(self):
        with open(os.path.join(self.out, "manifest.json")) as f:
            m = json.load(f)
        self.assertEqual(m["schemaVersion"], 1)
        self.assertEqual(set(m), {"schemaVersion", "name", "version", "encoder", "adapter", "decoder", "prompt", "golden", "languages"})
        self.assertEqual(m["encoder"], {"onnx": "encoder.onnx", "tokenizer": "tokenizer.json", "maxTokens": 256,
                                        "width": 128, "pooling": "pma", "clsTokenId": 3, "padTokenId": 0})
        self.assertEqual(m["adapter"], {"onnx": "adapter.onnx", "kind": "mlp", "inputWidth": 128, "outputWidth": 256})
        d = m["decoder"]
        self.assertEqual(d["embeddings"], {"file": "embed_tokens.bin", "dtype": "f32", "shape": [4096, 256]})
        self.assertEqual((d["hiddenSize"], d["layers"], d["heads"], d["kvHeads"], d["headSize"], d["vocabSize"],
                          d["window"], d["bosTokenId"], d["eosTokenIds"], d["padTokenId"], d["dtype"]),
                         (256, 4, 4, 2, 64, 4096, 4096, 1, [2], 0, "f32"))
        p = m["prompt"]
        self.assertEqual(set(p["templates"]), {"qa", "summarize", "reconstruct", "instruct"})
        for t in p["templates"].values():
            self.assertEqual(t.count(p["placeholder"]), 1)
        self.assertIn("{question}", p["templates"]["qa"])
        self.assertIn("{instruction}", p["templates"]["instruct"])
        self.assertEqual(p["chunking"], {"chunkChars": 512, "overlapChars": 0})

    def test_onnx_io_contract(self):
        F, I64 = onnx.TensorProto.FLOAT, onnx.TensorProto.INT64
        ins, outs = _io(os.path.join(self.out, "encoder.onnx"))
        self.assertEqual(ins, {"input_ids": (I64, ["batch", "tokens"]), "attention_mask": (I64, ["batch", "tokens"])})
        self.assertEqual(outs, {"chunk_embeddings": (F, ["batch", 128])})
        ins, outs = _io(os.path.join(self.out, "adapter.onnx"))
        self.assertEqual(ins, {"chunk_embeddings": (F, ["n", 128])})
        self.assertEqual(outs, {"soft_tokens": (F, ["n", 256])})
        ins, outs = _io(os.path.join(self.out, "decoder.onnx"))
        exp_in = {"inputs_embeds": (F, ["batch", "seq", 256]), "attention_mask": (I64, ["batch", "past_plus_seq"]),
                  "position_ids": (I64, ["batch", "seq"])}
        # the attention output (manifest decoder.attentionOutput): the last query's weights over every position
        exp_out = {"logits": (F, ["batch", 1, 4096]), "attention": (F, ["batch", "past_plus_seq"])}
        for i in range(4):
            for kv in ("key", "value"):
                exp_in[f"past_key_values.{i}.{kv}"] = (F, ["batch", 2, "past", 64])
                exp_out[f"present.{i}.{kv}"] = (F, ["batch", 2, "past_plus_seq", 64])
        self.assertEqual(ins, exp_in)
        self.assertEqual(outs, exp_out)

    def test_golden(self):
        with open(os.path.join(self.out, "golden.json")) as f:
            g = json.load(f)
        n = len(g["chunks"])
        self.assertTrue(3 <= n <= 5)
        self.assertTrue(all(400 <= len(c) <= 512 for c in g["chunks"]))
        self.assertTrue(all(ids[0] == 3 and len(ids) <= 256 for ids in g["encoderInputIds"]))
        self.assertEqual(np.array(g["chunkEmbeddings"]).shape, (n, 128))
        self.assertEqual(np.array(g["softTokens"]).shape, (n, 256))
        self.assertEqual(g["task"]["type"], "qa")
        self.assertEqual(g["prefixIds"][0], 1)
        self.assertEqual(len(g["prefillLogits"]), 4096)
        self.assertEqual(len(g["greedyTokens"]), 32)
        self.assertEqual(g["greedyTokens"], g["greedyTokensNoCache"])
        self.assertEqual(np.array(g["stepLogits"]).shape, (32, 4096))
        self.assertEqual(g["stepLogits"][0], g["prefillLogits"])
        self.assertEqual([int(np.argmax(l)) for l in g["stepLogits"]], g["greedyTokens"])

    def test_packaged_matches_fresh_export(self):
        """models/e2llm-tiny holds exactly what this code exports for seed 0 (no checkpoint)."""
        if not os.path.exists(os.path.join(PACKAGED, "manifest.json")):
            self.skipTest("no packaged model")
        with open(os.path.join(PACKAGED, "golden.json")) as f:
            packaged = json.load(f)
        with open(os.path.join(self.out, "golden.json")) as f:
            fresh = json.load(f)
        if packaged["greedyTokens"] != fresh["greedyTokens"]:
            self.skipTest("packaged model comes from a checkpoint")
        np.testing.assert_allclose(packaged["prefillLogits"], fresh["prefillLogits"], atol=1e-5)
        a = np.fromfile(os.path.join(PACKAGED, "embed_tokens.bin"), dtype="<f4")
        b = np.fromfile(os.path.join(self.out, "embed_tokens.bin"), dtype="<f4")
        np.testing.assert_array_equal(a, b)


class RelativePositionExportTest(unittest.TestCase):
    """The shipped encoder shape (RoPE, causal convolution, pre-LN, mean pooling) exports to the same contract, and
    onnxruntime-node runs it as PyTorch does (padded batches included)."""

    def test_export_and_node_parity(self):
        import shutil
        import subprocess
        import torch
        from training.e2llm.modules import E2LLMConfig, build_model
        cfg = E2LLMConfig.from_dict({"encoder": {"positions": "rope", "conv_kernel": 9, "pre_ln": True, "pooling": "mean",
                                                 "layers": 2}})
        with tempfile.TemporaryDirectory() as d:
            ck = os.path.join(d, "ck.pt")
            model = build_model(1, cfg)
            gen = torch.Generator().manual_seed(2)
            with torch.no_grad():  # distinct values everywhere, as in a trained model (LayerNorms start at 1 and 0)
                for p in model.parameters():
                    p.add_(0.01 * torch.randn(p.shape, generator=gen))
            torch.save({"config": cfg.to_dict(), "model": model.state_dict()}, ck)
            tok = os.path.join(PACKAGED, "tokenizer.json")
            man = ex.export_package(os.path.join(d, "pkg"), checkpoint=ck, tokenizer=tok if os.path.exists(tok) else None,
                                    sample=SAMPLE, check=True)
            self.assertEqual(man["encoder"]["pooling"], "mean")
            names = {i.name for i in onnx.load(os.path.join(d, "pkg", "encoder.onnx")).graph.initializer}
            self.assertFalse(any("pos" in n for n in names), names)
            self._rebuilds_checkpoint(d, cfg, model.state_dict())
            if shutil.which("node") is None or not os.path.isdir(os.path.join(ROOT, "node_modules", "onnxruntime-node")):
                self.skipTest("node / onnxruntime-node not installed: package not run")
            r = subprocess.run(["node", "training/scripts/check_onnx_parity.mjs", os.path.join(d, "pkg"), "1e-4"],
                               cwd=ROOT, capture_output=True, text=True, timeout=120)
            self.assertEqual(r.returncode, 0, r.stdout + r.stderr)

    def _rebuilds_checkpoint(self, d, cfg, want):
        """checkpoint_from_package.py gets every parameter back given the encoder's shape, and refuses the default
        shape (parameters it cannot match) instead of guessing."""
        import subprocess
        import torch
        script = os.path.join(ROOT, "training", "scripts", "checkpoint_from_package.py")
        out = os.path.join(d, "back.pt")
        enc = json.dumps(cfg.to_dict()["encoder"])
        r = subprocess.run([sys.executable, script, os.path.join(d, "pkg"), out, "--encoder", enc],
                           cwd=ROOT, capture_output=True, text=True, timeout=300)
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
        got = torch.load(out)["model"]
        self.assertEqual(set(got), set(want))
        for k, v in want.items():
            torch.testing.assert_close(got[k], v, rtol=0, atol=0, msg=k)
        r = subprocess.run([sys.executable, script, os.path.join(d, "pkg"), os.path.join(d, "wrong.pt")],
                           cwd=ROOT, capture_output=True, text=True, timeout=300)
        self.assertEqual(r.returncode, 1, r.stdout + r.stderr)
        self.assertIn("unmatched parameters", r.stderr)


if __name__ == "__main__":
    unittest.main()
