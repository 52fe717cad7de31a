"""Byte-level BPE tokenizer: pure-Python trainer, Hugging Face ``tokenizer.json`` writer, and an
encoder/decoder that reproduces exactly the ids Hugging Face's implementations (tokenizers.js /
the Rust crate) produce for that file.

Pipeline (identical in the JSON and here):
  1. added (special) tokens are split out of the raw text first (longest match, left to right);
  2. no normalizer;
  3. pre-tokenizer Sequence[Split(PRETOKENIZE_REGEX, behavior Isolated, invert false),
                            ByteLevel(add_prefix_space false, use_regex false)];
  4. BPE over the GPT-2 bytes_to_unicode alphabet (merges applied by rank, leftmost first);
  5. decoder ByteLevel.

The split regex uses only explicit ASCII character classes and negated classes (no \\s, \\w, \\d,
\\p{..}) so that Python's ``re``, JavaScript's ``RegExp(.., 'gu')`` and Oniguruma all agree.

Run ``/usr/bin/python3 -m training.train_tokenizer --out models/e2llm-tiny/tokenizer.json`` to train.
"""
from __future__ import annotations

import argparse
import glob
import hashlib
import heapq
import json
import os
import re
from collections import Counter, defaultdict
from typing import Dict, Iterable, List, Optional, Sequence, Tuple

SPECIAL_TOKENS = ["<pad>", "<bos>", "<eos>", "<cls>"]
PAD_ID, BOS_ID, EOS_ID, CLS_ID = 0, 1, 2, 3
VOCAB_SIZE = 4096

# Pieces: English contractions | optional space + run of letters (ASCII letters and any non-ASCII
# code point: accented words, CJK, emoji) | optional space + ONE digit | optional space + ASCII
# punctuation run | whitespace ending in line breaks | whitespace run not swallowing the space before
# a word (GPT-2 trick) | whitespace.
# ASCII control characters other than \t\n\v\f\r match nothing and become their own pieces
# (Split "Isolated" keeps the gaps).
_WS = r"\x09-\x0D\x20"
PRETOKENIZE_REGEX = (
    r"'(?:s|t|re|ve|m|ll|d)"
    r"| ?[^\x00-\x40\x5B-\x60\x7B-\x7F]+"
    r"| ?[0-9]"
    r"| ?[\x21-\x2F\x3A-\x40\x5B-\x60\x7B-\x7E]+"
    r"|[" + _WS + r"]*[\x0A\x0D]+"
    r"|[" + _WS + r"]+(?![^" + _WS + r"])"
    r"|[" + _WS + r"]+"
)
_PRETOKENIZE_RE = re.compile(PRETOKENIZE_REGEX)


def bytes_to_unicode() -> Dict[int, str]:
    """GPT-2's reversible byte -> printable unicode character table."""
    bs = list(range(ord("!"), ord("~") + 1)) + list(range(ord("\xa1"), ord("\xac") + 1)) + list(
        range(ord("\xae"), ord("\xff") + 1)
    )
    cs = bs[:]
    n = 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + n)
            n += 1
    return {b: chr(c) for b, c in zip(bs, cs)}


BYTE_ENCODER = bytes_to_unicode()
BYTE_DECODER = {c: b for b, c in BYTE_ENCODER.items()}


def split_isolated(text: str) -> List[str]:
    """Split with behavior Isolated: matches and the gaps between them are all kept (empty dropped)."""
    out: List[str] = []
    prev = 0
    for m in _PRETOKENIZE_RE.finditer(text):
        if m.start() > prev:
            out.append(text[prev : m.start()])
        if m.end() > m.start():
            out.append(m.group(0))
        prev = m.end()
    if prev < len(text):
        out.append(text[prev:])
    return out


_LONE_SURROGATE_RE = re.compile("[\ud800-\udfff]")


def byte_level(piece: str) -> str:
    # Lone surrogates (possible in JS strings) become U+FFFD, as TextEncoder does.
    piece = _LONE_SURROGATE_RE.sub("\ufffd", piece)
    return "".join(BYTE_ENCODER[b] for b in piece.encode("utf-8"))


def pre_tokenize(text: str) -> List[str]:
    return [byte_level(p) for p in split_isolated(text)]


# ----------------------------------------------------------------------------------------------
# Training corpus
# ----------------------------------------------------------------------------------------------

def _excluded(path: str) -> bool:
    # The Python documentation is reserved for an independent evaluation: never train on it.
    return "python" in path.lower()


def corpus_files() -> List[str]:
    """Redistributable text on a Debian system: licence texts and package copyright files."""
    files = sorted(
        p for p in glob.glob("/usr/share/common-licenses/*") if os.path.isfile(p) and not os.path.islink(p)
    )
    files += sorted(glob.glob("/usr/share/doc/*/copyright"))
    return [f for f in files if not _excluded(f)]


def unique_corpus_bytes() -> Iterable[Tuple[str, bytes]]:
    """(sha1 hex, bytes) of each readable corpus file, in corpus_files() order, duplicates skipped."""
    seen = set()
    for path in corpus_files():
        try:
            with open(path, "rb") as f:
                data = f.read()
        except OSError:
            continue
        digest = hashlib.sha1(data).hexdigest()
        if digest in seen:
            continue
        seen.add(digest)
        yield digest, data


def iter_corpus(max_bytes: int = 8_000_000) -> Iterable[str]:
    total = 0
    for _, data in unique_corpus_bytes():
        text = data.decode("utf-8", errors="replace")
        total += len(data)
        yield text
        if total >= max_bytes:
            break


# ----------------------------------------------------------------------------------------------
# Training
# ----------------------------------------------------------------------------------------------

def train_bpe(texts: Iterable[str], vocab_size: int = VOCAB_SIZE, min_frequency: int = 2,
              max_piece_chars: int = 64) -> Tuple[Dict[str, int], List[Tuple[str, str]]]:
    """Classic BPE on pre-tokenized byte-level pieces. Deterministic (ties by pair string order)."""
    counts: Counter = Counter()
    for text in texts:
        for piece in split_isolated(text):
            if len(piece) <= max_piece_chars:
                counts[byte_level(piece)] += 1
    words: List[List[str]] = []
    freqs: List[int] = []
    for w, c in sorted(counts.items()):
        words.append(list(w))
        freqs.append(c)

    vocab: Dict[str, int] = {tok: i for i, tok in enumerate(SPECIAL_TOKENS)}
    for b in range(256):
        vocab[BYTE_ENCODER[b]] = len(vocab)
    merges: List[Tuple[str, str]] = []

    pair_counts: Dict[Tuple[str, str], int] = defaultdict(int)
    where: Dict[Tuple[str, str], set] = defaultdict(set)
    for wi, (w, f) in enumerate(zip(words, freqs)):
        for a, b in zip(w, w[1:]):
            pair_counts[(a, b)] += f
            where[(a, b)].add(wi)
    heap = [(-c, p) for p, c in pair_counts.items()]
    heapq.heapify(heap)

    while len(vocab) < vocab_size and heap:
        negc, pair = heapq.heappop(heap)
        cur = pair_counts.get(pair, 0)
        if cur != -negc:
            if cur > 0:
                heapq.heappush(heap, (-cur, pair))
            continue
        if cur < min_frequency:
            break
        a, b = pair
        new = a + b
        merges.append(pair)
        if new not in vocab:
            vocab[new] = len(vocab)
        touched: Dict[Tuple[str, str], int] = {}
        for wi in sorted(where.pop(pair, ())):
            w = words[wi]
            f = freqs[wi]
            i = 0
            out: List[str] = []
            changed = False
            while i < len(w):
                if i + 1 < len(w) and w[i] == a and w[i + 1] == b:
                    out.append(new)
                    i += 2
                    changed = True
                else:
                    out.append(w[i])
                    i += 1
            if not changed:
                continue
            for p in zip(w, w[1:]):
                pair_counts[p] -= f
                touched[p] = 1
            for p in zip(out, out[1:]):
                pair_counts[p] += f
                where[p].add(wi)
                touched[p] = 1
            words[wi] = out
        pair_counts.pop(pair, None)
        for p in touched:
            c = pair_counts.get(p, 0)
            if c > 0:
                heapq.heappush(heap, (-c, p))
            else:
                pair_counts.pop(p, None)
    return vocab, merges


def tokenizer_json(vocab: Dict[str, int], merges: Sequence[Tuple[str, str]]) -> dict:
    return {
        "version": "1.0",
        "truncation": None,
        "padding": None,
        "added_tokens": [
            {"id": i, "content": tok, "single_word": False, "lstrip": False, "rstrip": False,
             "normalized": False, "special": True}
            for i, tok in enumerate(SPECIAL_TOKENS)
        ],
        "normalizer": None,
        "pre_tokenizer": {
            "type": "Sequence",
            "pretokenizers": [
                {"type": "Split", "pattern": {"Regex": PRETOKENIZE_REGEX}, "behavior": "Isolated",
                 "invert": False},
                {"type": "ByteLevel", "add_prefix_space": False, "trim_offsets": True, "use_regex": False},
            ],
        },
        "post_processor": None,
        "decoder": {"type": "ByteLevel", "add_prefix_space": True, "trim_offsets": True, "use_regex": True},
        "model": {
            "type": "BPE",
            "dropout": None,
            "unk_token": None,
            "continuing_subword_prefix": None,
            "end_of_word_suffix": None,
            "fuse_unk": False,
            "byte_fallback": False,
            "ignore_merges": False,
            "vocab": vocab,
            "merges": [f"{a} {b}" for a, b in merges],
        },
    }


def train_tokenizer(out_path: str, vocab_size: int = VOCAB_SIZE, max_bytes: int = 8_000_000) -> dict:
    vocab, merges = train_bpe(iter_corpus(max_bytes), vocab_size)
    if len(vocab) != vocab_size:
        raise RuntimeError(f"corpus too small: got {len(vocab)} tokens, wanted {vocab_size}")
    j = tokenizer_json(vocab, merges)
    os.makedirs(os.path.dirname(os.path.abspath(out_path)), exist_ok=True)
    with open(out_path, "w", encoding="utf-8") as f:
        json.dump(j, f, ensure_ascii=False, indent=1)
        f.write("\n")
    return j


# ----------------------------------------------------------------------------------------------
# Encoder / decoder for a tokenizer.json of this shape
# ----------------------------------------------------------------------------------------------

class ByteLevelBPETokenizer:
    def __init__(self, spec: dict):
        model = spec["model"]
        assert model["type"] == "BPE"
        self.vocab: Dict[str, int] = dict(model["vocab"])
        merges = [tuple(m.split(" ", 1)) if isinstance(m, str) else tuple(m) for m in model["merges"]]
        self.ranks: Dict[Tuple[str, str], int] = {}
        for i, m in enumerate(merges):
            self.ranks.setdefault(m, i)
        self.added: Dict[str, int] = {t["content"]: t["id"] for t in spec.get("added_tokens", [])}
        for tok, i in self.added.items():
            self.vocab[tok] = i
        self.id_to_token: Dict[int, str] = {i: t for t, i in self.vocab.items()}
        self.special_ids = {t["id"] for t in spec.get("added_tokens", []) if t.get("special")}
        if self.added:
            # longest first: same result as a trie's longest match at each position
            alts = sorted(self.added, key=len, reverse=True)
            self._added_re: Optional[re.Pattern] = re.compile("|".join(re.escape(a) for a in alts))
        else:
            self._added_re = None
        self._cache: Dict[str, List[str]] = {}

    @classmethod
    def from_file(cls, path: str) -> "ByteLevelBPETokenizer":
        with open(path, encoding="utf-8") as f:
            return cls(json.load(f))

    @property
    def vocab_size(self) -> int:
        return len(self.id_to_token)

    def bpe(self, piece: str) -> List[str]:
        cached = self._cache.get(piece)
        if cached is not None:
            return cached
        word = list(piece)
        ranks = self.ranks
        while len(word) > 1:
            best = None
            best_i = -1
            for i in range(len(word) - 1):
                r = ranks.get((word[i], word[i + 1]))
                if r is not None and (best is None or r < best):
                    best, best_i = r, i
            if best is None:
                break
            word[best_i : best_i + 2] = [word[best_i] + word[best_i + 1]]
        if len(self._cache) < 100_000:
            self._cache[piece] = word
        return word

    def _sections(self, text: str) -> List[Tuple[str, bool]]:
        if self._added_re is None:
            return [(text, False)]
        out: List[Tuple[str, bool]] = []
        prev = 0
        for m in self._added_re.finditer(text):
            if m.start() > prev:
                out.append((text[prev : m.start()], False))
            out.append((m.group(0), True))
            prev = m.end()
        if prev < len(text):
            out.append((text[prev:], False))
        return out

    def encode(self, text: str) -> List[int]:
        """Ids for ``text`` WITHOUT special tokens added (added tokens in the text are still matched)."""
        ids: List[int] = []
        for section, is_added in self._sections(text):
            if is_added:
                ids.append(self.added[section])
                continue
            for piece in pre_tokenize(section):
                for tok in self.bpe(piece):
                    ids.append(self.vocab[tok])
        return ids

    def decode(self, ids: Sequence[int], skip_special_tokens: bool = False) -> str:
        parts: List[str] = []
        buf: List[str] = []

        def flush():
            if buf:
                data = bytes(BYTE_DECODER[c] for c in "".join(buf))
                parts.append(data.decode("utf-8", errors="replace"))
                buf.clear()

        for i in ids:
            tok = self.id_to_token[int(i)]
            if tok in self.added:
                flush()
                if not (skip_special_tokens and int(i) in self.special_ids):
                    parts.append(tok)
            else:
                buf.append(tok)
        flush()
        return "".join(parts)


def main(argv: Optional[Sequence[str]] = None) -> None:
    ap = argparse.ArgumentParser(description="Train the byte-level BPE tokenizer.")
    ap.add_argument("--out", default="models/e2llm-tiny/tokenizer.json")
    ap.add_argument("--vocab-size", type=int, default=VOCAB_SIZE)
    ap.add_argument("--max-bytes", type=int, default=8_000_000)
    args = ap.parse_args(argv)
    j = train_tokenizer(args.out, args.vocab_size, args.max_bytes)
    print(f"wrote {args.out}: {len(j['model']['vocab'])} tokens, {len(j['model']['merges'])} merges")


if __name__ == "__main__":
    main()
