"""The training run's configuration: defaults, the keys a config may have, and the checks that refuse the rest."""
from __future__ import annotations

import json
import os
from typing import Optional

from .data.expansion import policy as expansion_policy
from .data.tasks import GENERATORS

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
    "corpus_sources": ["licences"],  # this machine's files: licences and/or debian-docs (data/corpus.py)
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
