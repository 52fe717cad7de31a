"""Offline, redistributable prose for haystacks and reconstruction (nothing is downloaded).

Sources (read from system paths at run time, not copied into the repository):

| source | licence |
|---|---|
| ``/usr/share/common-licenses/*`` (GPL, LGPL, GFDL, Apache-2.0, Artistic, BSD, CC0, MPL texts) | verbatim copying permitted by each text |
| ``/usr/share/doc/*/copyright`` (Debian copyright files of installed packages) | redistributable with the free packages they belong to |
| with ``sources`` including ``debian-docs``: GNU info manuals, manual pages, package READMEs, NEWS and changelogs | see ``debian_docs.py`` |

The same file list as the tokenizer corpus (``tokenizer.corpus_files``): any path containing ``python`` is
skipped, because the Python documentation (python3-doc) is reserved for an independent evaluation.
Documents are split deterministically into train / held-out by the SHA-1 of their bytes, so evaluation
haystacks are text the model never saw in training.
"""
from __future__ import annotations

import argparse
import gzip
import json
import re
from typing import List, Optional, Sequence, Tuple

from ..tokenizer import unique_corpus_bytes

HELDOUT_MOD = 10  # sha1 % 10 == 0 -> held out


SOURCES = ("licences", "debian-docs")


def load_documents(max_bytes: int = 8_000_000, min_chars: int = 400, sources: Sequence[str] = ("licences",),
                   docs_max_bytes: int = 24_000_000) -> Tuple[List[str], List[str]]:
    """-> (train_docs, heldout_docs), deterministic for a given set of installed files. ``licences`` (the default,
    what the shipped model was trained on) reads up to max_bytes; ``debian-docs`` adds up to docs_max_bytes of
    manuals, manual pages, READMEs and changelogs (debian_docs.py), split the same way."""
    unknown = set(sources) - set(SOURCES)
    if unknown:
        raise ValueError(f"unknown corpus sources {sorted(unknown)}: choose from {list(SOURCES)}")
    train: List[str] = []
    held: List[str] = []
    if "debian-docs" in sources:
        from .debian_docs import documents

        for digest, text in documents(docs_max_bytes, min_chars):
            (held if int(digest, 16) % HELDOUT_MOD == 0 else train).append(text)
    if "licences" not in sources:
        return train, held
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


def write_corpus(path: str, docs: Sequence[str]) -> None:
    """The training documents as one gzipped JSON list, for a run on a machine whose installed files differ."""
    with gzip.open(path, "wt", encoding="utf-8") as f:
        json.dump(list(docs), f, ensure_ascii=False)


def read_corpus(path: str) -> List[str]:
    with gzip.open(path, "rt", encoding="utf-8") as f:
        docs = json.load(f)
    if not isinstance(docs, list) or not all(isinstance(d, str) for d in docs):
        raise ValueError(f"{path}: not a list of documents")
    return docs


def main(argv: Optional[Sequence[str]] = None) -> None:
    ap = argparse.ArgumentParser(prog="training.e2llm.data.corpus", description="snapshot: write this machine's "
                                 "training documents to a file that `training.train --docs` reads elsewhere")
    ap.add_argument("command", choices=["snapshot"])
    ap.add_argument("--out", required=True)
    ap.add_argument("--sources", default="licences", help=f"comma-separated, of {','.join(SOURCES)}")
    ap.add_argument("--docs-max-mb", type=float, default=24.0, help="most megabytes of debian-docs text")
    a = ap.parse_args(argv)
    train, _ = load_documents(sources=a.sources.split(","), docs_max_bytes=int(a.docs_max_mb * 1e6))
    write_corpus(a.out, train)
    print(f"{a.out}: {len(train)} documents, {sum(map(len, train))} characters")


if __name__ == "__main__":
    main()
