"""The Hugging Face loaders against independent functional re-implementations that read the raw checkpoint
tensors by their Hugging Face names (HF semantics: repeat_kv GQA, full causal mask, BERT post-LN, GTE v1.5 packed
qkv + NTK rope + gated MLP), and the PEFT LoRA merge."""
import math
import os
import tempfile
import unittest

import torch
import torch.nn.functional as F

from training.hf import checkpoint as ck
from training.hf import lora, models, testing

torch.set_num_threads(1)


def ln(x, sd, p, eps):
    return F.layer_norm(x, x.shape[-1:], sd[p + ".weight"], sd[p + ".bias"], eps)


def lin(x, sd, p, bias=True):
    return x @ sd[p + ".weight"].T + (sd[p + ".bias"] if bias and p + ".bias" in sd else 0)


def rot(x):
    h = x.shape[-1] // 2
    return torch.cat([-x[..., h:], x[..., :h]], -1)


def ref_bert(sd, c, ids):  # ids [T] -> [T, H]
    sd = {k[5:] if k.startswith("bert.") else k: v for k, v in sd.items()}
    T, H = len(ids), c["num_attention_heads"]
    off = c["pad_token_id"] + 1 if c["model_type"] in ("roberta", "xlm-roberta") else 0
    x = sd["embeddings.word_embeddings.weight"][ids] + sd["embeddings.position_embeddings.weight"][off:off + T] \
        + sd["embeddings.token_type_embeddings.weight"][0]
    x = ln(x, sd, "embeddings.LayerNorm", c["layer_norm_eps"])
    for i in range(c["num_hidden_layers"]):
        p = f"encoder.layer.{i}."
        q, k, v = (lin(x, sd, p + "attention.self." + n).view(T, H, -1).transpose(0, 1) for n in ("query", "key", "value"))
        a = torch.softmax(q @ k.transpose(1, 2) / math.sqrt(q.shape[-1]), -1) @ v
        x = ln(lin(a.transpose(0, 1).reshape(T, -1), sd, p + "attention.output.dense") + x, sd, p + "attention.output.LayerNorm", c["layer_norm_eps"])
        h = F.gelu(lin(x, sd, p + "intermediate.dense"))
        x = ln(lin(h, sd, p + "output.dense") + x, sd, p + "output.LayerNorm", c["layer_norm_eps"])
    return x


def ref_gte(sd, c, ids):
    T, H = len(ids), c["num_attention_heads"]
    d = c["hidden_size"] // H
    x = ln(sd["embeddings.word_embeddings.weight"][ids] + sd["embeddings.token_type_embeddings.weight"][0], sd,
           "embeddings.LayerNorm", c["layer_norm_eps"])
    f = c["rope_scaling"]["factor"]
    inv = 1.0 / (c["rope_theta"] * f) ** (torch.arange(0, d, 2, dtype=torch.float64) / d) / f ** (2 / d)
    fr = torch.outer(torch.arange(T, dtype=torch.float64), inv)
    cos, sin = torch.cat([fr, fr], -1).cos().float(), torch.cat([fr, fr], -1).sin().float()
    for i in range(c["num_hidden_layers"]):
        p = f"encoder.layer.{i}."
        qkv = lin(x, sd, p + "attention.qkv_proj").view(T, 3, H, d)
        q, k, v = (qkv[:, j].transpose(0, 1) for j in range(3))
        q, k = q * cos + rot(q) * sin, k * cos + rot(k) * sin
        a = torch.softmax(q @ k.transpose(1, 2) / math.sqrt(d), -1) @ v
        x = ln(x + lin(a.transpose(0, 1).reshape(T, -1), sd, p + "attention.o_proj"), sd, p + "attn_ln", c["layer_norm_eps"])
        up, gate = lin(x, sd, p + "mlp.up_gate_proj").chunk(2, -1)
        x = ln(x + lin(up * F.gelu(gate), sd, p + "mlp.down_proj"), sd, p + "mlp_ln", c["layer_norm_eps"])
    return x


def ref_causal_lm(sd, c, embeds):  # [L, D] -> logits [L, V]
    L, H, KV = embeds.shape[0], c["num_attention_heads"], c["num_key_value_heads"]
    d = c["hidden_size"] // H
    rms = lambda x, w: x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + c["rms_norm_eps"]) * w
    inv = 1.0 / c["rope_theta"] ** (torch.arange(0, d, 2, dtype=torch.float64) / d)
    fr = torch.outer(torch.arange(L, dtype=torch.float64), inv)
    cos, sin = torch.cat([fr, fr], -1).cos().float(), torch.cat([fr, fr], -1).sin().float()
    mask = torch.full((L, L), float("-inf")).triu(1)
    x = embeds
    for i in range(c["num_hidden_layers"]):
        p = f"model.layers.{i}."
        h = rms(x, sd[p + "input_layernorm.weight"])
        q = lin(h, sd, p + "self_attn.q_proj").view(L, H, d).transpose(0, 1)
        k = lin(h, sd, p + "self_attn.k_proj").view(L, KV, d).transpose(0, 1)
        v = lin(h, sd, p + "self_attn.v_proj").view(L, KV, d).transpose(0, 1)
        q, k = q * cos + rot(q) * sin, k * cos + rot(k) * sin
        k, v = k.repeat_interleave(H // KV, 0), v.repeat_interleave(H // KV, 0)  # HF repeat_kv
        a = torch.softmax(q @ k.transpose(1, 2) / math.sqrt(d) + mask, -1) @ v
        x = x + lin(a.transpose(0, 1).reshape(L, -1), sd, p + "self_attn.o_proj")
        h = rms(x, sd[p + "post_attention_layernorm.weight"])
        x = x + lin(F.silu(lin(h, sd, p + "mlp.gate_proj")) * lin(h, sd, p + "mlp.up_proj"), sd, p + "mlp.down_proj")
    x = rms(x, sd["model.norm.weight"])
    return x @ sd.get("lm_head.weight", sd["model.embed_tokens.weight"]).T


class HFModelsTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.TemporaryDirectory()
        t = cls.tmp.name
        cls.bert = testing.write_bert(os.path.join(t, "bert"), prefix="bert.")
        cls.gte = testing.write_gte(os.path.join(t, "gte"))
        cls.llama = testing.write_decoder(os.path.join(t, "llama"), testing.llama_config(), shard_bytes=150_000, dtype="BF16")
        cls.qwen = testing.write_decoder(os.path.join(t, "qwen2"), testing.qwen2_config())
        cls.ids = torch.tensor([3, 100, 200, 300, 400, 7])

    @classmethod
    def tearDownClass(cls):
        cls.tmp.cleanup()

    def test_bert(self):
        enc = models.load_encoder(self.bert, "mean")
        ref = ref_bert(ck.load_weights(self.bert), ck.read_config(self.bert), self.ids)
        got = enc(self.ids.unsqueeze(0), torch.ones(1, 6, dtype=torch.long))[0]
        torch.testing.assert_close(got, ref.mean(0), atol=1e-5, rtol=1e-5)
        # padding does not change a chunk's embedding
        ids = torch.stack([self.ids, torch.cat([self.ids[:4], torch.zeros(2, dtype=torch.long)])])
        mask = torch.tensor([[1] * 6, [1] * 4 + [0] * 2])
        torch.testing.assert_close(enc(ids, mask)[1], ref_bert(ck.load_weights(self.bert), ck.read_config(self.bert), self.ids[:4]).mean(0), atol=1e-5, rtol=1e-5)

    def test_xlm_roberta_positions(self):
        with tempfile.TemporaryDirectory() as d:
            testing.write_bert(d, prefix="roberta.", model_type="xlm-roberta")
            enc = models.load_encoder(d, "cls")
            ref = ref_bert({k.replace("roberta.", "", 1): v for k, v in ck.load_weights(d).items()}, ck.read_config(d), self.ids)
            torch.testing.assert_close(enc(self.ids.unsqueeze(0), torch.ones(1, 6, dtype=torch.long))[0], ref[0], atol=1e-5, rtol=1e-5)

    def test_pma_matches_project_pma(self):
        from training.e2llm.modules import PMA
        ref = PMA(64, 4, 128, 1e-12)
        torch.nn.init.normal_(ref.query, 0, 0.5)
        mine = models.PMA(64, 4, 128, 1e-12)
        mine.load_state_dict(ref.state_dict())
        h = torch.randn(2, 5, 64)
        mask = torch.tensor([[1, 1, 1, 1, 1], [1, 1, 1, 0, 0]])
        with torch.no_grad():
            torch.testing.assert_close(mine(h, mask), ref(h, mask), atol=1e-5, rtol=1e-5)

    def test_gte_v15(self):
        enc = models.load_encoder(self.gte)
        self.assertEqual(enc.pooling, "cls")
        ref = ref_gte(ck.load_weights(self.gte), ck.read_config(self.gte), self.ids)
        torch.testing.assert_close(enc(self.ids.unsqueeze(0), torch.ones(1, 6, dtype=torch.long))[0], ref[0], atol=1e-5, rtol=1e-5)

    def _check_decoder(self, folder):
        dec = models.load_decoder(folder)
        sd, c = ck.load_weights(folder), ck.read_config(folder)
        emb = torch.randn(7, c["hidden_size"], generator=torch.Generator().manual_seed(0))
        ref = ref_causal_lm(sd, c, emb)
        out = dec(emb[:5].unsqueeze(0), torch.ones(1, 5, dtype=torch.long), torch.arange(5).unsqueeze(0), *dec.empty_past())
        torch.testing.assert_close(out[0][0, 0], ref[4], atol=1e-4, rtol=1e-4)
        out = dec(emb[5:].unsqueeze(0), torch.ones(1, 7, dtype=torch.long), torch.tensor([[5, 6]]), *out[1:])
        torch.testing.assert_close(out[0][0, 0], ref[6], atol=1e-4, rtol=1e-4)
        return dec

    def test_llama_sharded_bf16_untied(self):
        dec = self._check_decoder(self.llama)
        self.assertFalse(dec.spec.tied)
        self.assertIsNotNone(dec.lm_head)

    def test_qwen2_bias_tied(self):
        dec = self._check_decoder(self.qwen)
        self.assertTrue(dec.spec.tied and dec.spec.qkv_bias)
        self.assertIsNotNone(dec.model.layers[0].self_attn.q_proj.bias)

    def test_lora_merge(self):
        with tempfile.TemporaryDirectory() as d:
            base = models.load_decoder(self.qwen)
            testing.write_lora(d, base, ["q_proj", "v_proj", "down_proj"], r=4, alpha=8.0)
            cfg, pairs = lora.read_lora(d)
            self.assertIn("model.layers.0.self_attn.q_proj", pairs)
            self.assertEqual(lora.lora_targets(d, [("encoder", models.load_encoder(self.gte).backbone), ("decoder", base)]), "decoder")
            merged = models.load_decoder(self.qwen)
            self.assertEqual(lora.merge_lora(merged, d), 3 * 2)
            A, B = pairs["model.layers.1.mlp.down_proj"]
            torch.testing.assert_close(merged.model.layers[1].mlp.down_proj.weight,
                                       base.model.layers[1].mlp.down_proj.weight + 2.0 * B @ A)
            # the merged model == the base with LoRA layers applied on the fly
            wrapped = models.load_decoder(self.qwen)
            lora.add_lora(wrapped, ["q_proj", "v_proj", "down_proj"], 4, 8.0)
            with torch.no_grad():
                for n, m in wrapped.named_modules():
                    if isinstance(m, lora.LoRALinear):
                        m.lora_A.copy_(pairs[n][0])
                        m.lora_B.copy_(pairs[n][1])
            emb = torch.randn(1, 4, 64)
            args = (emb, torch.ones(1, 4, dtype=torch.long), torch.arange(4).unsqueeze(0), *merged.empty_past())
            with torch.no_grad():
                torch.testing.assert_close(merged(*args)[0], wrapped(*args)[0], atol=1e-4, rtol=1e-4)
                self.assertGreater(float((merged(*args)[0] - base(*args)[0]).abs().max()), 1e-3)


if __name__ == "__main__":
    unittest.main()
