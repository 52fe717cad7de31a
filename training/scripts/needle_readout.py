"""Where is a needle's value lost: in the chunk vector, or in the decoder reading it? Diagnostic of a checkpoint.

    OPENBLAS_NUM_THREADS=1 OMP_NUM_THREADS=1 /usr/bin/python3 training/scripts/needle_readout.py \
        --checkpoint training/runs/tiny-cpu-v3b/ckpt.pt [--samples 60] [--chunks 1] [--seed 99]

On held-out documents (seeds not used in training), 1-chunk needle documents by default:
- encoder side (when the checkpoint holds the training-only needle probe): the probe's per-digit accuracy and its
  share of values read back whole, by value type and haystack (a linear read of the chunk vector);
- decoder side: teacher-forced accuracy of each answer place of a 7-digit value (7 digits, then end-of-sequence),
  i.e. how often the decoder's next token is right given the digits before it.
Prints one JSON object.
"""
import argparse
import json
import os
import random
import sys

import torch

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))
from training.e2llm.data.corpus import load_documents  # noqa: E402
from training.e2llm.data.tasks import gen_niah_single  # noqa: E402
from training.e2llm.export import load_model  # noqa: E402
from training.e2llm.train import HEX, NEEDLE_VALUE, ChunkIds, NeedleProbe, answer_logits, build_batch, encode_chunks  # noqa: E402
from training.e2llm.tokenizer import ByteLevelBPETokenizer  # noqa: E402


@torch.no_grad()
def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--checkpoint", required=True)
    ap.add_argument("--samples", type=int, default=60)
    ap.add_argument("--chunks", type=int, default=1)
    ap.add_argument("--seed", type=int, default=99)
    a = ap.parse_args()
    torch.set_num_threads(int(os.environ.get("OMP_NUM_THREADS", "1")))
    model, tok_spec = load_model(a.checkpoint, 0)
    ck = torch.load(a.checkpoint, map_location="cpu")
    probe = None
    if "probe" in ck:
        probe = NeedleProbe(model.cfg.encoder.hidden)
        probe.load_state_dict(ck["probe"])
    tok = ByteLevelBPETokenizer(tok_spec)
    ids = ChunkIds(tok, model.cfg.encoder.max_tokens)
    held = load_documents()[1]
    rng = random.Random(a.seed)
    enc, places = {}, [[0, 0] for _ in range(8)]
    for _ in range(a.samples):
        s = gen_niah_single(rng, held, a.chunks, 512)
        value = s.answer.strip()
        needle = [c for c in s.chunks if NEEDLE_VALUE.search(c)]
        if probe is not None and needle:
            _, emb = encode_chunks(model, ids, needle[:1], "cpu")
            if len(value) == 7:
                pred, tgt = probe.digits(emb).view(7, 10).argmax(-1).tolist(), [int(c) for c in value]
            else:
                pred, tgt = probe.hex(emb).view(32, 16).argmax(-1).tolist(), [HEX.index(c) for c in value.replace("-", "")]
            r = enc.setdefault(("numbers" if len(value) == 7 else "uuids") + "/" + s.hay, [0, 0, 0, 0])
            ok = [p == t for p, t in zip(pred, tgt)]
            r[0] += sum(ok)
            r[1] += len(ok)
            r[2] += all(ok)
            r[3] += 1
        if len(value) == 7:
            X, A, Y, _, _, _, _ = build_batch(model, ids, [s], "cpu", 1.0)
            logits, tgt, _ = answer_logits(model, X, A, Y)
            for i, ok in enumerate((logits.argmax(-1) == tgt).tolist()[:8]):
                places[i][0] += ok
                places[i][1] += 1
    out = {"checkpoint": a.checkpoint, "chunks": a.chunks, "seed": a.seed,
           "probe": {k: {"per_digit": round(h / n, 3), "whole_value": f"{w}/{m}"} for k, (h, n, w, m) in sorted(enc.items())}
           if probe is not None else None,
           "decoder_teacher_forced_by_place": [round(h / max(1, n), 3) for h, n in places]}
    print(json.dumps(out))


if __name__ == "__main__":
    main()
