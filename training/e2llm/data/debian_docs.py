"""More genres of offline prose than licences: the documentation Debian packages install on this machine.

| source | what | licence |
|---|---|---|
| ``/usr/share/info/*.info*.gz`` | GNU manuals (coreutils, grep, sed, find, gzip, wget, ...) | GFDL / GPL, as each manual states |
| ``/usr/share/man/man{1,5,8}/*.gz`` | manual pages, rendered to plain text by groff | the licence of the package each page belongs to (Debian main: redistributable) |
| ``/usr/share/doc/*/README*``, ``NEWS*`` | package READMEs and release notes | the package's licence |
| ``/usr/share/doc/*/changelog*.gz`` | upstream and Debian changelogs | the package's licence |

Never the Python documentation (python3-doc: reserved for an independent evaluation) nor the Vim manual (the
evaluation's essays): any path naming ``python`` or ``vim`` is skipped. Nothing here is copied into the repository:
documents are read from the system at run time, or frozen with ``corpus snapshot``. Which packages are installed
decides the corpus; ``DOC_PACKAGES`` names the ones a training machine should install for the same one.
"""
from __future__ import annotations

import glob
import gzip
import hashlib
import os
import re
import subprocess
from typing import Iterable, List, Tuple

# Debian packages whose documentation the corpus reads (installed by `.ci/run` is not needed: tests use what exists).
DOC_PACKAGES = ["coreutils", "grep", "sed", "findutils", "gzip", "wget", "bc", "diffutils", "time", "gettext-base",
                "man-db", "groff-base", "tar", "bash", "less", "make", "git", "curl", "rsync", "openssh-client"]

_EXCLUDED = re.compile(r"python|vim", re.IGNORECASE)
_INFO_MENU = re.compile(r"^File: .*$|^\* Menu:$|^\*.*::.*$|^Tag Table:.*|^End Tag Table$|\x7f\d*", re.MULTILINE)


def _read(path: str) -> bytes:
    with (gzip.open(path, "rb") if path.endswith(".gz") else open(path, "rb")) as f:
        return f.read()


def _info(path: str) -> List[str]:
    """An info manual's nodes (sections), each a document: a whole manual would be one genre's worth of the budget."""
    text = _read(path).decode("utf-8", errors="replace")
    return [_INFO_MENU.sub("", node) for node in text.split("\x1f")]


def _man(path: str) -> List[str]:
    """A manual page as a reader sees it: groff's plain UTF-8 rendering, without overstrike or colour."""
    try:
        out = subprocess.run(["groff", "-man", "-Tutf8", "-P-cbou"], input=_read(path), capture_output=True, timeout=20,
                             env={**os.environ, "MANWIDTH": "80"})
    except (OSError, subprocess.TimeoutExpired):
        return []
    return [out.stdout.decode("utf-8", errors="replace")] if out.returncode == 0 else []


def _plain(path: str) -> List[str]:
    return [_read(path).decode("utf-8", errors="replace")]


def doc_files() -> List[Tuple[str, str]]:
    """(kind, path) of every readable documentation file, exclusions applied, the kinds interleaved (one info
    manual, one manual page, one README or changelog, ...) so any byte budget holds every genre."""
    info = [("info", p) for p in sorted(glob.glob("/usr/share/info/*.info*.gz"))]
    man = [("man", p) for section in ("1", "5", "8") for p in sorted(glob.glob(f"/usr/share/man/man{section}/*.gz"))]
    plain = [("plain", p) for pattern in ("/usr/share/doc/*/README*", "/usr/share/doc/*/NEWS*", "/usr/share/doc/*/changelog*.gz")
             for p in sorted(glob.glob(pattern)) if os.path.isfile(p)]
    keep = lambda kp: not _EXCLUDED.search(kp[1]) and not kp[1].endswith((".html", ".html.gz", ".pdf"))  # noqa: E731
    kinds = [list(filter(keep, k)) for k in (info, man, plain)]
    out: List[Tuple[str, str]] = []
    for i in range(max(map(len, kinds))):
        out += [k[i] for k in kinds if i < len(k)]
    return out


def documents(max_bytes: int, min_chars: int = 400) -> Iterable[Tuple[str, str]]:
    """(sha1 of the normalised text, text) of each unique document, in doc_files() order, until max_bytes. The
    hash is of the text as rendered, so the train / held-out split is stable wherever the same pages render alike."""
    seen = set()
    total = 0
    read = {"info": _info, "man": _man, "plain": _plain}
    for kind, path in doc_files():
        try:
            texts = read[kind](path)
        except (OSError, EOFError, gzip.BadGzipFile):
            continue
        for text in texts:
            text = re.sub(r"[ \t]+\n", "\n", text.replace("\r\n", "\n"))
            text = re.sub(r"\n{3,}", "\n\n", text).strip()
            if len(text) < min_chars:
                continue
            digest = hashlib.sha1(text.encode("utf-8")).hexdigest()
            if digest in seen:
                continue
            seen.add(digest)
            yield digest, text
            total += len(text.encode("utf-8"))
            if total >= max_bytes:
                return
