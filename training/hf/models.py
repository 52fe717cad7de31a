"""PyTorch modules for Hugging Face-format encoders and decoders, named so that the checkpoints' tensor
names load directly (no transformers package).

Encoders (``load_encoder``):
* BERT family (``BertModel``: BERT, BGE, GTE v1): learned absolute positions, token types, post-LN.
* GTE v1.5 (``NewModel``, model_type ``new``): no absolute positions, rotary embeddings (optionally NTK-scaled),
  fused ``qkv_proj``, ``o_proj``, gated MLP ``up_gate_proj`` (first half up, second half gate) + ``down_proj``,
  post-LN ``attn_ln`` / ``mlp_ln``.
Pooling (``cls`` | ``mean`` | ``pma``) is part of the exported encoder graph.

Decoders (``load_decoder``): Llama and Qwen2 (``model.embed_tokens``, ``model.layers.N.self_attn.{q,k,v,o}_proj``
(Qwen2: q/k/v with bias), ``mlp.{gate,up,down}_proj``, RMSNorms, ``model.norm``, ``lm_head`` or tied embeddings,
grouped-query attention, ``rope_theta``). Their forward is the decoder.onnx contract (docs/model-package.md):
``(inputs_embeds, attention_mask [B,P+S], position_ids, past k0, v0, ...) -> (logits of the last position,
present k0, v0, ...)`` with the causal + padding mask built in-graph, as ``training.e2llm.modules.LlamaDecoder``.

Module names matter for the f16 export: nodes under a module whose name ends in ``norm``/``LayerNorm``/``_ln`` or
is ``rotary_emb``, and every Softmax, stay in f32 (``onnx_f16.py``).
"""
from __future__ import annotations

import contextlib
import json
import math
import os
import re
from dataclasses import dataclass
from typing import Dict, List, Optional, Tuple

import torch
from torch import nn

from training.e2llm.modules import MLPAdapter
from training import layers
from training.layers import GQAttention, RMSNorm, apply_rope, causal_bias, padding_bias, rope_tables

from . import checkpoint as ck

NEG = -30000.0  # finite and representable in f16: masked scores vanish in softmax, rows never become NaN


def _act(name: str) -> nn.Module:
    name = (name or "gelu").lower()
    if name == "gelu":
        return nn.GELU()
    if name in ("gelu_new", "gelu_pytorch_tanh", "gelu_fast"):
        return nn.GELU(approximate="tanh")
    if name in ("silu", "swish"):
        return nn.SiLU()
    if name == "relu":
        return nn.ReLU()
    raise ValueError(f"unsupported hidden_act {name!r}")


def rope_inv_freq(dim: int, theta: float, scaling: Optional[dict]) -> torch.Tensor:
    """Inverse frequencies; ``rope_scaling`` types: none, linear, ntk (GTE v1.5's fixed NTK scaling)."""
    exps = torch.arange(0, dim, 2, dtype=torch.float64) / dim
    if not scaling:
        return (1.0 / theta ** exps).float()
    kind = scaling.get("type", scaling.get("rope_type"))
    factor = float(scaling.get("factor", 1.0))
    if kind == "linear":
        return (1.0 / theta ** exps / factor).float()
    if kind == "ntk":
        return (1.0 / (theta * factor) ** exps / factor ** (2.0 / dim)).float()
    if kind == "default":
        return (1.0 / theta ** exps).float()
    raise NotImplementedError(f"rope_scaling type {kind!r} is not supported (supported: linear, ntk)")


class RotaryEmbedding(nn.Module):
    """position_ids [B, S] -> cos, sin [B, 1, S, dim] (rotate-half layout), computed in f32."""

    def __init__(self, dim: int, theta: float, scaling: Optional[dict] = None):
        super().__init__()
        self.register_buffer("inv_freq", rope_inv_freq(dim, theta, scaling), persistent=False)

    def forward(self, position_ids: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
        return rope_tables(position_ids, self.inv_freq)


# ----------------------------------------------------------------------------------------------
# Encoders
# ----------------------------------------------------------------------------------------------

@dataclass
class EncoderSpec:
    arch: str  # bert | new
    vocab_size: int
    hidden: int
    layers: int
    heads: int
    ffn: int
    max_positions: int
    type_vocab_size: int
    eps: float
    act: str
    rope_theta: float = 10000.0
    rope_scaling: Optional[dict] = None
    position_offset: int = 0

    @classmethod
    def from_config(cls, c: dict) -> "EncoderSpec":
        mt = c.get("model_type", "bert")
        archs = c.get("architectures") or []
        arch = "new" if mt == "new" or any(a.startswith("New") for a in archs) else "bert"
        if arch == "bert" and mt not in ("bert", "roberta", "xlm-roberta"):
            raise NotImplementedError(f"encoder model_type {mt!r} (supported: bert, roberta, xlm-roberta, new)")
        if arch == "bert" and c.get("position_embedding_type", "absolute") != "absolute":
            raise NotImplementedError(f"BERT position_embedding_type {c.get('position_embedding_type')!r}")
        if arch == "new":
            if c.get("logn_attention_scale") or c.get("layer_norm_type", "layer_norm") != "layer_norm":
                raise NotImplementedError("GTE NewModel with logn_attention_scale or RMS layer norm is not supported")
            if c.get("position_embedding_type", "rope") != "rope":
                raise NotImplementedError("GTE NewModel without rope is not supported")
        return cls(
            arch=arch, vocab_size=c["vocab_size"], hidden=c["hidden_size"], layers=c["num_hidden_layers"],
            heads=c["num_attention_heads"], ffn=c["intermediate_size"],
            max_positions=c.get("max_position_embeddings", 512), type_vocab_size=c.get("type_vocab_size", 0) or 0,
            eps=c.get("layer_norm_eps", 1e-12), act=c.get("hidden_act", "gelu"),
            rope_theta=float(c.get("rope_theta", 10000.0)), rope_scaling=c.get("rope_scaling"),
            # RoBERTa / XLM-R number real tokens from padding_idx + 1 (right padding: the same for every chunk)
            position_offset=(c.get("pad_token_id", 1) + 1) if mt in ("roberta", "xlm-roberta") else 0,
        )


def _heads(x: torch.Tensor, heads: int) -> torch.Tensor:  # [B, T, H*d] -> [B, H, T, d]
    return x.reshape(x.shape[0], x.shape[1], heads, -1).transpose(1, 2)


def _attend(q, k, v, bias) -> torch.Tensor:  # [B,H,T,d] x3 -> [B,T,H*d]
    scores = torch.matmul(q, k.transpose(-1, -2)) * (1.0 / math.sqrt(q.shape[-1])) + bias
    out = torch.matmul(torch.softmax(scores, dim=-1), v)
    return out.transpose(1, 2).reshape(out.shape[0], out.shape[2], out.shape[1] * out.shape[3])


class BertSelfAttention(nn.Module):
    def __init__(self, s: EncoderSpec):
        super().__init__()
        self.heads = s.heads
        self.query = nn.Linear(s.hidden, s.hidden)
        self.key = nn.Linear(s.hidden, s.hidden)
        self.value = nn.Linear(s.hidden, s.hidden)

    def forward(self, x, bias):
        return _attend(_heads(self.query(x), self.heads), _heads(self.key(x), self.heads),
                       _heads(self.value(x), self.heads), bias)


class BertDenseLN(nn.Module):
    def __init__(self, d_in: int, d_out: int, eps: float):
        super().__init__()
        self.dense = nn.Linear(d_in, d_out)
        self.LayerNorm = nn.LayerNorm(d_out, eps=eps)

    def forward(self, h, residual):
        return self.LayerNorm(self.dense(h) + residual)


class BertAttention(nn.Module):
    def __init__(self, s: EncoderSpec):
        super().__init__()
        self.add_module("self", BertSelfAttention(s))  # HF name: attention.self.query ...
        self.output = BertDenseLN(s.hidden, s.hidden, s.eps)

    def forward(self, x, bias):
        return self.output(self._modules["self"](x, bias), x)


class BertIntermediate(nn.Module):
    def __init__(self, s: EncoderSpec):
        super().__init__()
        self.dense = nn.Linear(s.hidden, s.ffn)
        self.act = _act(s.act)

    def forward(self, x):
        return self.act(self.dense(x))


class BertLayer(nn.Module):
    def __init__(self, s: EncoderSpec):
        super().__init__()
        self.attention = BertAttention(s)
        self.intermediate = BertIntermediate(s)
        self.output = BertDenseLN(s.ffn, s.hidden, s.eps)

    def forward(self, x, bias):
        a = self.attention(x, bias)
        return self.output(self.intermediate(a), a)


class BertEmbeddings(nn.Module):
    def __init__(self, s: EncoderSpec):
        super().__init__()
        self.word_embeddings = nn.Embedding(s.vocab_size, s.hidden)
        self.position_embeddings = nn.Embedding(s.max_positions, s.hidden)
        self.token_type_embeddings = nn.Embedding(max(1, s.type_vocab_size), s.hidden)
        self.LayerNorm = nn.LayerNorm(s.hidden, eps=s.eps)
        self.position_offset = s.position_offset

    def forward(self, input_ids):
        positions = torch.cumsum(torch.ones_like(input_ids), dim=1) - 1 + self.position_offset
        x = self.word_embeddings(input_ids) + self.position_embeddings(positions) + self.token_type_embeddings.weight[0]
        return self.LayerNorm(x)


class _Layers(nn.Module):
    def __init__(self, layers: List[nn.Module]):
        super().__init__()
        self.layer = nn.ModuleList(layers)


class BertBackbone(nn.Module):
    """BertModel without the pooler: token states [B, T, hidden]."""

    def __init__(self, s: EncoderSpec):
        super().__init__()
        self.spec = s
        self.embeddings = BertEmbeddings(s)
        self.encoder = _Layers([BertLayer(s) for _ in range(s.layers)])

    def forward(self, input_ids, attention_mask):
        x = self.embeddings(input_ids)
        bias = padding_bias(attention_mask, NEG)
        for layer in self.encoder.layer:
            x = layer(x, bias)
        return x


class NewEmbeddings(nn.Module):
    def __init__(self, s: EncoderSpec):
        super().__init__()
        self.word_embeddings = nn.Embedding(s.vocab_size, s.hidden)
        self.token_type_embeddings = nn.Embedding(s.type_vocab_size, s.hidden) if s.type_vocab_size > 0 else None
        self.LayerNorm = nn.LayerNorm(s.hidden, eps=s.eps)

    def forward(self, input_ids):
        x = self.word_embeddings(input_ids)
        if self.token_type_embeddings is not None:
            x = x + self.token_type_embeddings.weight[0]
        return self.LayerNorm(x)


class NewAttention(nn.Module):
    def __init__(self, s: EncoderSpec):
        super().__init__()
        self.heads = s.heads
        self.qkv_proj = nn.Linear(s.hidden, 3 * s.hidden)
        self.o_proj = nn.Linear(s.hidden, s.hidden)

    def forward(self, x, bias, cos, sin):
        B, T = x.shape[0], x.shape[1]
        qkv = self.qkv_proj(x).reshape(B, T, 3, self.heads, -1)
        q, k, v = (qkv[:, :, i].transpose(1, 2) for i in range(3))  # [B, H, T, d]
        return self.o_proj(_attend(apply_rope(q, cos, sin), apply_rope(k, cos, sin), v, bias))


class NewGatedMLP(nn.Module):
    def __init__(self, s: EncoderSpec):
        super().__init__()
        self.ffn = s.ffn
        self.up_gate_proj = nn.Linear(s.hidden, 2 * s.ffn, bias=False)
        self.down_proj = nn.Linear(s.ffn, s.hidden)
        self.act = _act(s.act)

    def forward(self, x):
        ug = self.up_gate_proj(x)
        return self.down_proj(ug[..., : self.ffn] * self.act(ug[..., self.ffn:]))


class NewLayer(nn.Module):
    def __init__(self, s: EncoderSpec):
        super().__init__()
        self.attention = NewAttention(s)
        self.attn_ln = nn.LayerNorm(s.hidden, eps=s.eps)
        self.mlp = NewGatedMLP(s)
        self.mlp_ln = nn.LayerNorm(s.hidden, eps=s.eps)

    def forward(self, x, bias, cos, sin):
        x = self.attn_ln(x + self.attention(x, bias, cos, sin))
        return self.mlp_ln(x + self.mlp(x))


class NewBackbone(nn.Module):
    """GTE v1.5 (``NewModel``) without the pooler."""

    def __init__(self, s: EncoderSpec):
        super().__init__()
        self.spec = s
        self.embeddings = NewEmbeddings(s)
        self.rotary_emb = RotaryEmbedding(s.hidden // s.heads, s.rope_theta, s.rope_scaling)
        self.encoder = _Layers([NewLayer(s) for _ in range(s.layers)])

    def forward(self, input_ids, attention_mask):
        x = self.embeddings(input_ids)
        cos, sin = self.rotary_emb(torch.cumsum(torch.ones_like(input_ids), dim=1) - 1)
        bias = padding_bias(attention_mask, NEG)
        for layer in self.encoder.layer:
            x = layer(x, bias, cos, sin)
        return x


class PMA(layers.PMA):
    """``training.layers.PMA`` (the class ``training.e2llm.modules`` uses too: adapter files are interchangeable)
    with the f16-safe mask constant."""

    def __init__(self, hidden: int, heads: int, ffn: int, eps: float):
        super().__init__(hidden, heads, ffn, eps, NEG)


class PooledEncoder(nn.Module):
    """Backbone + pooling: (input_ids, attention_mask) int64 [B, T] -> chunk_embeddings [B, hidden]."""

    def __init__(self, backbone: nn.Module, pooling: str, pma: Optional[PMA] = None):
        super().__init__()
        if pooling not in ("cls", "mean", "pma"):
            raise ValueError(f"unknown pooling {pooling!r}")
        if (pooling == "pma") != (pma is not None):
            raise ValueError("pooling 'pma' needs PMA weights (and only then)")
        self.backbone = backbone
        self.pooling = pooling
        self.pma = pma

    @property
    def width(self) -> int:
        return self.backbone.spec.hidden

    def forward(self, input_ids, attention_mask):
        h = self.backbone(input_ids, attention_mask)
        if self.pooling == "cls":
            return h[:, 0, :]
        if self.pooling == "mean":
            m = attention_mask.to(h.dtype).unsqueeze(-1)
            return (h * m).sum(dim=1) / torch.clamp(m.sum(dim=1), min=1.0)
        return self.pma(h, attention_mask)


# ----------------------------------------------------------------------------------------------
# Decoders
# ----------------------------------------------------------------------------------------------

@dataclass
class DecoderSpec:
    arch: str  # llama | qwen2
    vocab_size: int
    hidden: int
    layers: int
    heads: int
    kv_heads: int
    head_size: int
    ffn: int
    window: int
    rope_theta: float
    rms_eps: float
    qkv_bias: bool
    o_bias: bool
    mlp_bias: bool
    tied: bool
    act: str = "silu"
    rope_scaling: Optional[dict] = None

    @classmethod
    def from_config(cls, c: dict) -> "DecoderSpec":
        mt = c.get("model_type", "llama")
        if mt not in ("llama", "qwen2", "mistral"):
            raise NotImplementedError(f"decoder model_type {mt!r} (supported: llama, qwen2, mistral)")
        heads = c["num_attention_heads"]
        attn_bias = bool(c.get("attention_bias", False))
        return cls(
            arch=mt, vocab_size=c["vocab_size"], hidden=c["hidden_size"], layers=c["num_hidden_layers"], heads=heads,
            kv_heads=c.get("num_key_value_heads") or heads, head_size=c.get("head_dim") or c["hidden_size"] // heads,
            ffn=c["intermediate_size"], window=c.get("max_position_embeddings", 4096),
            rope_theta=float(c.get("rope_theta", 10000.0)), rms_eps=float(c.get("rms_norm_eps", 1e-6)),
            qkv_bias=True if mt == "qwen2" else attn_bias, o_bias=attn_bias and mt != "qwen2",
            mlp_bias=bool(c.get("mlp_bias", False)),
            tied=bool(c.get("tie_word_embeddings", False)), act=c.get("hidden_act", "silu"),
            rope_scaling=c.get("rope_scaling"),
        )


class DecMLP(nn.Module):
    def __init__(self, s: DecoderSpec):
        super().__init__()
        self.gate_proj = nn.Linear(s.hidden, s.ffn, bias=s.mlp_bias)
        self.up_proj = nn.Linear(s.hidden, s.ffn, bias=s.mlp_bias)
        self.down_proj = nn.Linear(s.ffn, s.hidden, bias=s.mlp_bias)
        self.act = _act(s.act)

    def forward(self, x):
        return self.down_proj(self.act(self.gate_proj(x)) * self.up_proj(x))


class DecLayer(nn.Module):
    def __init__(self, s: DecoderSpec):
        super().__init__()
        self.input_layernorm = RMSNorm(s.hidden, s.rms_eps)
        self.self_attn = GQAttention(s.hidden, s.heads, s.kv_heads, s.head_size, s.qkv_bias, s.o_bias)
        self.post_attention_layernorm = RMSNorm(s.hidden, s.rms_eps)
        self.mlp = DecMLP(s)

    def forward(self, x, cos, sin, bias, past_k, past_v):
        a, k, v = self.self_attn(self.input_layernorm(x), cos, sin, bias, past_k, past_v)
        x = x + a
        return x + self.mlp(self.post_attention_layernorm(x)), k, v


class DecModel(nn.Module):
    def __init__(self, s: DecoderSpec):
        super().__init__()
        self.embed_tokens = nn.Embedding(s.vocab_size, s.hidden)
        self.layers = nn.ModuleList(DecLayer(s) for _ in range(s.layers))
        self.norm = RMSNorm(s.hidden, s.rms_eps)
        self.rotary_emb = RotaryEmbedding(s.head_size, s.rope_theta, s.rope_scaling)


class HFDecoder(nn.Module):
    """Llama / Qwen2 causal LM with the decoder.onnx forward."""

    def __init__(self, s: DecoderSpec):
        super().__init__()
        self.spec = s
        self.model = DecModel(s)
        self.lm_head = None if s.tied else nn.Linear(s.hidden, s.vocab_size, bias=False)

    @property
    def embed_tokens(self) -> nn.Embedding:
        return self.model.embed_tokens

    def empty_past(self, batch: int = 1) -> List[torch.Tensor]:
        s = self.spec
        w = self.model.embed_tokens.weight
        return [torch.zeros(batch, s.kv_heads, 0, s.head_size, dtype=w.dtype, device=w.device)
                for _ in range(2 * s.layers)]

    def logits(self, h: torch.Tensor) -> torch.Tensor:
        if self.lm_head is None:
            return torch.matmul(h, self.model.embed_tokens.weight.transpose(0, 1))
        return self.lm_head(h)

    def states(self, inputs_embeds, attention_mask, position_ids, past):
        cos, sin = self.model.rotary_emb(position_ids)
        bias = causal_bias(attention_mask, position_ids, NEG)
        x = inputs_embeds
        presents: List[torch.Tensor] = []
        for i, layer in enumerate(self.model.layers):
            x, k, v = layer(x, cos, sin, bias, past[2 * i], past[2 * i + 1])
            presents += [k, v]
        return x, presents

    def forward(self, inputs_embeds, attention_mask, position_ids, *past):
        assert len(past) == 2 * self.spec.layers
        x, presents = self.states(inputs_embeds, attention_mask, position_ids, past)
        h = self.model.norm(x[:, -1, :]).unsqueeze(1)
        return (self.logits(h), *presents)

    def all_logits(self, inputs_embeds, attention_mask, position_ids) -> torch.Tensor:
        """Training: logits of every position [B, S, V] with an empty past."""
        x, _ = self.states(inputs_embeds, attention_mask, position_ids, self.empty_past(inputs_embeds.shape[0]))
        return self.logits(self.model.norm(x))


# ----------------------------------------------------------------------------------------------
# Loading
# ----------------------------------------------------------------------------------------------

_IGNORED = re.compile(r"(rotary_emb\.inv_freq|embeddings\.position_ids|^pooler\.|\.pooler\.|^cls\.|^lm_head\.weight$)")


@contextlib.contextmanager
def no_init():
    """Build modules without running their random init (7B parameters take minutes to initialise and touch
    every page); the checkpoint's tensors replace the parameters right after."""
    saved = [(c, c.reset_parameters) for c in (nn.Linear, nn.Embedding, nn.LayerNorm)]
    try:
        for c, _ in saved:
            c.reset_parameters = lambda self: None
        yield
    finally:
        for c, f in saved:
            c.reset_parameters = f


def _load_strict(module: nn.Module, sd: Dict[str, torch.Tensor], what: str, ignore=_IGNORED) -> None:
    """Check names and shapes, then make the checkpoint tensors the module's parameters (no copy)."""
    own = module.state_dict()
    missing = [k for k in own if k not in sd]
    unexpected = [k for k in sd if k not in own and not ignore.search(k)]
    if missing or unexpected:
        raise ValueError(f"{what}: checkpoint does not match the architecture; missing {missing[:6]}"
                         f"{' ...' if len(missing) > 6 else ''}, unexpected {unexpected[:6]}")
    for k, v in own.items():
        if tuple(sd[k].shape) != tuple(v.shape):
            raise ValueError(f"{what}: {k} has shape {tuple(sd[k].shape)}, config says {tuple(v.shape)}")
    params = dict(module.named_parameters())
    with torch.no_grad():
        for k, v in own.items():
            t = sd[k].to(v.dtype).contiguous()
            if k in params:
                params[k].data = t
            else:
                v.copy_(t)


def _strip_encoder_prefix(sd: Dict[str, torch.Tensor]) -> Dict[str, torch.Tensor]:
    for p in ("bert.", "new.", "model.", "roberta."):
        if any(k.startswith(p + "embeddings.") for k in sd):
            return {k[len(p):]: v for k, v in sd.items() if k.startswith(p)}
    return dict(sd)


def encoder_pooling_default(folder: str) -> str:
    """sentence-transformers' 1_Pooling/config.json if present (mean or cls), else cls."""
    p = os.path.join(folder, "1_Pooling", "config.json")
    if os.path.exists(p):
        with open(p) as f:
            c = json.load(f)
        if c.get("pooling_mode_mean_tokens"):
            return "mean"
    return "cls"


def load_encoder(folder: str, pooling: Optional[str] = None, pma_state: Optional[Dict[str, torch.Tensor]] = None
                 ) -> PooledEncoder:
    cfg = ck.read_config(folder)
    spec = EncoderSpec.from_config(cfg)
    with no_init():
        backbone = BertBackbone(spec) if spec.arch == "bert" else NewBackbone(spec)
    sd = _strip_encoder_prefix(ck.load_weights(folder))
    if spec.arch == "bert" and "embeddings.token_type_embeddings.weight" not in sd:
        sd["embeddings.token_type_embeddings.weight"] = torch.zeros(1, spec.hidden)
    _load_strict(backbone, sd, f"encoder {folder}")
    pma = None
    if pma_state:
        pooling = "pma"
        heads = int(pma_state.pop("heads", torch.tensor(4)).item()) if "heads" in pma_state else 4
        ffn = pma_state["ffn.0.weight"].shape[0]
        pma = PMA(spec.hidden, heads, ffn, spec.eps)
        pma.load_state_dict(pma_state)
    pooling = pooling or encoder_pooling_default(folder)
    if pooling == "pma" and pma is None:
        raise ValueError("pooling pma needs PMA weights in the adapter file (keys pma.*)")
    return PooledEncoder(backbone, pooling, pma).eval()


def load_decoder(folder: str) -> HFDecoder:
    cfg = ck.read_config(folder)
    spec = DecoderSpec.from_config(cfg)
    sd = ck.load_weights(folder)
    if "lm_head.weight" not in sd and not spec.tied:
        spec.tied = True  # some checkpoints omit lm_head when it equals the embeddings
    with no_init():
        dec = HFDecoder(spec)
    ignore = re.compile(r"(rotary_emb\.inv_freq|^lm_head\.weight$)" if spec.tied else r"(rotary_emb\.inv_freq)")
    _load_strict(dec, sd, f"decoder {folder}", ignore)
    return dec.eval()


# ----------------------------------------------------------------------------------------------
# Adapter
# ----------------------------------------------------------------------------------------------

def load_adapter_file(path: str) -> Tuple[Dict[str, torch.Tensor], Dict[str, torch.Tensor]]:
    """An E2LLM adapter file -> (MLP adapter state: fc1/fc2, PMA state or {}).
    Accepted: .safetensors, or a torch file holding a state_dict; keys ``fc1.*``/``fc2.*`` (optionally under
    ``adapter.``) and, for a PMA (paper v2) adapter, ``pma.*`` (or ``encoder.pma.*``)."""
    if path.endswith(".safetensors"):
        from .safetensors import load_file
        sd = load_file(path)
    else:
        sd = torch.load(path, map_location="cpu")
        if isinstance(sd, dict) and "model" in sd and isinstance(sd["model"], dict):
            sd = sd["model"]
    mlp, pma = {}, {}
    for k, v in sd.items():
        for p in ("adapter.", ""):
            if k.startswith(p + "fc1.") or k.startswith(p + "fc2."):
                mlp[k[len(p):]] = v.float()
                break
        for p in ("encoder.pma.", "pma."):
            if k.startswith(p):
                pma[k[len(p):]] = v.float()
                break
    if set(mlp) != {"fc1.weight", "fc1.bias", "fc2.weight", "fc2.bias"}:
        raise ValueError(f"{path}: expected adapter keys fc1.weight, fc1.bias, fc2.weight, fc2.bias; got {sorted(sd)[:8]}")
    return mlp, pma


def build_adapter(width: int, hidden: int, state: Optional[Dict[str, torch.Tensor]] = None, seed: int = 0) -> MLPAdapter:
    inner = state["fc1.weight"].shape[0] if state else hidden
    a = MLPAdapter(width, hidden, inner)
    if state:
        a.load_state_dict(state)
    else:
        g = torch.Generator().manual_seed(seed)
        with torch.no_grad():
            for lin in (a.fc1, a.fc2):
                lin.weight.copy_(torch.randn(lin.weight.shape, generator=g) * lin.weight.shape[1] ** -0.5)
                lin.bias.zero_()
    return a.eval()


class HFE2LLM(nn.Module):
    """Encoder + adapter + decoder, the objects the exporter and the fine-tuner work on."""

    def __init__(self, encoder: PooledEncoder, adapter: MLPAdapter, decoder: HFDecoder):
        super().__init__()
        self.encoder = encoder
        self.adapter = adapter
        self.decoder = decoder

    def soft_tokens(self, input_ids, attention_mask):
        return self.adapter(self.encoder(input_ids, attention_mask))
