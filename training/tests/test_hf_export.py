"""Export tiny Hugging Face-layout checkpoints with training.export_hf and run the packages with onnxruntime-node
(golden parity) and the e2llm CLI. Node-dependent checks skip with a message when node_modules is absent."""
import contextlib
import io
import json
import os
import shutil
import subprocess
import sys
import tempfile
import unittest
from unittest import mock

import onnx
import torch

from training.hf import export as hx
from training.hf import finetune, models, onnx_f16, testing
from training.hf.safetensors import save_file

ROOT = testing.ROOT
HAVE_NODE = shutil.which("node") is not None and os.path.isdir(os.path.join(ROOT, "node_modules", "onnxruntime-node"))
HAVE_CLI = os.path.isdir(os.path.join(ROOT, "apps", "cli", "dist"))
torch.set_num_threads(1)


def node(*args):
    r = subprocess.run(["node", *args], cwd=ROOT, capture_output=True, text=True, timeout=120)
    return r


class HFExportTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.TemporaryDirectory()
        t = cls.tmp.name
        cls.gte = testing.write_gte(os.path.join(t, "gte"))
        cls.bert = testing.write_bert(os.path.join(t, "bert"), prefix="bert.", pooling="mean")
        tok = os.path.join(cls.bert, "tokenizer.json")  # same vocabulary, different bytes: packaged separately
        with open(tok) as f:
            j = json.load(f)
        with open(tok, "w") as f:
            json.dump(j, f, indent=2)
        cls.llama = testing.write_decoder(os.path.join(t, "llama"), testing.llama_config(), shard_bytes=150_000, dtype="BF16")
        cls.qwen = testing.write_decoder(os.path.join(t, "qwen2"), testing.qwen2_config())
        cls.dec_lora = testing.write_lora(os.path.join(t, "llama-lora"), models.load_decoder(cls.llama),
                                          ["q_proj", "k_proj", "v_proj", "o_proj"])
        cls.enc_lora = testing.write_lora(os.path.join(t, "gte-lora"), models.load_encoder(cls.gte).backbone,
                                          ["qkv_proj"], task_type="FEATURE_EXTRACTION")

    @classmethod
    def tearDownClass(cls):
        cls.tmp.cleanup()

    def export(self, name, **kw):
        out = os.path.join(self.tmp.name, name)
        err = io.StringIO()
        with contextlib.redirect_stderr(err):
            man = hx.export_hf(out=out, log=lambda *a: None, **kw)
        return out, man, err.getvalue()

    def run_package(self, out, tol_rel):
        if not HAVE_NODE:
            self.skipTest("node / onnxruntime-node not installed: package not run")
        r = node("training/hf/scripts/check_package.mjs", out, "4")
        self.assertEqual(r.returncode, 0, r.stderr)
        res = json.loads(r.stdout)
        self.assertLess(res["encoder"], 1e-3 if res["dtype"] == "f32" else 1e-2, res)
        self.assertLess(res["adapter"], 1e-4, res)
        self.assertLess(res["prefill"], tol_rel * max(1.0, res["logitScale"]), res)
        self.assertLess(res["steps"], tol_rel * max(1.0, res["logitScale"]), res)
        return res

    def ask(self, out):
        if not (HAVE_NODE and HAVE_CLI):
            print("\n[skip] apps/cli/dist missing: `e2llm ask --model` not run (build the CLI first)", file=sys.stderr)
            return None
        r = node("apps/cli/bin/e2llm.js", "ask", "samples/gpl-3.0.txt", "-q", "test", "--model", out,
                 "--max-new-tokens", "4", "--json")
        self.assertEqual(r.returncode, 0, r.stderr + r.stdout)
        res = json.loads(r.stdout)
        self.assertIsInstance(res["answer"], str)
        self.assertIn(res["finishReason"], ("length", "eos", "stop"))
        self.assertLessEqual(res["usage"]["generatedTokens"], 4)
        self.assertGreater(res["usage"]["softTokens"], 10)
        return res

    def test_gte_llama_lora_f32(self):
        out, man, err = self.export("pkg-f32", encoder=self.gte, decoder=self.llama, loras=[self.dec_lora, self.enc_lora])
        self.assertIn(hx.FRESH_ADAPTER_WARNING, err)
        self.assertEqual(sorted(n for n in os.listdir(out) if not n.startswith(".")),
                         ["adapter.onnx", "decoder.onnx", "embed_tokens.bin", "encoder.onnx", "golden.json",
                          "manifest.json", "tokenizer.json"])
        d = man["decoder"]
        self.assertEqual((d["hiddenSize"], d["layers"], d["heads"], d["kvHeads"], d["headSize"], d["vocabSize"], d["dtype"],
                          d["bosTokenId"], d["eosTokenIds"], d["padTokenId"], d["window"]),
                         (64, 2, 4, 2, 16, 4096, "f32", 1, [2], 0, 4096))
        self.assertEqual(man["encoder"]["pooling"], "cls")
        self.assertEqual(man["encoder"]["clsTokenId"], 3)
        self.assertEqual(os.path.getsize(os.path.join(out, "embed_tokens.bin")), 4096 * 64 * 4)
        if HAVE_NODE:  # the repository's parity check (tokenizer ids, 32 cached steps, left-padded batches)
            r = node("training/scripts/check_onnx_parity.mjs", out, "1e-4")
            self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
        self.run_package(out, 1e-5)
        self.ask(out)

    def test_bert_qwen2_f16(self):
        out, man, _ = self.export("pkg-f16", encoder=self.bert, decoder=self.qwen, dtype="f16", golden_steps=4)
        self.assertEqual(man["decoder"]["dtype"], "f16")
        self.assertEqual(man["decoder"]["embeddings"]["dtype"], "f16")
        self.assertIsNone(man["decoder"]["bosTokenId"])  # qwen2 takes no BOS
        self.assertEqual(man["encoder"]["pooling"], "mean")  # from 1_Pooling/config.json
        self.assertEqual(man["encoder"]["maxTokens"], 128)
        self.assertEqual((man["encoder"]["tokenizer"], man["decoder"]["tokenizer"]), ("encoder-tokenizer.json", "tokenizer.json"))
        self.assertTrue(os.path.exists(os.path.join(out, "encoder-tokenizer.json")))
        self.assertEqual(os.path.getsize(os.path.join(out, "embed_tokens.bin")), 4096 * 64 * 2)
        m = onnx.load(os.path.join(out, "decoder.onnx"))
        F16, F32 = onnx.TensorProto.FLOAT16, onnx.TensorProto.FLOAT
        io_types = {v.name: v.type.tensor_type.elem_type for v in list(m.graph.input) + list(m.graph.output)}
        self.assertEqual(io_types["inputs_embeds"], F16)
        self.assertEqual(io_types["logits"], F16)
        self.assertEqual(io_types["present.0.key"], F16)
        self.assertTrue(all(i.data_type != F32 for i in m.graph.initializer))
        e = onnx.load(os.path.join(out, "encoder.onnx"))
        self.assertEqual([v.type.tensor_type.elem_type for v in e.graph.output], [F32])  # contract: f32 chunk embeddings
        self.run_package(out, 2e-2)
        self.ask(out)

    def test_pma_adapter_external_data_and_cli_entry(self):
        # an adapter file with PMA weights (paper v2), and graphs forced into external data (the > 2 GB path)
        enc = models.load_encoder(self.gte)
        ada = models.build_adapter(64, 64, None, seed=5)
        from training.e2llm.modules import PMA  # the project's own PMA: adapter files are interchangeable
        pma = PMA(64, 4, 128, 1e-12)
        torch.nn.init.normal_(pma.query, 0, 0.5)
        state = {**ada.state_dict(), **{"pma." + k: v for k, v in pma.state_dict().items()}}
        afile = os.path.join(self.tmp.name, "adapter.safetensors")
        save_file(state, afile)
        with mock.patch.object(onnx_f16, "TWO_GB", 10_000):
            out, man, err = self.export("pkg-pma", encoder=self.gte, decoder=self.qwen, adapter=afile, golden_steps=4)
        self.assertNotIn("freshly", err)
        self.assertEqual((man["encoder"]["pooling"], man["adapter"]["kind"]), ("pma", "pma"))
        for n in ("encoder", "decoder"):
            self.assertTrue(os.path.exists(os.path.join(out, f"{n}.onnx.data")), n)
        self.run_package(out, 1e-5)
        self.ask(out)
        # the documented command line
        r = subprocess.run([sys.executable, "-m", "training.export_hf", "--encoder", self.gte, "--decoder", self.qwen,
                            "--out", os.path.join(self.tmp.name, "pkg-cli"), "--no-golden", "--no-check"],
                           cwd=ROOT, capture_output=True, text=True, timeout=120,
                           env={**os.environ, "OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1"})
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertIn("adapter is freshly initialised: train it before serving", r.stderr)
        self.assertIn("decoder.onnx", r.stdout)

    def test_finetune_two_steps_then_export(self):
        if not HAVE_NODE:
            self.skipTest("finetune tokenises with node + @huggingface/tokenizers")
        ft = os.path.join(self.tmp.name, "ft")
        s = finetune.finetune(self.bert, self.qwen, ft, steps=2, batch=2, lora_rank=2, lora_alpha=4.0, synthetic=4,
                              lr=1e-3, log=lambda *a: None)
        self.assertEqual(len(s["history"]), 2)
        self.assertEqual((s["encoderLoraLayers"], s["decoderLoraLayers"]), (2 * 3, 2 * 4))
        for h in s["history"]:
            self.assertTrue(h["reconstruct"] is None or h["reconstruct"] > 0)
        with open(os.path.join(ft, "decoder-lora", "adapter_config.json")) as f:
            cfg = json.load(f)
        self.assertEqual((cfg["r"], cfg["lora_alpha"], cfg["peft_type"]), (2, 4.0, "LORA"))
        from training.hf.lora import read_lora
        _, pairs = read_lora(os.path.join(ft, "decoder-lora"))
        self.assertGreater(max(float(B.abs().max()) for _, B in pairs.values()), 0.0)  # B starts at 0: it trained
        out, man, err = self.export("pkg-ft", encoder=self.bert, decoder=self.qwen,
                                    adapter=os.path.join(ft, "adapter.safetensors"),
                                    loras=[os.path.join(ft, "encoder-lora"), os.path.join(ft, "decoder-lora")],
                                    golden_steps=2)
        self.assertNotIn("freshly", err)
        self.run_package(out, 1e-5)

    def test_finetune_with_expansion(self):
        """The selective-expansion recipe on real-checkpoint layouts: instruction examples read the answer's chunk as
        the decoder's own tokens in its place, and the loss is taken through that sequence."""
        if not HAVE_NODE:
            self.skipTest("finetune tokenises with node + @huggingface/tokenizers")
        import random
        from training.e2llm import export as ex
        from training.hf.export import special_ids, templates
        from training.hf import checkpoint as ck
        recs = [{"text": " ".join(f"Filler sentence number {i} of the record." for i in range(30)) +
                 " The code of the onyx item is 417. " + " ".join(f"More text {i}." for i in range(20)),
                 "question": "What is the code of the onyx item?", "answer": "417"}]
        cls, _, bos, eos, _ = special_ids(self.bert, self.qwen, ck.read_json(self.bert, "tokenizer.json") or {},
                                           ck.read_json(self.qwen, "tokenizer.json") or {}, "auto")
        exs = finetune.build_examples(recs, ck.tokenizer_path(self.bert), ck.tokenizer_path(self.qwen),
                                      {"cls": cls, "bos": bos, "eos": eos[0]}, templates("plain"), 128, 64, 16,
                                      expand={"p": 1.0, "max_extra": 0}, seed=random.Random(0).randint(0, 9))
        qa = [e for e in exs if e.kind == "qa"][0]
        chunks = ex.chunk_text(recs[0]["text"], 128)
        self.assertEqual(qa.expand, [i for i, c in enumerate(chunks) if "417" in c])
        self.assertEqual(len(qa.raw_ids), len(chunks))
        self.assertEqual([e.expand for e in exs if e.kind == "reconstruct"], [[]])
        s = finetune.finetune(self.bert, self.qwen, os.path.join(self.tmp.name, "ft-expand"), steps=2, batch=2,
                              lora_rank=2, lora_alpha=4.0, synthetic=4, lr=1e-3, log=lambda *a: None,
                              expand={"p": 1.0, "raw_doc_p": 0.5})
        self.assertTrue(all(h["qa"] is None or h["qa"] > 0 for h in s["history"]))


if __name__ == "__main__":
    unittest.main()
