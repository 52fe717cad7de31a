"""Building blocks shared by the project's own model (``training.e2llm.modules``) and the Hugging Face-format
models (``training.hf.models``): masks, rotary embeddings, RMSNorm, grouped-query attention with a KV cache, and
PMA pooling. Written once so both stacks compute the same maths; each passes its own masking constant (the
project's ``-1e9``, the f16-exportable ``-30000``), which is why the mask builders take ``neg``.

Plain tensor ops only (torch 1.13 has no scaled_dot_product_attention) and no Python branches on tensor shapes,
so traced graphs keep dynamic axes and accept an empty past.
"""
from __future__ import annotations

import math
from typing import Optional, Tuple

import torch
from torch import nn


def padding_bias(attention_mask: torch.Tensor, neg: float) -> torch.Tensor:
    """[B, T] int (1 = token) -> additive bias [B, 1, 1, T]."""
    keep = attention_mask.unsqueeze(1).unsqueeze(2) > 0
    zero = torch.zeros((), dtype=torch.float32, device=attention_mask.device)
    return torch.where(keep, zero, zero + neg)


def causal_bias(attention_mask: torch.Tensor, position_ids: torch.Tensor, neg: float) -> torch.Tensor:
    """Shape-free causal + padding bias [B, 1, S, T]: key j (0..T-1) is visible to query i (0..S-1) iff
    j - T <= i - S, and the key is real or is the query itself. A padded query so attends only to itself (instead of
    a uniform spread over every key, future ones included): its K/V, and the cache, do not depend on how the
    sequence was split into prefill and steps. Real tokens are unaffected."""
    ones_k = torch.ones_like(attention_mask)
    key_rel = torch.cumsum(ones_k, dim=1) - ones_k.sum(dim=1, keepdim=True) - 1  # j - T: [B, T]
    ones_q = torch.ones_like(position_ids)
    query_rel = torch.cumsum(ones_q, dim=1) - ones_q.sum(dim=1, keepdim=True) - 1  # i - S: [B, S]
    k_rel, q_rel = key_rel.unsqueeze(1), query_rel.unsqueeze(2)
    allowed = (k_rel <= q_rel) & ((attention_mask.unsqueeze(1) > 0) | (k_rel == q_rel))  # [B, S, T]
    zero = torch.zeros((), dtype=torch.float32, device=attention_mask.device)
    return torch.where(allowed, zero, zero + neg).unsqueeze(1)


def rotate_half(x: torch.Tensor) -> torch.Tensor:
    half = x.shape[-1] // 2
    return torch.cat((-x[..., half:], x[..., :half]), dim=-1)


def rope_tables(positions: torch.Tensor, inv_freq: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
    """positions [B, T] int -> (cos, sin) [B, 1, T, d] (rotate-half layout), computed in f32."""
    freqs = positions.to(torch.float32).unsqueeze(-1) * inv_freq  # [B, T, d/2]
    emb = torch.cat((freqs, freqs), dim=-1).unsqueeze(1)
    return emb.cos(), emb.sin()


def apply_rope(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
    return x * cos + rotate_half(x) * sin


class RMSNorm(nn.Module):
    def __init__(self, dim: int, eps: float):
        super().__init__()
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * torch.rsqrt(x.pow(2).mean(dim=-1, keepdim=True) + self.eps) * self.weight


class GQAttention(nn.Module):
    """Llama-style grouped-query self-attention with rotary embeddings and a KV cache (``{q,k,v,o}_proj``, the
    Hugging Face names). ``keep_last_probs`` (set by the exporter of the decoder's attention output) keeps the last
    query's weights averaged over heads, [B, P+S]."""

    def __init__(self, hidden: int, heads: int, kv_heads: int, head_size: int, qkv_bias: bool = False, o_bias: bool = False):
        super().__init__()
        assert heads % kv_heads == 0
        self.heads, self.kv_heads, self.head_size = heads, kv_heads, head_size
        self.group = heads // kv_heads
        self.q_proj = nn.Linear(hidden, heads * head_size, bias=qkv_bias)
        self.k_proj = nn.Linear(hidden, kv_heads * head_size, bias=qkv_bias)
        self.v_proj = nn.Linear(hidden, kv_heads * head_size, bias=qkv_bias)
        self.o_proj = nn.Linear(heads * head_size, hidden, bias=o_bias)
        self.keep_last_probs = False
        self.last_probs: Optional[torch.Tensor] = None

    def forward(self, x, cos, sin, bias, past_k, past_v):
        B, S = x.shape[0], x.shape[1]
        q = self.q_proj(x).reshape(B, S, self.heads, self.head_size).transpose(1, 2)  # [B, H, S, d]
        k = self.k_proj(x).reshape(B, S, self.kv_heads, self.head_size).transpose(1, 2)  # [B, KV, S, d]
        v = self.v_proj(x).reshape(B, S, self.kv_heads, self.head_size).transpose(1, 2)
        q, k = apply_rope(q, cos, sin), apply_rope(k, cos, sin)
        k = torch.cat((past_k, k), dim=2)  # [B, KV, P+S, d]  (P may be 0)
        v = torch.cat((past_v, v), dim=2)
        # grouped-query attention without materialising repeated K/V: [B, KV, G, S, d] x [B, KV, 1, d, T]
        qg = q.reshape(B, self.kv_heads, self.group, S, self.head_size)
        scores = torch.matmul(qg, k.unsqueeze(2).transpose(-1, -2)) * (1.0 / math.sqrt(self.head_size))
        scores = scores + bias.unsqueeze(1)  # bias [B, 1, S, T] -> [B, 1, 1, S, T]
        probs = torch.softmax(scores, dim=-1)
        if self.keep_last_probs:
            self.last_probs = probs[:, :, :, -1, :].mean(dim=(1, 2))
        out = torch.matmul(probs, v.unsqueeze(2))  # [B, KV, G, S, d]
        out = out.reshape(B, self.heads, S, self.head_size).transpose(1, 2).reshape(B, S, self.heads * self.head_size)
        return self.o_proj(out), k, v


class PMA(nn.Module):
    """Pooling by multi-head attention with a single learned query (Set Transformer, E2LLM v2): the query attends
    over all non-pad token states, then residual + LayerNorm + FFN. One class for both stacks, so adapter and
    encoder files are interchangeable."""

    def __init__(self, hidden: int, heads: int, ffn: int, eps: float, neg: float):
        super().__init__()
        assert hidden % heads == 0
        self.heads = heads
        self.head_size = hidden // heads
        self.neg = neg
        self.query = nn.Parameter(torch.zeros(1, 1, hidden))
        self.q = nn.Linear(hidden, hidden)
        self.k = nn.Linear(hidden, hidden)
        self.v = nn.Linear(hidden, hidden)
        self.o = nn.Linear(hidden, hidden)
        self.ln1 = nn.LayerNorm(hidden, eps=eps)
        self.ffn = nn.Sequential(nn.Linear(hidden, ffn), nn.GELU(), nn.Linear(ffn, hidden))
        self.ln2 = nn.LayerNorm(hidden, eps=eps)

    def forward(self, h: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        B, T = h.shape[0], h.shape[1]
        q = self.q(self.query).reshape(1, 1, self.heads, self.head_size).transpose(1, 2)  # [1, H, 1, d]
        k = self.k(h).reshape(B, T, self.heads, self.head_size).transpose(1, 2)  # [B, H, T, d]
        v = self.v(h).reshape(B, T, self.heads, self.head_size).transpose(1, 2)
        scores = torch.matmul(q, k.transpose(-1, -2)) * (1.0 / math.sqrt(self.head_size))  # [B, H, 1, T]
        scores = scores + padding_bias(attention_mask, self.neg)
        att = torch.matmul(torch.softmax(scores, dim=-1), v)  # [B, H, 1, d]
        att = att.transpose(1, 2).reshape(B, 1, self.heads * self.head_size)
        x = self.ln1(self.query + self.o(att))  # [B, 1, D]
        x = self.ln2(x + self.ffn(x))
        return x[:, 0, :]
