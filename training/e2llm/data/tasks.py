"""Sample generators for the two E2LLM objectives.

Every generator returns a ``Sample``: the document's chunks (cut by the runtime chunker, ``export.chunk_text``),
a prompt template from the manifest (``reconstruct`` | ``qa`` | ``instruct`` | ``summarize``) with its field,
and the answer text (the loss is on the answer tokens + EOS only).

* reconstruction: a window of consecutive chunks of a document; the decoder restates their text.
* instruction tuning over whole documents (RULER-style, needle sentence
  "One of the special magic {type} for {key} is: {value}." with 7-digit numbers, word keys and UUIDs):
  ``niah_single`` (noise or prose haystack), ``niah_multikey`` (distractor needles), ``niah_multivalue``,
  ``niah_multiquery``, ``vt`` (variable tracking), ``cwe`` (common words), ``fwe`` (frequent words),
  ``qa`` (simple fact question over prose) and ``summary`` (summary-style extraction: the document's first line).

All randomness comes from the ``random.Random`` passed in, so a seed fixes the stream.
"""
from __future__ import annotations

import functools
import random
import re
import string
from dataclasses import dataclass, field
from typing import Callable, Dict, List, Optional, Sequence, Tuple

from ..export import TEMPLATES, chunk_text
from . import expansion

NEEDLE = "One of the special magic {type} for {key} is: {value}."
QUESTION = "What is the special magic {type} for {key} mentioned in the provided text?"
QUESTION_MV = "What are all the special magic {type} for {key} mentioned in the provided text?"
QUESTION_MQ = "What are all the special magic {type} for {keys} mentioned in the provided text?"
NOISE = "The grass is green. The sky is blue. The sun is yellow. Here we go. There and back again. "

ADJECTIVES = ("able acid aged airy amber ample arid ashen awake azure bald balmy bland blunt bold brave brief brisk "
              "broad bumpy calm candid cheap chief civil clean clear close cold coral crisp cruel curly damp dear "
              "deep dense dizzy dry dull eager early easy empty equal exact faint fair false fancy fast fierce "
              "firm flat fluffy fond frail fresh frosty fuzzy giant glad gloomy golden grand grave great green "
              "grim gusty hairy handy happy hardy harsh hasty hazy heavy hidden hollow honest humble icy idle "
              "jolly keen kind large lazy lean light livid lone loud lucky lush mad merry mild misty modest moody "
              "muddy narrow neat noble noisy odd oily pale plain plump polite proud quaint quick quiet rapid rare "
              "raw ready rich rigid ripe rough round royal rusty sad safe salty sandy shaky sharp shiny short shy "
              "silent silky slim slow small smart smooth snowy soft solid sour spare spicy stale steep stiff stout "
              "sunny sweet swift tall tame tart tender thick tidy tiny tough vast vivid warm wary weary wet wide "
              "wild windy wise witty young zany").split()
NOUNS = ("acorn anchor apple arrow badge bag ball barn basket beach bean bear bell bench berry bird blade boat bone "
         "book boot bottle bowl box branch bread brick bridge brush bucket cabin cake camel candle canoe cap car "
         "card carpet cart castle cat chair chalk cheese cherry chest cloud clock coat coin comet cone cookie cord "
         "crab crane crow crown cup curtain daisy desk dog doll door dragon drum duck eagle engine feather fence "
         "fern field fig flag flute fork fox frog garden gate gem ghost glove goat grape harp hat hawk hill horse "
         "house island jar jelly kettle key kite knife ladder lake lamp leaf lemon lion lizard lock map maple "
         "marble melon mirror moon moth mouse nail needle nest net oak ocean olive onion orange otter owl paddle "
         "panda paper pearl pencil pepper piano pillow pine planet plum pond potato pumpkin puzzle quilt rabbit "
         "radio raven ribbon ring river robin rocket rope rose sail salmon saddle scarf seal shell ship shoe "
         "silver skate sled snail spoon star stone storm sugar swan table tiger tomato tower train tree tulip "
         "turtle umbrella valley violin wagon walnut whale wheel willow window wolf zebra").split()
FACT_ATTRS = {
    "favourite colour": "red blue green yellow purple orange violet scarlet teal indigo".split(),
    "home town": "Lisbon Oslo Quito Hanoi Dakar Perth Lima Cork Graz Turku Malmo Bergen".split(),
    "pet": "cat dog parrot hamster tortoise ferret rabbit goldfish lizard canary".split(),
    "instrument": "piano violin cello flute oboe trumpet harp guitar drums clarinet".split(),
}
FIRST_NAMES = ("Alice Bruno Chloe Dmitri Elena Farid Greta Hugo Ingrid Jonas Kira Liam Mira Nils Olga Pavel Rosa "
               "Sven Tara Umar Vera Wim Yara Zeno").split()


@dataclass
class Sample:
    task: str
    template: str  # key of export.TEMPLATES
    chunks: List[str]
    answer: str
    fields: Dict[str, str] = field(default_factory=dict)
    # the haystack the document was built on ("noise" | "prose"; "" when the document is not a haystack with
    # inserted sentences): training pads such documents with more chunks of the same kind
    hay: str = ""
    # what the answer rests on (strings found in the chunks that hold it) and sentences of the answer's kind that it
    # does not rest on: the selective-expansion policy reads both (data/expansion.py)
    evidence: List[str] = field(default_factory=list)
    distractors: List[str] = field(default_factory=list)
    # chunk indices the decoder reads as raw tokens in place of their soft tokens (sorted; empty: none)
    expand: List[int] = field(default_factory=list)

    def prompt(self):
        prefix, suffix = TEMPLATES[self.template].split("<|context|>")
        return prefix.format(**self.fields), suffix.format(**self.fields)


# ----------------------------------------------------------------------------------------------
# random values
# ----------------------------------------------------------------------------------------------

def rand_number(rng: random.Random) -> str:
    return str(rng.randint(1_000_000, 9_999_999))


def rand_word_key(rng: random.Random) -> str:
    return f"{rng.choice(ADJECTIVES)}-{rng.choice(NOUNS)}"


@functools.lru_cache(maxsize=1024)
def _key_words(doc: str) -> Tuple[str, ...]:
    """A document's words fit for a key (a dense haystack draws dozens of keys from one document)."""
    words = tuple(w.lower() for w in _WORD.findall(doc[:20000]) if 3 <= len(w) <= 10 and w.isalpha())
    return words or tuple(NOUNS)


def rand_corpus_key(rng: random.Random, docs: Sequence[str]) -> str:
    """A key of two words drawn from the prose (RULER draws its keys from a word list the model never saw): key
    matching has to work on any words, not on the generators' own vocabulary."""
    words = _key_words(rng.choice(docs))
    return f"{rng.choice(words)}-{rng.choice(words)}"


def rand_uuid(rng: random.Random) -> str:
    h = "%032x" % rng.getrandbits(128)
    return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"


def rand_value(rng: random.Random, kind: str) -> str:
    return {"numbers": rand_number, "words": lambda r: rng.choice(NOUNS), "uuids": rand_uuid}[kind](rng)


# ----------------------------------------------------------------------------------------------
# haystacks
# ----------------------------------------------------------------------------------------------

def prose_haystack(rng: random.Random, docs: Sequence[str], n_chars: int) -> str:
    """About n_chars of consecutive prose, starting at a line start of a random document (several documents
    joined if one is too short)."""
    parts: List[str] = []
    total = 0
    while total < n_chars:
        d = rng.choice(docs)
        starts = [0] + [i + 1 for i, c in enumerate(d) if c == "\n" and i + 1 < len(d)]
        s = rng.choice(starts[: max(1, len(starts) - 3)])
        piece = d[s: s + (n_chars - total) + 200]
        # end at a line/sentence end if possible
        cut = max(piece.rfind("\n"), piece.rfind(". "))
        if cut > len(piece) // 2:
            piece = piece[: cut + 1]
        if not piece.endswith("\n"):
            piece += "\n"
        parts.append(piece)
        total += len(piece)
    return "".join(parts)


def noise_haystack(n_chars: int) -> str:
    reps = n_chars // len(NOISE) + 1
    return (NOISE * reps)[: reps * len(NOISE)]


def insert_sentences(rng: random.Random, text: str, sents: Sequence[str]) -> str:
    """Insert each sentence at a random sentence / line boundary (random depth), in the given order."""
    bounds = [0] + [i + 1 for i, c in enumerate(text) if c == "\n"] + \
             [i + 2 for i in range(len(text) - 1) if text[i] == "." and text[i + 1] == " "]
    bounds = sorted(set(b for b in bounds if b <= len(text)))
    picks = sorted(rng.choice(bounds) for _ in sents)
    out, last = [], 0
    for pos, s in zip(picks, sents):
        out.append(text[last:pos])
        sep_after = "\n" if (pos == 0 or text[pos - 1] == "\n") else " "
        out.append(s + sep_after)
        last = pos
    out.append(text[last:])
    return "".join(out)


def haystack(rng: random.Random, docs: Sequence[str], n_chars: int, kind: str) -> str:
    return noise_haystack(n_chars) if kind == "noise" else prose_haystack(rng, docs, n_chars)


# ----------------------------------------------------------------------------------------------
# generators; n_chunks is the target document size in chunks of chunk_chars
# ----------------------------------------------------------------------------------------------

def gen_reconstruct(rng, docs, n_chunks, chunk_chars, max_answer_chars=None):
    n = rng.randint(1, max(1, n_chunks))
    for _ in range(20):
        d = rng.choice(docs)
        chunks = chunk_text(d, chunk_chars)
        if len(chunks) >= n:
            break
    n = min(n, len(chunks))
    s = rng.randint(0, len(chunks) - n)
    window = chunks[s: s + n]
    answer = "".join(window)
    if max_answer_chars and len(answer) > max_answer_chars:
        answer = answer[:max_answer_chars]
    return Sample("reconstruct", "reconstruct", window, answer)


def _doc_chunks(rng, docs, text_chars, chunk_chars, hay, needles):
    text = insert_sentences(rng, haystack(rng, docs, text_chars, hay), needles)
    return chunk_text(text, chunk_chars)


def _n_chars(rng, n_chunks, chunk_chars):
    n = rng.randint(1, max(1, n_chunks))
    return max(1, int(n * chunk_chars * 0.8) - 60)


DISTRACTOR_NUMBER_SENTENCES = (
    "The {noun} register lists entry {value}.", "Reference {value} was filed under {noun}.",
    "See section {value} of the {noun} notes.", "The {noun} account number is {value}.",
    "Build {value} fixed the {noun} problem.", "Call {value} to reach the {noun} desk.",
)


def gen_niah_single(rng, docs, n_chunks, chunk_chars, distract=False):
    """``distract``: other keys' needles of the same value type (and, for numbers, other sentences holding a value
    of the same shape) elsewhere in the document, so that matching the key is the only way to the answer."""
    hay = rng.choice(["noise", "prose", "prose"])
    vtype = rng.choice(["numbers", "numbers", "uuids"]) if hay == "prose" else "numbers"
    new_key = (lambda: rand_corpus_key(rng, docs)) if distract and rng.random() < 0.5 else (lambda: rand_word_key(rng))
    key = new_key()
    value = rand_value(rng, vtype)
    needle = NEEDLE.format(type=vtype, key=key, value=value)
    others: List[str] = []
    if distract:
        for _ in range(rng.randint(1, 3)):
            k = new_key()
            if k != key:
                others.append(NEEDLE.format(type=vtype, key=k, value=rand_value(rng, vtype)))
        if vtype == "numbers":
            for _ in range(rng.randint(0, 2)):
                others.append(rng.choice(DISTRACTOR_NUMBER_SENTENCES).format(noun=rng.choice(NOUNS), value=rand_number(rng)))
    sents = [needle] + others
    rng.shuffle(sents)
    chunks = _doc_chunks(rng, docs, _n_chars(rng, n_chunks, chunk_chars), chunk_chars, hay, sents)
    return Sample("niah_single", "qa", chunks, " " + value, {"question": QUESTION.format(type=vtype, key=key)}, hay,
                  evidence=[value], distractors=others)


def gen_niah_multikey(rng, docs, n_chunks, chunk_chars, dense=False):
    """2-4 needles of different keys in prose; ``dense``: the haystack is made of other keys' needles alone (RULER's
    niah_multikey_2/3), so a chunk holds several needles and only its key tells the answer's apart."""
    vtype = "numbers"
    uuid_keys = rng.random() < (0.4 if dense else 0.25)
    if uuid_keys:
        vtype = "uuids"
    n_chars = _n_chars(rng, n_chunks, chunk_chars)
    k = max(2, n_chars // (100 if uuid_keys else 60)) if dense else rng.randint(2, 4)
    corpus_keys = dense and rng.random() < 0.5
    keys, vals = [], []
    while len(keys) < k:
        key = rand_uuid(rng) if uuid_keys else rand_corpus_key(rng, docs) if corpus_keys else rand_word_key(rng)
        if key not in keys:
            keys.append(key)
            vals.append(rand_value(rng, vtype))
    needles = [NEEDLE.format(type=vtype, key=a, value=b) for a, b in zip(keys, vals)]
    rng.shuffle(needles)
    q = rng.randrange(k)
    if dense:
        chunks = chunk_text(" ".join(needles) + "\n", chunk_chars)
    else:
        chunks = _doc_chunks(rng, docs, n_chars, chunk_chars, "prose", needles)
    return Sample("niah_multikey", "qa", chunks, " " + vals[q], {"question": QUESTION.format(type=vtype, key=keys[q])},
                  "" if dense else "prose", evidence=[vals[q]], distractors=[n for n in needles if vals[q] not in n])


def gen_niah_multivalue(rng, docs, n_chunks, chunk_chars):
    key = rand_word_key(rng)
    vals = [rand_number(rng) for _ in range(rng.randint(2, 4))]
    needles = [NEEDLE.format(type="numbers", key=key, value=v) for v in vals]
    # insert_sentences keeps the order, so the answer lists values in document order
    chunks = _doc_chunks(rng, docs, _n_chars(rng, n_chunks, chunk_chars), chunk_chars, "prose", needles)
    return Sample("niah_multivalue", "qa", chunks, " " + ", ".join(vals),
                  {"question": QUESTION_MV.format(type="numbers", key=key)}, "prose", evidence=vals)


def gen_niah_multiquery(rng, docs, n_chunks, chunk_chars):
    keys = []
    while len(keys) < rng.randint(2, 3) or len(keys) < 2:
        key = rand_word_key(rng)
        if key not in keys:
            keys.append(key)
    vals = [rand_number(rng) for _ in keys]
    needles = [NEEDLE.format(type="numbers", key=a, value=b) for a, b in zip(keys, vals)]
    chunks = _doc_chunks(rng, docs, _n_chars(rng, n_chunks, chunk_chars), chunk_chars, "prose", needles)
    return Sample("niah_multiquery", "qa", chunks, " " + ", ".join(vals),
                  {"question": QUESTION_MQ.format(type="numbers", keys=", ".join(keys))}, "prose", evidence=vals)


def _var_name(rng):
    return "".join(rng.choice(string.ascii_uppercase) for _ in range(5))


def gen_vt(rng, docs, n_chunks, chunk_chars):
    value = str(rng.randint(10000, 99999))
    hops = rng.randint(1, 4)
    names = []
    while len(names) < hops + 1:
        v = _var_name(rng)
        if v not in names:
            names.append(v)
    stmts = [f"VAR {names[0]} = {value}."] + [f"VAR {names[i]} = VAR {names[i - 1]}." for i in range(1, len(names))]
    chunks = _doc_chunks(rng, docs, _n_chars(rng, n_chunks, chunk_chars), chunk_chars, "noise", stmts)
    return Sample("vt", "instruct", chunks, " " + " ".join(names),
                  {"instruction": f"Find all variables that are assigned the value {value} in the text above."}, "noise",
                  evidence=[f"VAR {n} =" for n in names])


def _pseudo_words(rng, n):
    out = set()
    while len(out) < n:
        out.add("".join(rng.choice(string.ascii_lowercase) for _ in range(rng.randint(4, 7))))
    return sorted(out)


def gen_cwe(rng, docs, n_chunks, chunk_chars):
    """Common word extraction: a numbered word list; the top words appear more often than the rest."""
    n_top = 3
    target = _n_chars(rng, n_chunks, chunk_chars)
    words = _pseudo_words(rng, 40)
    rng.shuffle(words)
    top, rest = words[:n_top], words[n_top:]
    approx = max(12, target // 10)
    freq_top = max(3, approx // 8)
    items = [w for w in top for _ in range(freq_top)]
    while len(items) < approx:
        items.append(rng.choice(rest))
    # cap the rest so no other word reaches the top frequency
    counts: Dict[str, int] = {}
    kept = []
    for w in items:
        counts[w] = counts.get(w, 0) + 1
        if w in top or counts[w] < max(2, freq_top // 2):
            kept.append(w)
    rng.shuffle(kept)
    text = " ".join(f"{i + 1}. {w}" for i, w in enumerate(kept)) + "\n"
    return Sample("cwe", "instruct", chunk_text(text, chunk_chars), " " + " ".join(top),
                  {"instruction": f"What are the {n_top} most common words in the above list?"})


def gen_fwe(rng, docs, n_chunks, chunk_chars):
    """Frequent word extraction: Zipf-distributed coded words; answer the 3 most frequent."""
    target = _n_chars(rng, n_chunks, chunk_chars)
    words = _pseudo_words(rng, 30)
    rng.shuffle(words)
    n_tokens = max(15, target // 7)
    weights = [1.0 / (i + 1) ** 1.2 for i in range(len(words))]
    seq = rng.choices(words, weights=weights, k=n_tokens)
    counts: Dict[str, int] = {}
    for w in seq:
        counts[w] = counts.get(w, 0) + 1
    top = sorted(counts, key=lambda w: (-counts[w], words.index(w)))[:3]
    text = " ".join(seq) + "\n"
    return Sample("fwe", "instruct", chunk_text(text, chunk_chars), " " + " ".join(top),
                  {"instruction": "What are the 3 most frequently appeared coded words in the above coded text?"})


def gen_qa(rng, docs, n_chunks, chunk_chars):
    name = rng.choice(FIRST_NAMES) + " " + rng.choice(NOUNS).capitalize()
    attr = rng.choice(sorted(FACT_ATTRS))
    val = rng.choice(FACT_ATTRS[attr])
    fact = f"The {attr} of {name} is {val}."
    facts = [fact]
    # a distractor fact about someone else
    other = rng.choice(FIRST_NAMES) + " " + rng.choice(NOUNS).capitalize()
    if other != name:
        facts.append(f"The {attr} of {other} is {rng.choice(FACT_ATTRS[attr])}.")
    rng.shuffle(facts)
    chunks = _doc_chunks(rng, docs, _n_chars(rng, n_chunks, chunk_chars), chunk_chars, "prose", facts)
    return Sample("qa", "qa", chunks, " " + val, {"question": f"What is the {attr} of {name}?"}, "prose",
                  evidence=[fact[:-1]], distractors=facts[1:] if facts[0] == fact else facts[:1])


def gen_summary(rng, docs, n_chunks, chunk_chars):
    """Summary-style extraction: restate the document's first non-empty line (its title / heading)."""
    for _ in range(20):
        text = prose_haystack(rng, docs, _n_chars(rng, n_chunks, chunk_chars))
        first = next((l.strip() for l in text.split("\n") if l.strip()), "")
        if 8 <= len(first) <= 120:
            break
    return Sample("summary", "summarize", chunk_text(text, chunk_chars), " " + first)


STOPWORDS = frozenset(("the a an and or of to in on for by with as at from that this these those is are was were be been "
                       "it its you your we our they their he she his her not no any all each such which who whom what "
                       "when where how why may must shall can will would should could do does did if then than so also "
                       "there here into under over about other same more most only own").split())
WH = ("What", "Which", "Who", "When", "Where", "How", "Why", "Under what conditions", "What does the document say about")
AUX = ("", "", "does", "may", "is", "can", "must", "do", "are", "should")
# a sentence that starts with a letter or digit and ends with its full stop inside the chunk
_SENTENCE_IN_CHUNK = re.compile(r"[A-Za-z0-9][^.!?]*?[.!?](?=\s|$)", re.S)
_WORD = re.compile(r"[A-Za-z][A-Za-z'-]+")


def lookup_question(rng: random.Random, sentence: str) -> Optional[str]:
    """A question a reader could ask of the sentence: a question word, perhaps an auxiliary, and a few of the
    sentence's words (its content words always, some of its function words, in the sentence's order or not, a plural
    turned singular or the other way), so what ties question to sentence is lexical overlap, not one template."""
    words = _WORD.findall(sentence)
    content = [w for w in words if w.lower() not in STOPWORDS and len(w) > 2]
    if len(content) < 3:
        return None
    k = rng.randint(2, min(5, len(content)))
    start = rng.randrange(len(content) - k + 1)
    picked = content[start: start + k] if rng.random() < 0.6 else rng.sample(content, k)
    picked = [w[:-1] if w.endswith("s") and len(w) > 4 and rng.random() < 0.3 else
              (w + "s" if rng.random() < 0.1 else w) for w in picked]
    extra = [w for w in words if w.lower() in STOPWORDS and rng.random() < 0.3][:2]
    body = picked + extra
    if rng.random() < 0.5:
        rng.shuffle(body)
    wh, aux = rng.choice(WH), rng.choice(AUX)
    lower = [w if w.isupper() or w[:1].isupper() and rng.random() < 0.5 else w.lower() for w in body]
    return " ".join(x for x in (wh, aux, " ".join(lower)) if x) + "?"


def gen_lookup(rng, docs, n_chunks, chunk_chars):
    """Grounded reading of real prose: a question made from one sentence's words, answered by restating that sentence
    as the document has it. Only given with the sentence's chunk expanded (sample_task): from a soft token alone the
    decoder cannot restate a sentence, and learning to try would teach it to make sentences up."""
    for _ in range(20):
        text = prose_haystack(rng, docs, _n_chars(rng, n_chunks, chunk_chars))
        chunks = chunk_text(text, chunk_chars)
        j = rng.randrange(len(chunks))
        cands = [m.group(0).strip() for m in _SENTENCE_IN_CHUNK.finditer(chunks[j])]
        cands = [c for c in cands if 40 <= len(c) <= 220 and len(_WORD.findall(c)) >= 6]
        if not cands:
            continue
        sent = rng.choice(cands)
        q = lookup_question(rng, sent)
        if q:
            return Sample("lookup", "qa", chunks, " " + sent, {"question": q}, "prose", evidence=[sent])
    return gen_qa(rng, docs, n_chunks, chunk_chars)


GENERATORS: Dict[str, Callable] = {
    "reconstruct": gen_reconstruct,
    "niah_single": gen_niah_single,
    "niah_multikey": gen_niah_multikey,
    "niah_multivalue": gen_niah_multivalue,
    "niah_multiquery": gen_niah_multiquery,
    "vt": gen_vt,
    "cwe": gen_cwe,
    "fwe": gen_fwe,
    "qa": gen_qa,
    "summary": gen_summary,
    "lookup": gen_lookup,
}


def sample_task(rng: random.Random, docs: Sequence[str], mix: Dict[str, float], n_chunks: int, chunk_chars: int,
                max_recon_chars: Optional[int] = None, expand: Optional[Dict[str, float]] = None) -> Sample:
    """One sample of a task drawn from ``mix``; ``expand`` (a stage's selective-expansion policy, data/expansion.py)
    also picks the chunks the decoder reads raw. Without it the random stream is the one earlier runs drew."""
    names = sorted(mix)
    name = rng.choices(names, weights=[mix[n] for n in names], k=1)[0]
    if name == "reconstruct":
        return gen_reconstruct(rng, docs, n_chunks, chunk_chars, max_recon_chars)
    if not expand:
        return GENERATORS[name](rng, docs, n_chunks, chunk_chars)
    pol = expansion.policy(expand)
    # Variants given only with their chunks expanded: distractors (niah_single) and needle-only haystacks
    # (niah_multikey), since the frozen compressed path cannot tell keys apart and a soft-only sample of them would
    # teach it to guess among values; lookup, since a sentence cannot be restated from a soft token.
    forced = None
    if name in ("niah_single", "niah_multikey") and pol["p"] and rng.random() < pol["p"] * pol["distract_p"]:
        s = (gen_niah_single(rng, docs, n_chunks, chunk_chars, distract=True) if name == "niah_single"
             else gen_niah_multikey(rng, docs, n_chunks, chunk_chars, dense=True))
        forced = dict(pol, p=1.0, raw_doc_p=0.0)
    elif name == "lookup":
        s = gen_lookup(rng, docs, n_chunks, chunk_chars)
        forced = dict(pol, p=1.0, raw_doc_p=0.0, miss_p=0.0)
    else:
        s = GENERATORS[name](rng, docs, n_chunks, chunk_chars)
    s.expand = expansion.choose_expansion(rng, s.chunks, s.task, s.evidence, s.distractors, forced or pol)
    return s
