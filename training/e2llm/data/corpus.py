"""Offline, redistributable prose for haystacks and reconstruction (nothing is downloaded).

Sources (read from system paths at run time, not copied into the repository):

| source | licence |
|---|---|
| ``/usr/share/common-licenses/*`` (GPL, LGPL, GFDL, Apache-2.0, Artistic, BSD, CC0, MPL texts) | verbatim copying permitted by each text |
| ``/usr/share/doc/*/copyright`` (Debian copyright files of installed packages) | redistributable with the free packages they belong to |

The same file list as the tokenizer corpus (``tokenizer.corpus_files``): any path containing ``python`` is
skipped, because the Python documentation (python3-doc) is reserved for an independent evaluation.
Documents are split deterministically into train / held-out by the SHA-1 of their bytes, so evaluation
haystacks are text the model never saw in training.
"""
from __future__ import annotations

import re
from typing import List, Tuple

from ..tokenizer import unique_corpus_bytes

HELDOUT_MOD = 10  # sha1 % 10 == 0 -> held out


def load_documents(max_bytes: int = 8_000_000, min_chars: int = 400) -> Tuple[List[str], List[str]]:
    """-> (train_docs, heldout_docs), deterministic for a given set of installed files."""
    train: List[str] = []
    held: List[str] = []
    total = 0
    for digest, data in unique_corpus_bytes():
        text = data.decode("utf-8", errors="replace").replace("\r\n", "\n")
        text = re.sub(r"\n{3,}", "\n\n", text)
        if len(text) < min_chars:
            continue
        (held if int(digest, 16) % HELDOUT_MOD == 0 else train).append(text)
        total += len(data)
        if total >= max_bytes:
            break
    return train, held


_SENT_RE = re.compile(r"[^.!?\n]*(?:[.!?](?=\s)|\n|$)")


def sentences(text: str) -> List[str]:
    """Rough sentence / line split, keeping every character (concatenation gives back ``text``)."""
    out = [m.group(0) for m in _SENT_RE.finditer(text) if m.group(0)]
    return out
