"""The serving chunker, for training: text is cut exactly as the API and ``e2llm ask`` cut it
(``libs/shared/src/chunker.ts``: sentence and line ends, then word boundaries, grapheme clusters kept whole), by
running that code in one long-lived Node process (``training/scripts/chunk_server.mjs``) instead of a Python copy
that would drift. A model trained on chunks cut otherwise is served chunks it never saw.

Needs Node and the built TypeScript (``npm ci`` builds it), as the tokenizer parity check does.
"""
from __future__ import annotations

import atexit
import json
import os
import shutil
import subprocess
import threading
from functools import lru_cache
from typing import List, Optional

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
SERVER = os.path.join(ROOT, "training", "scripts", "chunk_server.mjs")
BUILT = os.path.join(ROOT, "libs", "shared", "dist", "chunker.js")


class ServingChunker:
    def __init__(self, node: Optional[str] = None):
        node = node or shutil.which("node")
        if node is None:
            raise RuntimeError("the serving chunker needs Node.js on PATH (training cuts text with libs/shared/src/chunker.ts)")
        if not os.path.exists(BUILT):
            raise RuntimeError(f"{BUILT} is missing: run `npm ci` (or `npx tsc -b`) at the repository root first")
        self._proc = subprocess.Popen([node, SERVER], cwd=ROOT, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                      text=True, encoding="utf-8", bufsize=1)
        self._lock = threading.Lock()
        atexit.register(self.close)

    def chunk(self, text: str, chunk_chars: int, overlap_chars: int = 0) -> List[str]:
        # ensure_ascii: every character, lone surrogates included, travels as an escape, never as raw bytes
        request = json.dumps({"text": text, "chunkChars": chunk_chars, "overlapChars": overlap_chars}, ensure_ascii=True)
        with self._lock:
            self._proc.stdin.write(request + "\n")
            self._proc.stdin.flush()
            line = self._proc.stdout.readline()
        if not line:
            raise RuntimeError(f"the chunk server exited (code {self._proc.poll()})")
        answer = json.loads(line)
        if "error" in answer:
            raise ValueError(answer["error"])
        return answer["chunks"]

    def close(self) -> None:
        if self._proc.poll() is None:
            self._proc.stdin.close()
            self._proc.wait(timeout=10)


@lru_cache(maxsize=1)
def serving_chunker() -> ServingChunker:
    return ServingChunker()
