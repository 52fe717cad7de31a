"""Batches as the runtime lays them out: prompt, soft tokens (or an expanded chunk's own tokens), question, answer;
the haystack bank that pads documents to long-context lengths; the all-position decoder forward."""
from __future__ import annotations

import math
import random
import re
from typing import List, Optional, Sequence, Tuple

import torch

from .modules import E2LLM, pad_batch
from .tokenizer import BOS_ID, CLS_ID, EOS_ID, PAD_ID, ByteLevelBPETokenizer
from .data.tasks import Sample

class ChunkIds:
    """Tokenizer with a bounded cache (haystack chunks recur)."""

    def __init__(self, tok: ByteLevelBPETokenizer, max_tokens: int, cap: int = 200_000):
        self.tok, self.max_tokens, self.cap, self.cache = tok, max_tokens, cap, {}

    def encode(self, text: str) -> List[int]:
        ids = self.cache.get(text)
        if ids is None:
            ids = self.tok.encode(text)
            if len(self.cache) < self.cap:
                self.cache[text] = ids
        return ids

    def chunk(self, text: str) -> List[int]:
        return [CLS_ID] + self.encode(text)[: self.max_tokens - 1]


def encode_chunks(model: E2LLM, ids: ChunkIds, texts: Sequence[str], device) -> Tuple[List[List[int]], torch.Tensor]:
    """-> (each chunk's encoder ids, chunk embeddings [N,H]): the chunks as one padded encoder batch."""
    enc_ids = [ids.chunk(c) for c in texts]
    ii, mm = pad_batch(enc_ids, PAD_ID)
    return enc_ids, model.encoder(ii.to(device), mm.to(device))


def context_block(E: torch.Tensor, soft: torch.Tensor, ids: ChunkIds, s: Sample) -> torch.Tensor:
    """The document's positions: one soft token per chunk, except the chunks in ``s.expand``, which the decoder
    reads as their own token embeddings in their place (selective expansion; data/expansion.py)."""
    if not s.expand:
        return soft
    parts, expand = [], set(s.expand)
    for j, text in enumerate(s.chunks):
        if j in expand:
            parts.append(E[torch.tensor(ids.encode(text) or [PAD_ID], dtype=torch.long, device=E.device)])
        else:
            parts.append(soft[j: j + 1])
    return torch.cat(parts, dim=0)


def build_batch(model: E2LLM, ids: ChunkIds, samples: Sequence[Sample], device, recon_weight: float,
                max_answer_tokens: int = 192, extras: Optional[Sequence[Optional[Tuple[int, torch.Tensor]]]] = None):
    """-> (x [B,L,D], attn [B,L], labels [B,L] (-100 = no loss), weights [B,L], soft [N,D], chunk_emb [N,H]).

    ``extras[i]`` = (k, soft tokens [K,D]): sample i's document is padded with K more haystack soft tokens, its own
    chunks put as one block after the first k of them (the haystack bank, below)."""
    enc_ids, chunk_emb = encode_chunks(model, ids, [c for s in samples for c in s.chunks], device)
    soft = model.adapter(chunk_emb)
    E = model.decoder.embed_tokens.weight
    seqs, labs, wts = [], [], []
    off = 0
    for s in samples:
        prefix, suffix = s.prompt()
        p_ids = [BOS_ID] + ids.encode(prefix)
        s_ids = ids.encode(suffix)
        a_ids = ids.encode(s.answer)[:max_answer_tokens] + [EOS_ID]
        tok_in = torch.tensor(p_ids + s_ids + a_ids[:-1], dtype=torch.long, device=device)
        emb = E[tok_in]
        P, S = len(p_ids), len(s_ids)
        block = context_block(E, soft[off: off + len(s.chunks)], ids, s)
        off += len(s.chunks)
        n = block.shape[0]
        ex = extras[len(seqs)] if extras is not None else None
        if ex is not None:
            k, pad = ex
            block = torch.cat([pad[:k], block, pad[k:]], dim=0)
            n += pad.shape[0]
        x = torch.cat([emb[:P], block, emb[P:]], dim=0)
        L = x.shape[0]
        lab = torch.full((L,), -100, dtype=torch.long)
        # position t predicts token t+1; answer token k sits at position P+n+S+k
        first = P + n + S - 1
        lab[first: first + len(a_ids)] = torch.tensor(a_ids, dtype=torch.long)
        w = torch.zeros(L)
        w[first: first + len(a_ids)] = recon_weight if s.template == "reconstruct" else 1.0
        seqs.append(x)
        labs.append(lab)
        wts.append(w)
    Lmax = max(x.shape[0] for x in seqs)
    D = E.shape[1]
    X = torch.zeros(len(seqs), Lmax, D, device=device)
    A = torch.zeros(len(seqs), Lmax, dtype=torch.long, device=device)
    Y = torch.full((len(seqs), Lmax), -100, dtype=torch.long, device=device)
    W = torch.zeros(len(seqs), Lmax, device=device)
    for i, (x, l, w) in enumerate(zip(seqs, labs, wts)):
        X[i, : x.shape[0]] = x
        A[i, : x.shape[0]] = 1
        Y[i, : x.shape[0]] = l.to(device)
        W[i, : x.shape[0]] = w.to(device)
    return X, A, Y, W, soft, chunk_emb, enc_ids


# sentences the generators insert into haystacks: chunks holding one never go into the haystack bank
INSERTED = re.compile(r"special magic|VAR [A-Z]{5} =|The (?:favourite colour|home town|pet|instrument) of ")


class HaystackBank:
    """Recent chunk embeddings (detached) of plain haystack chunks, by kind (noise | prose). A stage with
    ``pad_chunks: [lo, hi]`` pads each haystack document with bank entries up to a log-uniform total of lo..hi
    soft tokens, so the decoder learns to find a needle among as many chunks as a 32k-128k document has,
    without encoding them all at every step (the encoder sees the real chunks; the bank is at most a few
    hundred steps stale)."""

    def __init__(self, size: int, hidden: int, device):
        self.size = size
        self.buf = {k: torch.zeros(size, hidden, device=device) for k in ("noise", "prose")}
        self.count = {k: 0 for k in self.buf}

    def add(self, kind: str, rows: torch.Tensor) -> None:
        for r in rows.detach():
            self.buf[kind][self.count[kind] % self.size] = r
            self.count[kind] += 1

    def ready(self, kind: str) -> bool:
        return self.count.get(kind, 0) >= 64

    def draw(self, kind: str, k: int, rng: random.Random) -> torch.Tensor:
        n = min(self.count[kind], self.size)
        idx = torch.tensor([rng.randrange(n) for _ in range(k)], dtype=torch.long, device=self.buf[kind].device)
        return self.buf[kind][idx]


def fill_bank(bank: HaystackBank, samples: Sequence[Sample], chunk_emb: torch.Tensor) -> None:
    off = 0
    for s in samples:
        kind = "prose" if s.template == "reconstruct" else s.hay
        for j, c in enumerate(s.chunks):
            if kind in ("noise", "prose") and not INSERTED.search(c):
                bank.add(kind, chunk_emb[off + j: off + j + 1])
        off += len(s.chunks)


def bank_extras(model: E2LLM, bank: HaystackBank, samples: Sequence[Sample], pad: Sequence[int], rng: random.Random):
    """Per sample: None, or (where its chunks go, adapter(bank entries)) padding it to a log-uniform total. The
    total is drawn once per batch: a batch is padded to its longest document, so with a total per sample nearly every
    batch cost the longest of its draws (the v2 run's last stage averaged 706 decoder positions a batch)."""
    out = []
    lo, hi = pad
    total = int(round(math.exp(rng.uniform(math.log(lo), math.log(hi)))))
    for s in samples:
        if s.hay not in ("noise", "prose") or not bank.ready(s.hay) or len(s.expand) == len(s.chunks):
            out.append(None)
            continue
        k = total - len(s.chunks)
        if k <= 0:
            out.append(None)
            continue
        out.append((rng.randint(0, k), model.adapter(bank.draw(s.hay, k, rng))))
    return out


def decoder_hidden(dec, x: torch.Tensor, attn: torch.Tensor) -> torch.Tensor:
    """All-position final hidden states (the ONNX forward returns the last position only); same maths as
    ``LlamaDecoder.forward`` with an empty past, right padding, consecutive positions from 0."""
    B, S = x.shape[0], x.shape[1]
    pos = torch.arange(S, device=x.device).unsqueeze(0).expand(B, S)
    freqs = pos.to(torch.float32).unsqueeze(-1) * dec.inv_freq.to(x.device)
    emb = torch.cat((freqs, freqs), dim=-1).unsqueeze(1)
    cos, sin = emb.cos(), emb.sin()
    causal = torch.tril(torch.ones(S, S, dtype=torch.bool, device=x.device))
    eye = torch.eye(S, dtype=torch.bool, device=x.device)
    allowed = causal.unsqueeze(0) & ((attn.unsqueeze(1) > 0) | eye.unsqueeze(0))
    zero = torch.zeros((), dtype=torch.float32, device=x.device)
    bias = torch.where(allowed, zero, zero - 1e9).unsqueeze(1)
    c = dec.cfg
    empty = torch.zeros(B, c.kv_heads, 0, c.head_size, device=x.device)
    for layer in dec.layers:
        x, _, _ = layer(x, cos, sin, bias, empty, empty)
    return dec.norm(x)


def answer_logits(model: E2LLM, X, A, Y):
    h = decoder_hidden(model.decoder, X, A)
    sel = Y >= 0
    return torch.matmul(h[sel], model.decoder.embed_tokens.weight.t()), Y[sel], sel


@torch.no_grad()
def rescale_adapter_output(model: E2LLM, ids: "ChunkIds", samples: Sequence[Sample], device) -> float:
    """Scale the adapter's last layer so the soft tokens start at the token embeddings' RMS (the fan-in init
    gives ~17x larger soft tokens than the 0.02-std embeddings). Returns the factor applied."""
    soft = model.adapter(encode_chunks(model, ids, [c for s in samples for c in s.chunks], device)[1])
    target = model.decoder.embed_tokens.weight.pow(2).mean().sqrt()
    f = float(target / soft.pow(2).mean().sqrt())
    model.adapter.fc2.weight.mul_(f)
    model.adapter.fc2.bias.mul_(f)
    return f
