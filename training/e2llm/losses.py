"""The auxiliary losses beside next-token loss: bag of words, the needle probe, the soft-token norm penalty and the
uniformity of chunk embeddings (what each guards against is in its docstring)."""
from __future__ import annotations

import math
import re
from typing import Sequence, Tuple

import torch
import torch.nn.functional as F

from .modules import E2LLM
from .tokenizer import PAD_ID

def bow_loss(model: E2LLM, soft: torch.Tensor, enc_ids: Sequence[Sequence[int]], scale: float) -> torch.Tensor:
    """Bag-of-words auxiliary loss: each soft token, compared by cosine with every row of the decoder's token
    embedding table (scaled), should put its softmax mass on the tokens of its chunk (their frequency
    distribution). Gives the encoder and adapter a dense signal from step 0 and aligns soft tokens with the
    embeddings of their content, against the collapse to a constant chunk vector."""
    E = model.decoder.embed_tokens.weight
    logits = scale * F.normalize(soft, dim=-1) @ F.normalize(E, dim=-1).t()  # [N, V]
    q = torch.zeros_like(logits)
    for i, ids in enumerate(enc_ids):
        t = torch.tensor(ids[1:] or [PAD_ID], dtype=torch.long, device=soft.device)
        q[i].index_add_(0, t, torch.ones(t.shape[0], device=soft.device))
    q = q / q.sum(dim=-1, keepdim=True)
    return -(q * F.log_softmax(logits, dim=-1)).sum(dim=-1).mean()


NEEDLE_VALUE = re.compile(r"special magic (?:numbers|uuids) for \S+ is: ([0-9a-f-]+)\.")
HEX = "0123456789abcdef"


class NeedleProbe(torch.nn.Module):
    """Training-only heads on the chunk embedding (not part of the model package): does the chunk hold a needle,
    and, for a chunk with exactly one, the needle value's 7 digits or 32 UUID hex digits. The decoder can only
    answer from what the chunk vector carries; these heads give the encoder a direct, dense signal to carry the
    value (through the decoder alone the signal is weak: the first shipped run learned the answer format but
    not the value). The decoder still has to learn to find the chunk and spell the value from its soft token."""

    def __init__(self, hidden: int):
        super().__init__()
        self.has = torch.nn.Linear(hidden, 1)
        self.digits = torch.nn.Linear(hidden, 7 * 10)
        self.hex = torch.nn.Linear(hidden, 32 * 16)

    def value_targets(self, found: Sequence[Sequence[str]]) -> dict:
        """NEEDLE_VALUE matches per chunk -> {"digits" | "hex": (head, width, classes, rows, targets)}: the chunks
        holding exactly one needle of that value type, and its digits as class indices."""
        out = {}
        for name, head, width, classes, pick in (
                ("digits", self.digits, 7, 10, lambda v: v if len(v) == 7 and v.isdigit() else None),
                ("hex", self.hex, 32, 16, lambda v: v.replace("-", "") if len(v) == 36 else None)):
            rows, tgts = [], []
            for i, f in enumerate(found):
                v = pick(f[0]) if len(f) == 1 else None
                if v is not None and len(v) == width:
                    rows.append(i)
                    tgts.append([HEX.index(c) for c in v])
            out[name] = (head, width, classes, rows, tgts)
        return out

    def loss(self, chunk_emb: torch.Tensor, texts: Sequence[str]) -> Tuple[torch.Tensor, float]:
        """-> (loss, per-digit accuracy on this batch's needle chunks (nan when none))."""
        dev = chunk_emb.device
        found = [NEEDLE_VALUE.findall(t) for t in texts]
        has_t = torch.tensor([1.0 if f else 0.0 for f in found], device=dev)
        loss = F.binary_cross_entropy_with_logits(self.has(chunk_emb).squeeze(-1), has_t)
        hits, total = 0, 0
        for head, width, classes, rows, tgts in self.value_targets(found).values():
            if not rows:
                continue
            logits = head(chunk_emb[torch.tensor(rows, device=dev)]).view(len(rows), width, classes)
            tgt = torch.tensor(tgts, device=dev)
            loss = loss + F.cross_entropy(logits.reshape(-1, classes), tgt.reshape(-1))
            hits += int((logits.argmax(-1) == tgt).sum())
            total += tgt.numel()
        return loss, (hits / total if total else float("nan"))


def soft_rms_penalty(model: E2LLM, chunk_emb: torch.Tensor) -> Tuple[torch.Tensor, float, float]:
    """(log(rms(soft) / rms(E)))^2 on the adapter only: the chunk embeddings are detached, because the same
    penalty back-propagated into the encoder collapsed it (it drove fc1 into GELU's flat region with a
    constant chunk vector, chunk cosine 0.99999 within 100 steps)."""
    E = model.decoder.embed_tokens.weight
    target = E.pow(2).mean().sqrt().detach()
    soft = model.adapter(chunk_emb.detach())
    rms = soft.pow(2).mean(dim=-1).sqrt()
    return ((rms / target).log() ** 2).mean(), float(rms.mean()), float(target)


def uniformity_loss(x: torch.Tensor) -> torch.Tensor:
    """Anti-collapse term on the chunk embeddings (Wang & Isola 2020): log E exp(-2 |zi - zj|^2) over
    L2-normalised pairs; lower when the chunk vectors spread over the sphere."""
    if x.shape[0] < 2:
        return x.sum() * 0.0
    z = F.normalize(x, dim=-1)
    d2 = torch.cdist(z, z).pow(2)
    k = x.shape[0]
    off = ~torch.eye(k, dtype=torch.bool, device=x.device)
    return torch.logsumexp(-2.0 * d2[off], dim=0) - math.log(k * (k - 1))


def mean_pairwise_cos(x: torch.Tensor) -> float:
    if x.shape[0] < 2:
        return float("nan")
    n = F.normalize(x.detach(), dim=-1)
    c = n @ n.t()
    k = x.shape[0]
    return float((c.sum() - c.diagonal().sum()) / (k * (k - 1)))
