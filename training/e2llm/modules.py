"""PyTorch modules of a small E2LLM (encoder -> one soft token per chunk -> decoder).

* ``ChunkEncoder``: BERT-style encoder (learned absolute positions, post- or pre-LN, GELU FFN) with
  pooling ``cls`` | ``mean`` (over non-pad tokens) | ``pma`` (paper v2: one learned query attends over
  all non-pad token states with 4 heads, residual + LayerNorm + FFN).
* ``MLPAdapter``: 2-layer MLP with GELU, encoder width -> decoder hidden (paper v1 adapter).
* ``LlamaDecoder``: Llama-style decoder (RoPE, RMSNorm, SwiGLU, grouped-query attention) whose forward
  matches the decoder.onnx contract: causal + padding mask built inside from ``attention_mask``
  [batch, past+seq], KV cache in/out, logits of the last position only, lm_head tied to the embedding.

Everything is written with plain tensor ops (torch 1.13 has no scaled_dot_product_attention) and
without Python branches on tensor shapes, so that tracing produces graphs with dynamic axes that also
accept an empty past.
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import List, Optional, Sequence, Tuple

import torch
from torch import nn
import torch.nn.functional as F

from training import layers
from training.layers import GQAttention, RMSNorm, apply_rope, causal_bias, rope_tables

NEG_INF = -1e9  # finite "minus infinity": fully masked rows give a uniform softmax, never NaN


@dataclass
class EncoderConfig:
    vocab_size: int = 4096
    hidden: int = 128
    layers: int = 4
    heads: int = 4
    ffn: int = 512
    max_tokens: int = 256
    pooling: str = "pma"  # cls | mean | pma
    pma_heads: int = 4
    pre_ln: bool = False  # False: post-LN (original BERT)
    ln_eps: float = 1e-12
    pad_token_id: int = 0
    # "learned": absolute position embeddings (BERT); "rope": rotary positions in every attention layer, so
    # "the k-th token after this one" is the same function at every offset in the chunk
    positions: str = "learned"
    rope_theta: float = 10000.0
    # > 0: a residual causal convolution over the token embeddings (each token sees the conv_kernel - 1 before it),
    # so a token knows its exact distance to nearby tokens ("the 3rd digit after ':'") from the first layer on
    conv_kernel: int = 0


@dataclass
class DecoderConfig:
    vocab_size: int = 4096
    hidden: int = 256
    layers: int = 4
    heads: int = 4
    kv_heads: int = 2
    head_size: int = 64
    ffn: int = 768
    window: int = 4096
    rope_theta: float = 10000.0
    rms_eps: float = 1e-5


@dataclass
class E2LLMConfig:
    encoder: EncoderConfig = field(default_factory=EncoderConfig)
    decoder: DecoderConfig = field(default_factory=DecoderConfig)

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> "E2LLMConfig":
        return cls(EncoderConfig(**d.get("encoder", {})), DecoderConfig(**d.get("decoder", {})))


def _padding_bias(attention_mask: torch.Tensor) -> torch.Tensor:
    return layers.padding_bias(attention_mask, NEG_INF)


# ----------------------------------------------------------------------------------------------
# Encoder
# ----------------------------------------------------------------------------------------------

class SelfAttention(nn.Module):
    def __init__(self, hidden: int, heads: int):
        super().__init__()
        assert hidden % heads == 0
        self.heads = heads
        self.head_size = hidden // heads
        self.q = nn.Linear(hidden, hidden)
        self.k = nn.Linear(hidden, hidden)
        self.v = nn.Linear(hidden, hidden)
        self.o = nn.Linear(hidden, hidden)

    def _split(self, x: torch.Tensor) -> torch.Tensor:  # [B, T, D] -> [B, H, T, d]
        return x.reshape(x.shape[0], x.shape[1], self.heads, self.head_size).transpose(1, 2)

    def forward(self, x: torch.Tensor, bias: torch.Tensor, rope: Optional[Tuple[torch.Tensor, torch.Tensor]] = None) -> torch.Tensor:
        q, k, v = self._split(self.q(x)), self._split(self.k(x)), self._split(self.v(x))
        if rope is not None:
            q, k = apply_rope(q, *rope), apply_rope(k, *rope)
        scores = torch.matmul(q, k.transpose(-1, -2)) * (1.0 / math.sqrt(self.head_size)) + bias
        out = torch.matmul(torch.softmax(scores, dim=-1), v)  # [B, H, T, d]
        out = out.transpose(1, 2).reshape(x.shape[0], x.shape[1], self.heads * self.head_size)
        return self.o(out)


class EncoderLayer(nn.Module):
    def __init__(self, cfg: EncoderConfig):
        super().__init__()
        self.pre_ln = cfg.pre_ln
        self.attn = SelfAttention(cfg.hidden, cfg.heads)
        self.ln1 = nn.LayerNorm(cfg.hidden, eps=cfg.ln_eps)
        self.ffn = nn.Sequential(nn.Linear(cfg.hidden, cfg.ffn), nn.GELU(), nn.Linear(cfg.ffn, cfg.hidden))
        self.ln2 = nn.LayerNorm(cfg.hidden, eps=cfg.ln_eps)

    def forward(self, x: torch.Tensor, bias: torch.Tensor, rope=None) -> torch.Tensor:
        if self.pre_ln:
            x = x + self.attn(self.ln1(x), bias, rope)
            return x + self.ffn(self.ln2(x))
        x = self.ln1(x + self.attn(x, bias, rope))
        return self.ln2(x + self.ffn(x))


class PMA(layers.PMA):
    """``training.layers.PMA`` with this model's mask constant."""

    def __init__(self, hidden: int, heads: int, ffn: int, eps: float):
        super().__init__(hidden, heads, ffn, eps, NEG_INF)


class ChunkEncoder(nn.Module):
    def __init__(self, cfg: EncoderConfig):
        super().__init__()
        if cfg.pooling not in ("cls", "mean", "pma"):
            raise ValueError(f"unknown pooling {cfg.pooling!r}")
        if cfg.positions not in ("learned", "rope"):
            raise ValueError(f"unknown positions {cfg.positions!r}")
        self.cfg = cfg
        self.tok = nn.Embedding(cfg.vocab_size, cfg.hidden)
        self.pos = nn.Embedding(cfg.max_tokens, cfg.hidden) if cfg.positions == "learned" else None
        if cfg.positions == "rope":
            head = cfg.hidden // cfg.heads
            inv_freq = 1.0 / (cfg.rope_theta ** (torch.arange(0, head, 2, dtype=torch.float32) / head))
            self.register_buffer("inv_freq", inv_freq, persistent=False)
        self.conv = nn.Conv1d(cfg.hidden, cfg.hidden, cfg.conv_kernel) if cfg.conv_kernel > 0 else None
        self.emb_ln = nn.LayerNorm(cfg.hidden, eps=cfg.ln_eps)
        self.layers = nn.ModuleList(EncoderLayer(cfg) for _ in range(cfg.layers))
        self.final_ln = nn.LayerNorm(cfg.hidden, eps=cfg.ln_eps) if cfg.pre_ln else None
        self.pma = PMA(cfg.hidden, cfg.pma_heads, cfg.ffn, cfg.ln_eps) if cfg.pooling == "pma" else None

    def token_states(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        positions = torch.cumsum(torch.ones_like(input_ids), dim=1) - 1  # 0..T-1, shape-free
        rope = None
        x = self.tok(input_ids)
        if self.pos is not None:
            x = x + self.pos(positions)
        else:
            rope = rope_tables(positions, self.inv_freq)
        if self.conv is not None:
            # left padding only: a token sees itself and the kernel - 1 before it, so the right padding of a
            # batch never reaches a real token
            x = x + self.conv(F.pad(x.transpose(1, 2), (self.cfg.conv_kernel - 1, 0))).transpose(1, 2)
        x = self.emb_ln(x)
        bias = _padding_bias(attention_mask)
        for layer in self.layers:
            x = layer(x, bias, rope)
        if self.final_ln is not None:
            x = self.final_ln(x)
        return x

    def widen_conv(self, kernel: int) -> None:
        """Grow the causal convolution to ``kernel`` taps without changing what the encoder computes: the old taps
        become the newest ``conv_kernel`` ones and the added (older) taps start at zero, so training can learn to
        look further back from a trained encoder. Each token then sees ``kernel - 1`` tokens before it (a UUID
        is about 30 tokens; 8 is what the shipped encoder sees)."""
        old = self.conv
        if old is None:
            raise ValueError("widen_conv needs an encoder with a convolution (conv_kernel > 0)")
        if kernel < self.cfg.conv_kernel:
            raise ValueError(f"widen_conv cannot shrink a {self.cfg.conv_kernel}-tap convolution to {kernel}")
        conv = nn.Conv1d(self.cfg.hidden, self.cfg.hidden, kernel).to(old.weight.device)
        with torch.no_grad():
            conv.weight.zero_()
            conv.weight[:, :, kernel - self.cfg.conv_kernel:] = old.weight
            conv.bias.copy_(old.bias)
        self.conv = conv
        self.cfg.conv_kernel = kernel  # in place: the model's E2LLMConfig holds this same object

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        """input_ids, attention_mask int64 [B, T] -> chunk_embeddings f32 [B, hidden]."""
        h = self.token_states(input_ids, attention_mask)
        if self.cfg.pooling == "cls":
            return h[:, 0, :]
        if self.cfg.pooling == "mean":
            m = attention_mask.to(h.dtype).unsqueeze(-1)
            return (h * m).sum(dim=1) / torch.clamp(m.sum(dim=1), min=1.0)
        return self.pma(h, attention_mask)


# ----------------------------------------------------------------------------------------------
# Adapter
# ----------------------------------------------------------------------------------------------

class MLPAdapter(nn.Module):
    def __init__(self, input_width: int, output_width: int, hidden: Optional[int] = None):
        super().__init__()
        hidden = hidden or output_width
        self.fc1 = nn.Linear(input_width, hidden)
        self.act = nn.GELU()
        self.fc2 = nn.Linear(hidden, output_width)

    def forward(self, chunk_embeddings: torch.Tensor) -> torch.Tensor:
        return self.fc2(self.act(self.fc1(chunk_embeddings)))


# ----------------------------------------------------------------------------------------------
# Decoder
# ----------------------------------------------------------------------------------------------

class DecoderLayer(nn.Module):
    def __init__(self, cfg: DecoderConfig):
        super().__init__()
        self.input_layernorm = RMSNorm(cfg.hidden, cfg.rms_eps)
        self.self_attn = GQAttention(cfg.hidden, cfg.heads, cfg.kv_heads, cfg.head_size)
        self.post_attention_layernorm = RMSNorm(cfg.hidden, cfg.rms_eps)
        self.gate_proj = nn.Linear(cfg.hidden, cfg.ffn, bias=False)
        self.up_proj = nn.Linear(cfg.hidden, cfg.ffn, bias=False)
        self.down_proj = nn.Linear(cfg.ffn, cfg.hidden, bias=False)

    def forward(self, x, cos, sin, bias, past_k, past_v):
        a, k, v = self.self_attn(self.input_layernorm(x), cos, sin, bias, past_k, past_v)
        x = x + a
        h = self.post_attention_layernorm(x)
        x = x + self.down_proj(F.silu(self.gate_proj(h)) * self.up_proj(h))
        return x, k, v


class LlamaDecoder(nn.Module):
    def __init__(self, cfg: DecoderConfig):
        super().__init__()
        self.cfg = cfg
        self.embed_tokens = nn.Embedding(cfg.vocab_size, cfg.hidden)
        self.layers = nn.ModuleList(DecoderLayer(cfg) for _ in range(cfg.layers))
        self.norm = RMSNorm(cfg.hidden, cfg.rms_eps)
        inv_freq = 1.0 / (cfg.rope_theta ** (torch.arange(0, cfg.head_size, 2, dtype=torch.float32) / cfg.head_size))
        self.register_buffer("inv_freq", inv_freq, persistent=False)

    def empty_past(self, batch: int = 1) -> List[torch.Tensor]:
        c = self.cfg
        return [torch.zeros(batch, c.kv_heads, 0, c.head_size) for _ in range(2 * c.layers)]

    def forward(self, inputs_embeds: torch.Tensor, attention_mask: torch.Tensor, position_ids: torch.Tensor,
                *past: torch.Tensor) -> Tuple[torch.Tensor, ...]:
        """inputs_embeds [B,S,D] f32, attention_mask [B,P+S] int64, position_ids [B,S] int64,
        past = (k0, v0, k1, v1, ...) each [B,KV,P,d] -> (logits [B,1,V], present k0, v0, ...)."""
        assert len(past) == 2 * self.cfg.layers
        # RoPE tables from position_ids: [B, 1, S, d]
        cos, sin = rope_tables(position_ids, self.inv_freq)
        bias = causal_bias(attention_mask, position_ids, NEG_INF)  # [B, 1, S, T]
        x = inputs_embeds
        presents: List[torch.Tensor] = []
        for i, layer in enumerate(self.layers):
            x, k, v = layer(x, cos, sin, bias, past[2 * i], past[2 * i + 1])
            presents += [k, v]
        h = self.norm(x[:, -1, :]).unsqueeze(1)  # last position only: [B, 1, D] (static 1 in the graph)
        logits = torch.matmul(h, self.embed_tokens.weight.transpose(0, 1))  # tied lm_head
        return (logits, *presents)


# ----------------------------------------------------------------------------------------------
# The whole model
# ----------------------------------------------------------------------------------------------

class E2LLM(nn.Module):
    def __init__(self, cfg: Optional[E2LLMConfig] = None):
        super().__init__()
        self.cfg = cfg or E2LLMConfig()
        self.encoder = ChunkEncoder(self.cfg.encoder)
        self.adapter = MLPAdapter(self.cfg.encoder.hidden, self.cfg.decoder.hidden)
        self.decoder = LlamaDecoder(self.cfg.decoder)

    def init_weights(self, seed: int = 0) -> "E2LLM":
        """Deterministic init from ``seed``: Linear weights N(0, 1/fan_in), embeddings and the PMA
        query N(0, 0.02), zero biases, unit norm weights. (With the tiny 0.02 scale everywhere the
        untrained decoder just echoes its last input token; fan-in scaling gives varied greedy output,
        which makes the golden parity test more telling.)"""
        g = torch.Generator().manual_seed(seed)
        linear_weights = {id(m.weight) for m in self.modules() if isinstance(m, (nn.Linear, nn.Conv1d))}
        for name, p in sorted(self.named_parameters()):
            with torch.no_grad():
                if name.endswith("bias"):
                    p.zero_()
                elif p.dim() == 1:  # LayerNorm / RMSNorm weights
                    p.fill_(1.0)
                elif id(p) in linear_weights:  # fan-in: in-features (x kernel width for a convolution)
                    p.copy_(torch.randn(p.shape, generator=g) * p[0].numel() ** -0.5)
                else:  # token / position embeddings, PMA query
                    p.copy_(torch.randn(p.shape, generator=g) * 0.02)
        return self

    def soft_tokens(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        return self.adapter(self.encoder(input_ids, attention_mask))


def build_model(seed: int = 0, cfg: Optional[E2LLMConfig] = None) -> E2LLM:
    torch.manual_seed(seed)
    return E2LLM(cfg).init_weights(seed).eval()


def pad_batch(seqs: Sequence[Sequence[int]], pad_id: int = 0) -> Tuple[torch.Tensor, torch.Tensor]:
    """Right-pad id lists -> (input_ids, attention_mask) int64 [B, T]."""
    T = max(len(s) for s in seqs)
    ids = torch.full((len(seqs), T), pad_id, dtype=torch.long)
    mask = torch.zeros((len(seqs), T), dtype=torch.long)
    for i, s in enumerate(seqs):
        ids[i, : len(s)] = torch.tensor(list(s), dtype=torch.long)
        mask[i, : len(s)] = 1
    return ids, mask
