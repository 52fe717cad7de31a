"""Joint E2LLM training (encoder + adapter + decoder) with both objectives, on CPU or CUDA.

    /usr/bin/python3 -m training.train --config training/configs/tiny-cpu.json [--deadline-utc HH:MM] [--fresh]
    /usr/bin/python3 -m training.train eval --checkpoint training/runs/tiny-cpu/ckpt.pt [--chunks 1,2,4] [--samples 20]

One config file per run (``training/configs/<name>.json``). The run directory ``training/runs/<name>/``
(gitignored) holds ``ckpt.pt`` (model, optimiser, data-RNG state, step, training seconds; rewritten
atomically every ``ckpt_every_s`` seconds and at the end), ``loss.jsonl`` and ``loss.csv``. Starting again
with the same config resumes from ``ckpt.pt``. The run stops by itself after ``max_train_seconds`` of
training time (summed over resumptions) or at ``--deadline-utc``, saves, and copies the loss curve to
``training/runs-summary/<name>/loss.csv``.

Objectives: reconstruction (``reconstruct`` template, the decoder restates the window's text) and
instruction tuning (``qa`` / ``instruct`` / ``summarize`` templates over whole documents), next-token
loss on the answer tokens + EOS only; reconstruction tokens weighted by ``recon_weight``. A penalty keeps
the soft tokens' RMS near the token embeddings' RMS (the measured failure mode of earlier runs was an
adapter output norm of ~500 that turned the soft token into an attention sink). Curriculum: ``stages``
(by fraction of the time budget) set chunk size, the most chunks per document, the batch size and the
task mix.
"""
from __future__ import annotations

import argparse
import csv
import datetime as _dt
import json
import math
import os
import random
import re
import shutil
import signal
import sys
import time
from typing import Dict, List, Optional, Sequence, Tuple

import torch
import torch.nn.functional as F

from .export import TEMPLATES, load_checkpoint, load_model
from .modules import E2LLM, E2LLMConfig, build_model, pad_batch
from .tokenizer import BOS_ID, CLS_ID, EOS_ID, PAD_ID, ByteLevelBPETokenizer
from .data.corpus import load_documents, read_corpus
from .data.expansion import chunks_holding, policy as expansion_policy
from .data.tasks import GENERATORS, Sample, sample_task

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

DEFAULTS = {
    "name": "run",
    "seed": 0,
    "init": "seed",              # "seed": the shipped seeded init (build_model(seed)); or a checkpoint path
    "tokenizer": "models/e2llm-tiny/tokenizer.json",
    "device": "auto",            # auto | cpu | cuda
    "threads": 1,
    "lr": 1e-3,
    "min_lr_frac": 0.1,
    "warmup_steps": 100,
    "weight_decay": 0.05,
    "betas": [0.9, 0.98],
    "grad_clip": 1.0,
    "recon_weight": 0.5,
    "norm_penalty": 1.0,
    "uniformity_weight": 0.1,
    "bow_weight": 0.5,
    "bow_scale": 20.0,
    "probe_weight": 0.0,
    "bank_size": 4096,
    "max_recon_chars": 512,
    "max_train_seconds": 3600,
    "ckpt_every_s": 120,
    "log_every": 20,
    "stages": [{"until": 1.0, "chunk_chars": 512, "max_chunks": 4, "batch_size": 8,
                "mix": {"reconstruct": 1.0, "niah_single": 1.0}}],
    "rescale_adapter": True,     # at step 0, scale the adapter output to the token embeddings' RMS
    "max_steps": None,           # stop after this many steps (tests)
    "docs_file": None,           # training documents from a corpus snapshot (--docs) instead of this machine's files
    "run_dir": None,             # run directory (default training/runs/<name>)
}
STAGE_KEYS = {"until", "chunk_chars", "max_chunks", "batch_size", "mix", "pad_chunks", "train_encoder", "expand"}
STAGE_REQUIRED = {"until", "chunk_chars", "max_chunks", "batch_size", "mix"}


def check_config(cfg: dict) -> dict:
    """Refuses unknown keys (a misspelt one would otherwise pass silently and train with the default), stages
    without their required keys, unknown tasks in a mix and unknown expansion settings."""
    problems = [f"unknown key {k!r}" for k in sorted(cfg) if k not in DEFAULTS and not k.startswith("_")]
    for i, st in enumerate(cfg["stages"]):
        problems += [f"stage {i}: unknown key {k!r}" for k in sorted(set(st) - STAGE_KEYS)]
        problems += [f"stage {i}: missing {k!r}" for k in sorted(STAGE_REQUIRED - set(st))]
        problems += [f"stage {i}: unknown task {t!r} in mix" for t in sorted(st.get("mix", {})) if t not in GENERATORS]
        try:
            expansion_policy(st.get("expand"))
        except ValueError as e:
            problems.append(f"stage {i}: {e}")
    if problems:
        raise ValueError("bad training config: " + "; ".join(problems))
    return cfg


def load_config(path: str, overrides: Optional[dict] = None) -> dict:
    with open(path, encoding="utf-8") as f:
        cfg = dict(DEFAULTS, **json.load(f))
    cfg.update(overrides or {})
    return check_config(cfg)


# ----------------------------------------------------------------------------------------------
# batching
# ----------------------------------------------------------------------------------------------

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


def soft_rms_penalty(model: E2LLM, chunk_emb: torch.Tensor) -> Tuple[torch.Tensor, float, float]:
    """(log(rms(soft) / rms(E)))^2 on the adapter only: the chunk embeddings are detached, because the same
    penalty back-propagated into the encoder collapsed it (it drove fc1 into GELU's flat region with a
    constant chunk vector, chunk cosine 0.99999 within 100 steps)."""
    E = model.decoder.embed_tokens.weight
    target = E.pow(2).mean().sqrt().detach()
    soft = model.adapter(chunk_emb.detach())
    rms = soft.pow(2).mean(dim=-1).sqrt()
    return ((rms / target).log() ** 2).mean(), float(rms.mean()), float(target)


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


# ----------------------------------------------------------------------------------------------
# training
# ----------------------------------------------------------------------------------------------

def stage_at(cfg: dict, frac: float) -> Tuple[int, dict]:
    for i, st in enumerate(cfg["stages"]):
        if frac < st["until"]:
            return i, st
    return len(cfg["stages"]) - 1, cfg["stages"][-1]


def lr_at(cfg: dict, step: int, frac: float) -> float:
    if step < cfg["warmup_steps"]:
        return cfg["lr"] * (step + 1) / cfg["warmup_steps"]
    m = cfg["min_lr_frac"]
    return cfg["lr"] * (m + (1 - m) * 0.5 * (1 + math.cos(math.pi * min(1.0, frac))))


def pick_device(name: str) -> torch.device:
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    if name == "cuda":
        torch.backends.cuda.matmul.allow_tf32 = True  # the tiny model's matmuls: TF32 is well inside its noise
    return torch.device(name)


def init_model(cfg: dict) -> E2LLM:
    if cfg["init"] == "seed":
        return build_model(cfg["seed"])
    model, _ = load_model(cfg["init"], cfg["seed"])
    return model


def save_ckpt(path: str, model, opt, state: dict, tok_spec: dict, probe: Optional[torch.nn.Module] = None) -> None:
    tmp = path + ".tmp"
    ck = {"config": model.cfg.to_dict(), "model": {k: v.detach().cpu() for k, v in model.state_dict().items()},
          "tokenizer": tok_spec, "optimizer": opt.state_dict(), "train_state": state}
    if probe is not None:
        ck["probe"] = {k: v.detach().cpu() for k, v in probe.state_dict().items()}
    torch.save(ck, tmp)
    os.replace(tmp, path)


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


def train(cfg: dict, fresh: bool = False, deadline: Optional[float] = None, quiet: bool = False) -> dict:
    check_config(cfg)
    torch.set_num_threads(int(cfg["threads"]))
    device = pick_device(cfg["device"])
    run_dir = cfg.get("run_dir") or os.path.join(ROOT, "training", "runs", cfg["name"])
    os.makedirs(run_dir, exist_ok=True)
    ckpt_path = os.path.join(run_dir, "ckpt.pt")
    with open(os.path.join(run_dir, "config.json"), "w") as f:
        json.dump(cfg, f, indent=2)
    tok_path = cfg["tokenizer"] if os.path.isabs(cfg["tokenizer"]) else os.path.join(ROOT, cfg["tokenizer"])
    with open(tok_path, encoding="utf-8") as f:
        tok_spec = json.load(f)
    tok = ByteLevelBPETokenizer(tok_spec)
    torch.manual_seed(cfg["seed"])
    model = init_model(cfg).to(device).train()
    ids = ChunkIds(tok, model.cfg.encoder.max_tokens)
    probe = NeedleProbe(model.cfg.encoder.hidden).to(device)
    bank = HaystackBank(int(cfg["bank_size"]), model.cfg.encoder.hidden, device)
    params = list(model.named_parameters()) + [("probe." + n, p) for n, p in probe.named_parameters()]
    decay = [p for n, p in params if p.dim() >= 2]
    no_decay = [p for n, p in params if p.dim() < 2]
    opt = torch.optim.AdamW([{"params": decay, "weight_decay": cfg["weight_decay"]},
                             {"params": no_decay, "weight_decay": 0.0}], lr=cfg["lr"], betas=tuple(cfg["betas"]))
    rng = random.Random(cfg["seed"])
    state = {"step": 0, "train_seconds": 0.0}
    if os.path.exists(ckpt_path) and not fresh:
        ck = load_checkpoint(ckpt_path)
        model.load_state_dict(ck["model"])
        if "probe" in ck:
            probe.load_state_dict(ck["probe"])
        opt.load_state_dict(ck["optimizer"])
        state = ck["train_state"]
        rng.setstate(state["rng"])
        if "torch_rng" in state:
            torch.set_rng_state(state["torch_rng"])
        if not quiet:
            print(f"resumed from {ckpt_path} at step {state['step']} ({state['train_seconds']:.0f}s)", flush=True)
    else:
        if cfg["init"] != "seed" and "probe" in (ck := load_checkpoint(cfg["init"])):
            probe.load_state_dict(ck["probe"])  # an encoder pretrained against the probe keeps its heads
    if fresh:
        for n in ("loss.jsonl", "loss.csv"):
            if os.path.exists(os.path.join(run_dir, n)):
                os.remove(os.path.join(run_dir, n))
    docs = cfg.get("_docs") or (read_corpus(cfg["docs_file"]) if cfg.get("docs_file") else load_documents()[0])
    if state["step"] == 0 and cfg["rescale_adapter"]:
        st0 = cfg["stages"][0]
        f = rescale_adapter_output(model, ids, [sample_task(random.Random(cfg["seed"] + 1), docs, st0["mix"],
                                   st0["max_chunks"], st0["chunk_chars"]) for _ in range(8)], device)
        if not quiet:
            print(f"adapter output rescaled by {f:.4f}", flush=True)
    log_jsonl = open(os.path.join(run_dir, "loss.jsonl"), "a")
    csv_path = os.path.join(run_dir, "loss.csv")
    new_csv = not os.path.exists(csv_path)
    log_csv = open(csv_path, "a", newline="")
    cw = csv.writer(log_csv)
    if new_csv:
        cw.writerow(["step", "train_seconds", "stage", "lr", "loss", "recon_loss", "task_loss", "norm_pen",
                     "bow_loss", "soft_rms", "emb_rms", "chunk_cos", "probe_acc", "seq_len"])
    acc = {"loss": [], "recon": [], "task": [], "pen": [], "bow": [], "probe": [], "soft_n": []}
    last_ckpt = time.time()
    budget = float(cfg["max_train_seconds"])
    t_prev = time.time()
    first_loss = None
    try:
        while True:
            frac = state["train_seconds"] / budget
            if frac >= 1.0 or (deadline is not None and time.time() >= deadline) or \
                    (cfg.get("max_steps") and state["step"] >= cfg["max_steps"]):
                break
            si, st = stage_at(cfg, frac)
            lr = lr_at(cfg, state["step"], frac)
            for g in opt.param_groups:
                g["lr"] = lr
            # a stage with "train_encoder": false holds the encoder fixed (no graph, no update, no probe): the decoder
            # learns to read a code that no longer moves under it
            train_enc = st.get("train_encoder", True)
            for p in model.encoder.parameters():
                p.requires_grad_(train_enc)
            samples = [sample_task(rng, docs, st["mix"], st["max_chunks"], st["chunk_chars"], cfg["max_recon_chars"],
                                   st.get("expand"))
                       for _ in range(st["batch_size"])]
            extras = bank_extras(model, bank, samples, st["pad_chunks"], rng) if st.get("pad_chunks") else None
            X, A, Y, W, soft, chunk_emb, enc_ids = build_batch(model, ids, samples, device, cfg["recon_weight"],
                                                               extras=extras)
            logits, tgt, sel = answer_logits(model, X, A, Y)
            tok_loss = F.cross_entropy(logits, tgt, reduction="none")
            w = W[sel]
            loss_main = (tok_loss * w).sum() / w.sum()
            pen, soft_rms, emb_rms = soft_rms_penalty(model, chunk_emb)
            loss = loss_main + cfg["norm_penalty"] * pen
            if cfg["uniformity_weight"] and train_enc:
                loss = loss + cfg["uniformity_weight"] * uniformity_loss(chunk_emb)
            bow = bow_loss(model, soft, enc_ids, cfg["bow_scale"]) if cfg["bow_weight"] else soft.sum() * 0.0
            loss = loss + cfg["bow_weight"] * bow
            probe_acc = float("nan")
            if cfg["probe_weight"] and train_enc:
                probe_loss, probe_acc = probe.loss(chunk_emb, [c for s in samples for c in s.chunks])
                loss = loss + cfg["probe_weight"] * probe_loss
            fill_bank(bank, samples, chunk_emb)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_([p for _, p in params], cfg["grad_clip"])
            opt.step()
            now = time.time()
            state["train_seconds"] += now - t_prev
            t_prev = now
            state["step"] += 1
            with torch.no_grad():
                rec_mask = torch.tensor([s.template == "reconstruct" for s in samples], device=device)
                rows = sel.nonzero()[:, 0]
                rm = rec_mask[rows]
                acc["loss"].append(float(loss_main))
                if rm.any():
                    acc["recon"].append(float(tok_loss[rm].mean()))
                if (~rm).any():
                    acc["task"].append(float(tok_loss[~rm].mean()))
                acc["pen"].append(float(pen))
                acc["bow"].append(float(bow))
                if probe_acc == probe_acc:
                    acc["probe"].append(probe_acc)
                acc["soft_n"].append(X.shape[1])
            if first_loss is None:
                first_loss = float(loss_main)
            if state["step"] % cfg["log_every"] == 0:
                mean = lambda v: sum(v) / len(v) if v else float("nan")
                rec = {"step": state["step"], "train_seconds": round(state["train_seconds"], 1), "stage": si,
                       "lr": lr, "loss": mean(acc["loss"]), "recon_loss": mean(acc["recon"]),
                       "task_loss": mean(acc["task"]), "norm_pen": mean(acc["pen"]), "bow_loss": mean(acc["bow"]), "soft_rms": soft_rms,
                       "probe_acc": mean(acc["probe"]), "seq_len": mean(acc["soft_n"]),
                       "emb_rms": emb_rms, "chunk_cos": mean_pairwise_cos(chunk_emb)}
                log_jsonl.write(json.dumps(rec) + "\n")
                log_jsonl.flush()
                cw.writerow([rec[k] if not isinstance(rec[k], float) else ("%.5g" % rec[k]) for k in
                             ["step", "train_seconds", "stage", "lr", "loss", "recon_loss", "task_loss", "norm_pen",
                              "bow_loss", "soft_rms", "emb_rms", "chunk_cos", "probe_acc", "seq_len"]])
                log_csv.flush()
                if not quiet:
                    print(json.dumps(rec), flush=True)
                acc = {k: [] for k in acc}
            if time.time() - last_ckpt >= cfg["ckpt_every_s"]:
                state["rng"] = rng.getstate()
                state["torch_rng"] = torch.get_rng_state()
                save_ckpt(ckpt_path, model, opt, state, tok_spec, probe)
                last_ckpt = time.time()
    finally:
        state["rng"] = rng.getstate()
        state["torch_rng"] = torch.get_rng_state()
        save_ckpt(ckpt_path, model, opt, state, tok_spec, probe)
        log_jsonl.close()
        log_csv.close()
        if not cfg.get("run_dir"):
            summ = os.path.join(ROOT, "training", "runs-summary", cfg["name"])
            os.makedirs(summ, exist_ok=True)
            shutil.copyfile(csv_path, os.path.join(summ, "loss.csv"))
    return {"step": state["step"], "train_seconds": state["train_seconds"], "first_loss": first_loss,
            "last_loss": float(loss_main) if first_loss is not None else None, "ckpt": ckpt_path}


# ----------------------------------------------------------------------------------------------
# quick evaluation (held-out documents, seeds not used in training)
# ----------------------------------------------------------------------------------------------

@torch.no_grad()
def greedy_answer(model: E2LLM, ids: ChunkIds, s: Sample, max_new: int, device) -> str:
    E = model.decoder.embed_tokens.weight
    soft = context_block(E, model.adapter(encode_chunks(model, ids, s.chunks, device)[1]), ids, s)
    prefix, suffix = s.prompt()
    p = torch.tensor([BOS_ID] + ids.encode(prefix), device=device)
    q = torch.tensor(ids.encode(suffix), device=device)
    x = torch.cat([E[p], soft, E[q]], dim=0)
    out: List[int] = []
    for _ in range(max_new):
        h = decoder_hidden(model.decoder, x.unsqueeze(0), torch.ones(1, x.shape[0], dtype=torch.long, device=device))
        t = int(torch.argmax(h[0, -1] @ E.t()))
        if t == EOS_ID:
            break
        out.append(t)
        x = torch.cat([x, E[t].unsqueeze(0)], dim=0)
    return ids.tok.decode(out)


@torch.no_grad()
def evaluate(checkpoint: str, chunks: Sequence[int], samples: int, seed: int, tasks: Sequence[str],
             chunk_chars: int = 512, device: str = "cpu", expand: str = "none") -> List[dict]:
    """``expand``: none | evidence (the chunks the answer rests on, read raw: expansion with perfect retrieval) |
    all (the whole document raw: the full-context reading)."""
    model, tok_spec = load_model(checkpoint, 0)
    model = model.to(device).eval()
    tok = ByteLevelBPETokenizer(tok_spec) if tok_spec else ByteLevelBPETokenizer.from_file(
        os.path.join(ROOT, "models", "e2llm-tiny", "tokenizer.json"))
    ids = ChunkIds(tok, model.cfg.encoder.max_tokens)
    _, held = load_documents()
    results = []
    for task in tasks:
        for n in chunks:
            rng = random.Random(seed * 1000 + n)
            correct, total, tok_ok, tok_n, tok_ok_abl = 0, 0, 0, 0, 0
            examples = []
            for _ in range(samples):
                if task == "reconstruct":
                    for _ in range(200):
                        s = GENERATORS[task](rng, held, n, chunk_chars)
                        if len(s.chunks) == n:
                            break
                    # teacher-forced next-token accuracy on the restated text, and the same with the soft
                    # tokens replaced by zeros (what the decoder guesses from the prompt and text alone)
                    for ablate in (False, True):
                        X, A, Y, W, soft, _, _ = build_batch(model, ids, [s], device, 1.0)
                        if ablate:
                            P = 1 + len(ids.encode(s.prompt()[0]))
                            X[0, P: P + len(s.chunks)] = 0
                        logits, tgt, _ = answer_logits(model, X, A, Y)
                        ok = int((logits.argmax(-1) == tgt).sum())
                        if ablate:
                            tok_ok_abl += ok
                        else:
                            tok_ok += ok
                            tok_n += int(tgt.numel())
                    continue
                # rejection-sample documents of exactly n chunks (the generators aim at 1..n chunks and the
                # prose haystacks overshoot their target by up to ~200 characters)
                for _ in range(200):
                    s = GENERATORS[task](rng, held, n, chunk_chars)
                    if len(s.chunks) == n:
                        break
                if expand == "evidence":
                    s.expand = chunks_holding(s.chunks, s.evidence)
                elif expand == "all":
                    s.expand = list(range(len(s.chunks)))
                want = s.answer.strip()
                got = greedy_answer(model, ids, s, max_new=len(ids.encode(s.answer)) + 4, device=device)
                parts = [p.strip() for p in want.replace(",", " ").split()]
                correct += int(all(p in got for p in parts))  # string_match_all
                if len(examples) < 2:
                    examples.append({"chunks": len(s.chunks), "want": want, "got": got})
                total += 1
            if task == "reconstruct":
                results.append({"task": task, "chunks": n, "samples": samples,
                                "token_acc": round(100 * tok_ok / max(1, tok_n), 2),
                                "token_acc_soft_zeroed": round(100 * tok_ok_abl / max(1, tok_n), 2)})
            else:
                results.append({"task": task, "chunks": n, "samples": total,
                                "string_match_all": round(100 * correct / max(1, total), 2), "examples": examples})
    return results


def _raise_interrupt(signum, frame) -> None:
    raise KeyboardInterrupt(f"signal {signum}")  # train()'s finally saves the checkpoint and the loss curve


def main(argv: Optional[Sequence[str]] = None) -> None:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv and argv[0] == "eval":
        ap = argparse.ArgumentParser(prog="training.train eval")
        ap.add_argument("--checkpoint", required=True)
        ap.add_argument("--chunks", default="1,2,4")
        ap.add_argument("--samples", type=int, default=20)
        ap.add_argument("--seed", type=int, default=12345)
        ap.add_argument("--chunk-chars", type=int, default=512)
        ap.add_argument("--tasks", default="reconstruct,niah_single,niah_multikey,vt,qa")
        ap.add_argument("--expand", choices=["none", "evidence", "all"], default="none")
        a = ap.parse_args(argv[1:])
        torch.set_num_threads(max(1, int(os.environ.get("OMP_NUM_THREADS", "1"))))
        res = evaluate(a.checkpoint, [int(x) for x in a.chunks.split(",")], a.samples, a.seed,
                       a.tasks.split(","), a.chunk_chars, expand=a.expand)
        print(json.dumps({"checkpoint": a.checkpoint, "seed": a.seed, "chunk_chars": a.chunk_chars, "expand": a.expand,
                          "results": res}, indent=1))
        return
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--config", required=True)
    ap.add_argument("--fresh", action="store_true", help="ignore an existing ckpt.pt and start over")
    ap.add_argument("--deadline-utc", default=None, help="HH:MM (today, UTC): stop and save by then")
    ap.add_argument("--max-train-seconds", type=float, default=None)
    ap.add_argument("--device", default=None, help="cpu | cuda (default: the config's)")
    ap.add_argument("--docs", default=None, help="training documents as written by `training.e2llm.data.corpus "
                    "snapshot` (another machine's installed files differ; default: read this machine's)")
    a = ap.parse_args(argv)
    over = {}
    if a.device:
        over["device"] = a.device
    if a.docs:
        over["docs_file"] = a.docs
    if a.max_train_seconds is not None:
        over["max_train_seconds"] = a.max_train_seconds
    cfg = load_config(a.config, over)
    deadline = None
    if a.deadline_utc:
        hh, mm = map(int, a.deadline_utc.split(":"))
        now = _dt.datetime.now(_dt.timezone.utc)
        deadline = now.replace(hour=hh, minute=mm, second=0, microsecond=0).timestamp()
    # `kill PID` saves too: a background job started with `&` ignores SIGINT, so SIGTERM is the signal that reaches it
    signal.signal(signal.SIGTERM, _raise_interrupt)
    res = train(cfg, fresh=a.fresh, deadline=deadline)
    print(json.dumps(res), flush=True)


if __name__ == "__main__":
    main()
