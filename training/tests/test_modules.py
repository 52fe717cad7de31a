import unittest

import torch

from training.e2llm.modules import (
    ChunkEncoder, DecoderConfig, E2LLMConfig, EncoderConfig, LlamaDecoder, MLPAdapter, build_model, pad_batch,
)

torch.set_num_threads(2)


class ModuleTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.model = build_model(0)

    def test_config_defaults(self):
        c = self.model.cfg
        self.assertEqual((c.encoder.vocab_size, c.encoder.hidden, c.encoder.layers, c.encoder.heads, c.encoder.ffn,
                          c.encoder.max_tokens, c.encoder.pooling), (4096, 128, 4, 4, 512, 256, "pma"))
        self.assertEqual((c.decoder.vocab_size, c.decoder.hidden, c.decoder.layers, c.decoder.heads,
                          c.decoder.kv_heads, c.decoder.head_size, c.decoder.ffn, c.decoder.window),
                         (4096, 256, 4, 4, 2, 64, 768, 4096))
        self.assertIs(self.model.decoder.embed_tokens.weight, self.model.decoder.embed_tokens.weight)

    def test_deterministic_init(self):
        a, b = build_model(0), build_model(0)
        for (n, p), (_, q) in zip(a.state_dict().items(), b.state_dict().items()):
            self.assertTrue(torch.equal(p, q), n)
        c = build_model(1)
        self.assertFalse(torch.equal(a.decoder.embed_tokens.weight, c.decoder.embed_tokens.weight))

    @torch.no_grad()
    def test_shapes(self):
        ids, mask = pad_batch([[3, 5, 6, 7], [3, 9]])
        emb = self.model.encoder(ids, mask)
        self.assertEqual(tuple(emb.shape), (2, 128))
        self.assertEqual(tuple(self.model.adapter(emb).shape), (2, 256))
        dec = self.model.decoder
        out = dec(torch.randn(3, 5, 256), torch.ones(3, 5, dtype=torch.long), torch.arange(5).repeat(3, 1),
                  *dec.empty_past(3))
        self.assertEqual(len(out), 9)
        self.assertEqual(tuple(out[0].shape), (3, 1, 4096))
        for t in out[1:]:
            self.assertEqual(tuple(t.shape), (3, 2, 5, 64))

    @torch.no_grad()
    def test_kv_cache_equals_full_forward(self):
        dec = self.model.decoder
        torch.manual_seed(1)
        B, L = 2, 9
        x = torch.randn(B, L, 256)
        am = torch.ones(B, L, dtype=torch.long)
        am[1, :3] = 0  # left padding in row 1
        pos = (torch.cumsum(am, 1) - 1).clamp(min=0)
        full = dec(x, am, pos, *dec.empty_past(B))
        for split in (1, 4, 8):
            first = dec(x[:, :split], am[:, :split], pos[:, :split], *dec.empty_past(B))
            past = list(first[1:])
            out = first
            for t in range(split, L):  # token-by-token after a prefill
                out = dec(x[:, t:t + 1], am[:, :t + 1], pos[:, t:t + 1], *past)
                past = list(out[1:])
            torch.testing.assert_close(out[0], full[0], atol=1e-5, rtol=1e-5)
            for a, b in zip(past, full[1:]):
                torch.testing.assert_close(a, b, atol=1e-5, rtol=1e-5)
        # the left-padded row equals the same row without padding
        alone = dec(x[1:, 3:], am[1:, 3:], pos[1:, 3:], *dec.empty_past(1))
        torch.testing.assert_close(full[0][1:], alone[0], atol=1e-5, rtol=1e-5)

    @torch.no_grad()
    def test_exported_attention_output(self):
        """The decoder as exported adds the last query's attention over every position (mean over heads and layers):
        a distribution over past + new positions that puts nothing on padding, with logits and presents unchanged."""
        from training.e2llm.export import ExportedDecoder
        dec = self.model.decoder
        torch.manual_seed(2)
        x = torch.randn(2, 6, 256)
        am = torch.ones(2, 6, dtype=torch.long)
        am[1, :2] = 0
        pos = (torch.cumsum(am, 1) - 1).clamp(min=0)
        plain = dec(x, am, pos, *dec.empty_past(2))
        out = ExportedDecoder(dec)(x, am, pos, *dec.empty_past(2))
        self.assertEqual(len(out), len(plain) + 1)
        for a, b in zip(out[:-1], plain):
            torch.testing.assert_close(a, b, atol=0, rtol=0)
        att = out[-1]
        self.assertEqual(tuple(att.shape), (2, 6))
        torch.testing.assert_close(att.sum(-1), torch.ones(2), atol=1e-5, rtol=0)
        self.assertLess(float(att[1, :2].abs().max()), 1e-6)  # padded keys get nothing
        self.assertTrue(all(not layer.self_attn.keep_last_probs for layer in dec.layers))  # the flag is reset

    @torch.no_grad()
    def test_causality(self):
        dec = self.model.decoder
        x = torch.randn(1, 6, 256)
        am = torch.ones(1, 6, dtype=torch.long)
        pos = torch.arange(6).unsqueeze(0)
        a = dec(x[:, :4], am[:, :4], pos[:, :4], *dec.empty_past(1))
        y = x.clone()
        y[:, 4:] = torch.randn(1, 2, 256)
        b = dec(y, am, pos, *dec.empty_past(1))
        for i in range(1, 9):  # keys/values of the first 4 positions do not see the future
            torch.testing.assert_close(b[i][:, :, :4], a[i], atol=1e-5, rtol=1e-5)

    @torch.no_grad()
    def test_pooling_variants(self):
        seqs = [[3, 10, 11, 12, 13, 14], [3, 20, 21]]
        ids, mask = pad_batch(seqs)
        for pooling in ("cls", "mean", "pma"):
            torch.manual_seed(0)
            enc = ChunkEncoder(EncoderConfig(pooling=pooling, layers=2)).eval()
            out = enc(ids, mask)
            self.assertEqual(tuple(out.shape), (2, 128))
            # padding does not change a chunk's embedding
            single = enc(*pad_batch([seqs[1]]))
            torch.testing.assert_close(out[1:], single, atol=1e-5, rtol=1e-5)
            h = enc.token_states(ids, mask)
            if pooling == "cls":
                torch.testing.assert_close(out, h[:, 0], atol=0, rtol=0)
            elif pooling == "mean":
                torch.testing.assert_close(out[1], h[1, :3].mean(0), atol=1e-6, rtol=1e-5)
            else:
                self.assertIsNotNone(enc.pma)
        with self.assertRaises(ValueError):
            ChunkEncoder(EncoderConfig(pooling="max"))

    @torch.no_grad()
    def test_pre_ln_encoder(self):
        enc = ChunkEncoder(EncoderConfig(pre_ln=True, layers=1)).eval()
        self.assertEqual(tuple(enc(*pad_batch([[3, 4, 5]])).shape), (1, 128))

    @torch.no_grad()
    def test_relative_position_encoder(self):
        """positions="rope" + conv_kernel (the shipped encoder): no position table, padding-invariant, and the
        convolution lets a token see exactly the kernel - 1 tokens before it."""
        torch.manual_seed(0)
        cfg = EncoderConfig(positions="rope", pre_ln=True, conv_kernel=5, pooling="mean", layers=2)
        enc = ChunkEncoder(cfg).eval()
        self.assertIsNone(enc.pos)
        seqs = [[3] + list(range(10, 30)), [3, 40, 41, 42]]
        ids, mask = pad_batch(seqs)
        out = enc(ids, mask)
        torch.testing.assert_close(out[1:], enc(*pad_batch([seqs[1]])), atol=1e-5, rtol=1e-5)
        # without attention layers, a token's state depends only on itself and the kernel - 1 tokens before it
        conv_only = ChunkEncoder(EncoderConfig(**{**cfg.__dict__, "layers": 0})).eval()
        conv_only.load_state_dict({k: v for k, v in enc.state_dict().items() if not k.startswith("layers.")}, strict=False)
        a = conv_only.token_states(*pad_batch([seqs[0]]))
        changed = list(seqs[0])
        changed[10] = 99
        b = conv_only.token_states(*pad_batch([changed]))
        moved = [i for i in range(len(changed)) if not torch.allclose(a[0, i], b[0, i], atol=1e-6)]
        self.assertEqual(moved, list(range(10, 15)))  # the changed token and the kernel - 1 after it
        with self.assertRaises(ValueError):
            ChunkEncoder(EncoderConfig(positions="alibi"))

    @torch.no_grad()
    def test_widen_conv_keeps_the_function(self):
        """widen_conv grows the convolution's reach (a token then sees kernel - 1 tokens before it) and leaves the
        encoder's output unchanged until training moves the new taps; it never shrinks one."""
        torch.manual_seed(0)
        model = build_model(0, E2LLMConfig(EncoderConfig(positions="rope", pre_ln=True, conv_kernel=5, pooling="mean", layers=1)))
        enc = model.encoder.eval()
        batch = pad_batch([[3] + list(range(10, 50)), [3, 40, 41, 42]])
        before = enc(*batch)
        enc.widen_conv(12)
        self.assertEqual((enc.conv.kernel_size[0], enc.cfg.conv_kernel, model.cfg.encoder.conv_kernel), (12, 12, 12))
        torch.testing.assert_close(enc(*batch), before, atol=1e-6, rtol=1e-6)
        enc.conv.weight[:, :, 0] += 0.1 * torch.randn_like(enc.conv.weight[:, :, 0])  # the oldest tap: 11 tokens back
        self.assertFalse(torch.allclose(enc(*batch), before, atol=1e-4))
        with self.assertRaises(ValueError):
            enc.widen_conv(9)

    def test_adapter(self):
        a = MLPAdapter(128, 256)
        self.assertEqual(tuple(a(torch.randn(5, 128)).shape), (5, 256))


if __name__ == "__main__":
    unittest.main()
