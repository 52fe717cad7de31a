"""Selective expansion in training: which chunks of a sample the decoder reads as raw tokens, in place.

At serving time the top-k evidence chunks (BM25 of the question against the chunk texts) are given to the decoder as
their own tokens where their soft token would have been; the rest stay soft tokens. The decoder has to learn three
things it never saw before: reading raw tokens at all, finding the answer in a raw span among soft tokens, and telling
the needle asked for from other raw needles (the other top-ranked chunks share the question's common words, so they
hold other keys' values of the same type). The policy below draws, per sample:

* a whole short document as raw tokens (``raw_doc_p``): the full-context reading the baseline needs;
* else, with probability ``p``, the chunks the answer rests on plus up to ``max_extra`` others, preferring chunks
  that hold distractor sentences (what BM25 ranks next), in document order; with ``miss_p`` the answer's chunk is
  left out, so the decoder still answers from its soft token when retrieval misses;
* else no expansion: the compressed path alone, so nothing it learned is lost.

One recipe for the tiny model (``training.e2llm.train``) and real checkpoints (``training.hf.finetune``).
"""
from __future__ import annotations

import random
from typing import Dict, List, Optional, Sequence

# tasks whose answer rests on a few chunks (the evidence); the others are expanded only as whole raw documents
EVIDENCE_TASKS = ("niah_single", "niah_multikey", "niah_multivalue", "niah_multiquery", "vt", "qa", "lookup")
DEFAULT_POLICY = {"p": 0.0, "max_extra": 3, "distract_p": 0.5, "raw_doc_p": 0.0, "raw_doc_max_chunks": 6,
                  "miss_p": 0.05}


def policy(cfg: Optional[Dict[str, float]]) -> Dict[str, float]:
    """A stage's ``expand`` settings over the defaults; an unknown key is refused (a misspelt one would pass silently)."""
    cfg = dict(cfg or {})
    unknown = sorted(set(cfg) - set(DEFAULT_POLICY))
    if unknown:
        raise ValueError(f"unknown expand setting(s): {', '.join(unknown)} (known: {', '.join(sorted(DEFAULT_POLICY))})")
    return dict(DEFAULT_POLICY, **cfg)


def chunks_holding(chunks: Sequence[str], needles: Sequence[str]) -> List[int]:
    """Indices of the chunks that hold any of the strings (in document order)."""
    return [i for i, c in enumerate(chunks) if any(n and n in c for n in needles)]


def choose_expansion(rng: random.Random, chunks: Sequence[str], task: str, evidence: Sequence[str],
                     distractors: Sequence[str], pol: Dict[str, float]) -> List[int]:
    """-> sorted chunk indices to give the decoder as raw tokens (empty: none)."""
    n = len(chunks)
    if pol["raw_doc_p"] and n <= pol["raw_doc_max_chunks"] and rng.random() < pol["raw_doc_p"]:
        return list(range(n))
    if task not in EVIDENCE_TASKS or not pol["p"] or rng.random() >= pol["p"]:
        return []
    chosen = set(chunks_holding(chunks, evidence))
    if chosen and not distractors and rng.random() < pol["miss_p"]:
        chosen = set()
    extra = rng.randint(0, int(pol["max_extra"]))
    ranked = [i for i in chunks_holding(chunks, distractors) if i not in chosen]
    rng.shuffle(ranked)
    rest = [i for i in range(n) if i not in chosen and i not in ranked]
    rng.shuffle(rest)
    for i in ranked + rest:
        if extra <= 0:
            break
        chosen.add(i)
        extra -= 1
    return sorted(chosen)
