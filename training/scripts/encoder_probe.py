"""How fast can the chunk encoder learn to carry a needle's value? Encoder-only diagnostic (no decoder).

    OPENBLAS_NUM_THREADS=1 OMP_NUM_THREADS=1 /usr/bin/python3 training/scripts/encoder_probe.py \
        --checkpoint training/runs/tiny-cpu/package-ckpt.pt --seconds 480 --batch 32 [--token-weight 1.0]

Trains the encoder with the training-only NeedleProbe (train.py) on 512-character chunks that hold a needle sentence
(RULER's 7-digit numbers and UUIDs in prose or noise), and prints every 25 steps the probe's per-digit accuracy
(chance: 10% for a number's digits, 6.25% for a UUID's). With --token-weight, a second head on the token states
learns each token's place in a 7-digit number (0-6, or "not a needle digit"), and its accuracy on the needle digits
is printed too: the easier sub-problem the pooled vector depends on. Prints JSON lines.

Where a UUID is lost: --values uuids trains on UUID needles only and prints the hex accuracy by place (groups of 8 of
the 32 hex digits); --freeze-encoder trains the probe heads alone (what a trained encoder already carries);
--widen-conv K first grows the checkpoint's convolution to K taps without changing its output (ChunkEncoder.widen_conv).
"""
import argparse
import json
import os
import random
import sys
import time

import torch
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))
from training.e2llm.data.corpus import load_documents  # noqa: E402
from training.e2llm.data.tasks import gen_niah_single  # noqa: E402
from training.e2llm.export import load_model  # noqa: E402
from training.e2llm.modules import E2LLMConfig, build_model, pad_batch  # noqa: E402
from training.e2llm.tokenizer import PAD_ID, ByteLevelBPETokenizer  # noqa: E402
from training.e2llm.train import NEEDLE_VALUE, ChunkIds, NeedleProbe  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--checkpoint", default=None, help="start from this checkpoint (default: the seeded init)")
    ap.add_argument("--seconds", type=float, default=480)
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--lr", type=float, default=1e-3)
    ap.add_argument("--token-weight", type=float, default=0.0)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--values", choices=("both", "numbers", "uuids"), default="both",
                    help="train on chunks whose needle holds these values")
    ap.add_argument("--freeze-encoder", action="store_true", help="train only the probe heads")
    ap.add_argument("--widen-conv", type=int, default=0, help="grow the encoder's convolution to this many taps first")
    ap.add_argument("--save", default=None,
                    help="write the model (this encoder; adapter and decoder as loaded) and the probe heads as a training "
                         "checkpoint, for a training config's \"init\": encoder pretraining before joint training")
    ap.add_argument("--encoder", default=None,
                    help='JSON overrides of the encoder config, e.g. \'{"positions": "rope", "pre_ln": true}\': a fresh '
                         'seeded encoder of that shape (with --checkpoint, the adapter and decoder are the checkpoint\'s)')
    a = ap.parse_args()
    torch.set_num_threads(int(os.environ.get("OMP_NUM_THREADS", "1")))
    torch.manual_seed(a.seed)
    model, tok_spec = load_model(a.checkpoint, 0)
    if a.encoder:
        cfg = E2LLMConfig.from_dict({**model.cfg.to_dict(), "encoder": {**model.cfg.to_dict()["encoder"], **json.loads(a.encoder)}})
        fresh = build_model(a.seed, cfg)
        if a.checkpoint:  # the new encoder starts fresh; adapter and decoder come from the checkpoint
            fresh.load_state_dict({**fresh.state_dict(),
                                   **{k: v for k, v in model.state_dict().items() if not k.startswith("encoder.")}})
        model = fresh
    if a.widen_conv:
        model.encoder.widen_conv(a.widen_conv)
    enc = model.encoder.train(not a.freeze_encoder).requires_grad_(not a.freeze_encoder)
    if tok_spec is None:
        with open("models/e2llm-tiny/tokenizer.json", encoding="utf-8") as f:
            tok_spec = json.load(f)
    tok = ByteLevelBPETokenizer(tok_spec)
    ids = ChunkIds(tok, model.cfg.encoder.max_tokens)
    digit = {tok.encode(str(d))[0] for d in range(10)}
    first = {tok.encode(" " + str(d))[0] for d in range(10)}  # numbers are spelled digit by digit, the first with its space
    probe = NeedleProbe(model.cfg.encoder.hidden)
    place = torch.nn.Linear(model.cfg.encoder.hidden, 8)
    params = ([] if a.freeze_encoder else list(enc.parameters())) + list(probe.parameters()) + list(place.parameters())
    opt = torch.optim.AdamW(params, lr=a.lr, weight_decay=0.01)
    docs = load_documents()[0]
    rng = random.Random(a.seed)

    def places(seq):
        lab = [7] * len(seq)
        for i, t in enumerate(seq):
            if t in first and i + 7 <= len(seq) and all(x in digit for x in seq[i + 1: i + 7]):
                lab[i: i + 7] = range(7)
        return lab

    def wanted(value: str) -> bool:
        return a.values == "both" or (a.values == "uuids") == (len(value) == 36)

    def hex_by_place(chunk_emb, texts):
        """Hex-digit hits of the probe for the UUID chunks, per group of 8 places -> ([hits] * 4, count)."""
        head, width, classes, rows, tgts = probe.value_targets([NEEDLE_VALUE.findall(t) for t in texts])["hex"]
        if not rows:
            return [0] * 4, 0
        with torch.no_grad():
            hit = head(chunk_emb[torch.tensor(rows)]).view(len(rows), width, classes).argmax(-1) == torch.tensor(tgts)
        return [int(hit[:, g * 8: g * 8 + 8].sum()) for g in range(4)], len(rows) * 8

    t0, step, accs, paccs, ghits, gcount = time.time(), 0, [], [], [0] * 4, 0
    while time.time() - t0 < a.seconds:
        texts = []
        while len(texts) < a.batch:
            s = gen_niah_single(rng, docs, 1, 512)
            texts += [c for c in s.chunks if (m := NEEDLE_VALUE.search(c)) and wanted(m.group(1))]
        seqs = [ids.chunk(c) for c in texts]
        ii, mm = pad_batch(seqs, PAD_ID)
        h = enc.token_states(ii, mm)
        emb = enc.pma(h, mm) if enc.pma is not None else enc(ii, mm)
        loss, acc = probe.loss(emb, texts)
        hits, n = hex_by_place(emb, texts)
        ghits, gcount = [x + y for x, y in zip(ghits, hits)], gcount + n
        if a.token_weight:
            lab = torch.full(ii.shape, -100, dtype=torch.long)
            for i, seq in enumerate(seqs):
                lab[i, : len(seq)] = torch.tensor(places(seq))
            logits = place(h)
            loss = loss + a.token_weight * F.cross_entropy(logits.reshape(-1, 8), lab.reshape(-1), ignore_index=-100)
            sel = (lab >= 0) & (lab < 7)
            paccs.append(float((logits.argmax(-1)[sel] == lab[sel]).float().mean()))
        opt.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        opt.step()
        step += 1
        accs.append(acc)
        if step % 25 == 0:
            rec = {"step": step, "seconds": round(time.time() - t0), "examples": step * a.batch,
                   "digit_acc": round(sum(accs) / len(accs), 3)}
            if paccs:
                rec["place_acc"] = round(sum(paccs) / len(paccs), 3)
            if gcount:
                rec["uuid_hex_acc_by_8_places"] = [round(x / gcount, 3) for x in ghits]
            print(json.dumps(rec), flush=True)
            accs, paccs, ghits, gcount = [], [], [0] * 4, 0
    if a.save:
        torch.save({"config": model.cfg.to_dict(), "model": model.state_dict(), "tokenizer": tok_spec,
                    "probe": probe.state_dict()}, a.save)
        print(f"saved {a.save} after {step} steps", flush=True)


if __name__ == "__main__":
    main()
