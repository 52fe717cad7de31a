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

Where variable tracking is lost: --values vt-names trains a head that reads, from the vector of a chunk holding one of
variable tracking's statements (`VAR ABCDE = 12345.` or `VAR FGHIJ = VAR ABCDE.`), the 5 letters of the variable it
assigns, and prints the accuracy by letter (chance 3.8%); each batch is scored before the step that learns from it.
"""
import argparse
import json
import os
import random
import re
import sys
import time

import torch
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))
from training.e2llm.data.corpus import load_documents  # noqa: E402
from training.e2llm.data.tasks import gen_niah_single, gen_vt  # noqa: E402
from training.e2llm.export import load_model  # noqa: E402
from training.e2llm.modules import E2LLMConfig, build_model, pad_batch  # noqa: E402
from training.e2llm.tokenizer import PAD_ID, ByteLevelBPETokenizer  # noqa: E402
from training.e2llm.train import NEEDLE_VALUE, ChunkIds, NeedleProbe  # noqa: E402

VT_STATEMENT = re.compile(r"VAR ([A-Z]{5}) = ")  # the variable a statement assigns (gen_vt's format)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--checkpoint", default=None, help="start from this checkpoint (default: the seeded init)")
    ap.add_argument("--seconds", type=float, default=480)
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--lr", type=float, default=1e-3)
    ap.add_argument("--token-weight", type=float, default=0.0)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--values", choices=("both", "numbers", "uuids", "vt-names"), default="both",
                    help="train on chunks whose needle holds these values, or on variable tracking's statements")
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
    names = torch.nn.Linear(model.cfg.encoder.hidden, 5 * 26)  # --values vt-names: the assigned variable's letters
    params = ([] if a.freeze_encoder else list(enc.parameters())) + list(probe.parameters()) + list(place.parameters()) \
        + list(names.parameters())
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

    def needle_batch():
        """Chunks holding a needle whose value is of the --values type."""
        texts = []
        while len(texts) < a.batch:
            s = gen_niah_single(rng, docs, 1, 512)
            texts += [c for c in s.chunks if (m := NEEDLE_VALUE.search(c)) and wanted(m.group(1))]
        return texts

    def vt_batch():
        """Chunks holding exactly one VAR statement, and the letters of the variable it assigns."""
        texts, assigned = [], []
        while len(texts) < a.batch:
            for c in gen_vt(rng, docs, rng.randint(1, 3), 512).chunks:
                if len(found := VT_STATEMENT.findall(c)) == 1:
                    texts.append(c)
                    assigned.append([ord(ch) - ord("A") for ch in found[0]])
        return texts, torch.tensor(assigned)

    t0, step, accs, paccs, ghits, gcount, lhits, lcount = time.time(), 0, [], [], [0] * 4, 0, torch.zeros(5), 0
    while time.time() - t0 < a.seconds:
        texts, assigned = vt_batch() if a.values == "vt-names" else (needle_batch(), None)
        seqs = [ids.chunk(c) for c in texts]
        ii, mm = pad_batch(seqs, PAD_ID)
        h = enc.token_states(ii, mm)
        emb = enc.pma(h, mm) if enc.pma is not None else enc(ii, mm)
        if assigned is not None:
            logits = names(emb).view(-1, 5, 26)
            loss = F.cross_entropy(logits.reshape(-1, 26), assigned.reshape(-1))
            lhits, lcount = lhits + (logits.argmax(-1) == assigned).float().sum(0), lcount + len(texts)
        else:
            loss, acc = probe.loss(emb, texts)
            accs.append(acc)
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
        if step % 25 == 0:
            rec = {"step": step, "seconds": round(time.time() - t0), "examples": step * a.batch}
            if accs:
                rec["digit_acc"] = round(sum(accs) / len(accs), 3)
            if paccs:
                rec["place_acc"] = round(sum(paccs) / len(paccs), 3)
            if gcount:
                rec["uuid_hex_acc_by_8_places"] = [round(x / gcount, 3) for x in ghits]
            if lcount:
                rec["vt_name_acc_by_letter"] = [round(float(x) / lcount, 3) for x in lhits]
            print(json.dumps(rec), flush=True)
            accs, paccs, ghits, gcount, lhits, lcount = [], [], [0] * 4, 0, torch.zeros(5), 0
    if a.save:
        torch.save({"config": model.cfg.to_dict(), "model": model.state_dict(), "tokenizer": tok_spec,
                    "probe": probe.state_dict()}, a.save)
        print(f"saved {a.save} after {step} steps", flush=True)


if __name__ == "__main__":
    main()
