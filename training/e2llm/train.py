"""Joint E2LLM training (encoder + adapter + decoder) with both objectives, on CPU or CUDA.

    /usr/bin/python3 -m training.train --config training/configs/tiny-cpu.json [--deadline-utc HH:MM] [--fresh]
    /usr/bin/python3 -m training.train eval --checkpoint training/runs/tiny-cpu/ckpt.pt [--chunks 1,2,4] [--samples 20]

One config file per run (``training/configs/<name>.json``). The run directory ``training/runs/<name>/``
(gitignored) holds ``ckpt.pt`` (model, optimiser, data-RNG state, step, training seconds; rewritten
atomically every ``ckpt_every_s`` seconds and at the end), ``loss.jsonl`` and ``loss.csv``. Starting again
with the same config resumes from ``ckpt.pt``. The run stops by itself after ``max_train_seconds`` of
training time (summed over resumptions) or at ``--deadline-utc``, saves, and copies the loss curve to
``training/runs-summary/<name>/loss.csv``.

Objectives: reconstruction (``reconstruct`` template, the decoder restates the window's text) and
instruction tuning (``qa`` / ``instruct`` / ``summarize`` templates over whole documents), next-token
loss on the answer tokens + EOS only; reconstruction tokens weighted by ``recon_weight``. A penalty keeps
the soft tokens' RMS near the token embeddings' RMS (the measured failure mode of earlier runs was an
adapter output norm of ~500 that turned the soft token into an attention sink). Curriculum: ``stages``
(by fraction of the time budget) set chunk size, the most chunks per document, the batch size and the
task mix.
"""
from __future__ import annotations

import argparse
import csv
import datetime as _dt
import json
import math
import os
import random
import shutil
import signal
import sys
import time
from typing import List, Optional, Sequence, Tuple

import torch
import torch.nn.functional as F

from .export import load_checkpoint, load_model
from .modules import E2LLM, build_model
from .tokenizer import BOS_ID, EOS_ID, ByteLevelBPETokenizer
from .data.corpus import load_documents, read_corpus
from .data.expansion import chunks_holding
from .data.tasks import GENERATORS, Sample, sample_task
# the run's parts, one module each; their names stay importable from here (scripts and tests use them)
from .config import DEFAULTS, ROOT, STAGE_KEYS, STAGE_REQUIRED, check_config, load_config  # noqa: F401
from .batching import (  # noqa: F401
    ChunkIds, HaystackBank, INSERTED, answer_logits, bank_extras, build_batch, context_block, decoder_hidden,
    encode_chunks, fill_bank, rescale_adapter_output,
)
from .losses import HEX, NEEDLE_VALUE, NeedleProbe, bow_loss, mean_pairwise_cos, soft_rms_penalty, uniformity_loss  # noqa: F401

# ----------------------------------------------------------------------------------------------
# training
# ----------------------------------------------------------------------------------------------

def stage_at(cfg: dict, frac: float) -> Tuple[int, dict]:
    for i, st in enumerate(cfg["stages"]):
        if frac < st["until"]:
            return i, st
    return len(cfg["stages"]) - 1, cfg["stages"][-1]


def lr_at(cfg: dict, step: int, frac: float) -> float:
    if step < cfg["warmup_steps"]:
        return cfg["lr"] * (step + 1) / cfg["warmup_steps"]
    m = cfg["min_lr_frac"]
    return cfg["lr"] * (m + (1 - m) * 0.5 * (1 + math.cos(math.pi * min(1.0, frac))))


def pick_device(name: str) -> torch.device:
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    if name == "cuda":
        torch.backends.cuda.matmul.allow_tf32 = True  # the tiny model's matmuls: TF32 is well inside its noise
    return torch.device(name)


def init_model(cfg: dict) -> E2LLM:
    if cfg["init"] == "seed":
        return build_model(cfg["seed"])
    model, _ = load_model(cfg["init"], cfg["seed"])
    return model


def save_ckpt(path: str, model, opt, state: dict, tok_spec: dict, probe: Optional[torch.nn.Module] = None) -> None:
    tmp = path + ".tmp"
    ck = {"config": model.cfg.to_dict(), "model": {k: v.detach().cpu() for k, v in model.state_dict().items()},
          "tokenizer": tok_spec, "optimizer": opt.state_dict(), "train_state": state}
    if probe is not None:
        ck["probe"] = {k: v.detach().cpu() for k, v in probe.state_dict().items()}
    torch.save(ck, tmp)
    os.replace(tmp, path)


def train(cfg: dict, fresh: bool = False, deadline: Optional[float] = None, quiet: bool = False) -> dict:
    check_config(cfg)
    torch.set_num_threads(int(cfg["threads"]))
    device = pick_device(cfg["device"])
    run_dir = cfg.get("run_dir") or os.path.join(ROOT, "training", "runs", cfg["name"])
    os.makedirs(run_dir, exist_ok=True)
    ckpt_path = os.path.join(run_dir, "ckpt.pt")
    with open(os.path.join(run_dir, "config.json"), "w") as f:
        json.dump(cfg, f, indent=2)
    tok_path = cfg["tokenizer"] if os.path.isabs(cfg["tokenizer"]) else os.path.join(ROOT, cfg["tokenizer"])
    with open(tok_path, encoding="utf-8") as f:
        tok_spec = json.load(f)
    tok = ByteLevelBPETokenizer(tok_spec)
    torch.manual_seed(cfg["seed"])
    model = init_model(cfg).to(device).train()
    ids = ChunkIds(tok, model.cfg.encoder.max_tokens)
    probe = NeedleProbe(model.cfg.encoder.hidden).to(device)
    bank = HaystackBank(int(cfg["bank_size"]), model.cfg.encoder.hidden, device)
    params = list(model.named_parameters()) + [("probe." + n, p) for n, p in probe.named_parameters()]
    decay = [p for n, p in params if p.dim() >= 2]
    no_decay = [p for n, p in params if p.dim() < 2]
    opt = torch.optim.AdamW([{"params": decay, "weight_decay": cfg["weight_decay"]},
                             {"params": no_decay, "weight_decay": 0.0}], lr=cfg["lr"], betas=tuple(cfg["betas"]))
    rng = random.Random(cfg["seed"])
    state = {"step": 0, "train_seconds": 0.0}
    if os.path.exists(ckpt_path) and not fresh:
        ck = load_checkpoint(ckpt_path)
        model.load_state_dict(ck["model"])
        if "probe" in ck:
            probe.load_state_dict(ck["probe"])
        opt.load_state_dict(ck["optimizer"])
        state = ck["train_state"]
        rng.setstate(state["rng"])
        if "torch_rng" in state:
            torch.set_rng_state(state["torch_rng"])
        if not quiet:
            print(f"resumed from {ckpt_path} at step {state['step']} ({state['train_seconds']:.0f}s)", flush=True)
    else:
        if cfg["init"] != "seed" and "probe" in (ck := load_checkpoint(cfg["init"])):
            probe.load_state_dict(ck["probe"])  # an encoder pretrained against the probe keeps its heads
    if fresh:
        for n in ("loss.jsonl", "loss.csv"):
            if os.path.exists(os.path.join(run_dir, n)):
                os.remove(os.path.join(run_dir, n))
    docs = cfg.get("_docs") or (read_corpus(cfg["docs_file"]) if cfg.get("docs_file")
                                else load_documents(sources=cfg["corpus_sources"])[0])
    if state["step"] == 0 and cfg["rescale_adapter"]:
        st0 = cfg["stages"][0]
        f = rescale_adapter_output(model, ids, [sample_task(random.Random(cfg["seed"] + 1), docs, st0["mix"],
                                   st0["max_chunks"], st0["chunk_chars"]) for _ in range(8)], device)
        if not quiet:
            print(f"adapter output rescaled by {f:.4f}", flush=True)
    log_jsonl = open(os.path.join(run_dir, "loss.jsonl"), "a")
    csv_path = os.path.join(run_dir, "loss.csv")
    new_csv = not os.path.exists(csv_path)
    log_csv = open(csv_path, "a", newline="")
    cw = csv.writer(log_csv)
    if new_csv:
        cw.writerow(["step", "train_seconds", "stage", "lr", "loss", "recon_loss", "task_loss", "norm_pen",
                     "bow_loss", "soft_rms", "emb_rms", "chunk_cos", "probe_acc", "seq_len"])
    acc = {"loss": [], "recon": [], "task": [], "pen": [], "bow": [], "probe": [], "soft_n": []}
    last_ckpt = time.time()
    budget = float(cfg["max_train_seconds"])
    t_prev = time.time()
    first_loss = None
    try:
        while True:
            frac = state["train_seconds"] / budget
            if frac >= 1.0 or (deadline is not None and time.time() >= deadline) or \
                    (cfg.get("max_steps") and state["step"] >= cfg["max_steps"]):
                break
            si, st = stage_at(cfg, frac)
            lr = lr_at(cfg, state["step"], frac)
            for g in opt.param_groups:
                g["lr"] = lr
            # a stage with "train_encoder": false holds the encoder fixed (no graph, no update, no probe): the decoder
            # learns to read a code that no longer moves under it
            train_enc = st.get("train_encoder", True)
            for p in model.encoder.parameters():
                p.requires_grad_(train_enc)
            samples = [sample_task(rng, docs, st["mix"], st["max_chunks"], st["chunk_chars"], cfg["max_recon_chars"],
                                   st.get("expand"))
                       for _ in range(st["batch_size"])]
            extras = bank_extras(model, bank, samples, st["pad_chunks"], rng) if st.get("pad_chunks") else None
            X, A, Y, W, soft, chunk_emb, enc_ids = build_batch(model, ids, samples, device, cfg["recon_weight"],
                                                               extras=extras)
            logits, tgt, sel = answer_logits(model, X, A, Y)
            tok_loss = F.cross_entropy(logits, tgt, reduction="none")
            w = W[sel]
            loss_main = (tok_loss * w).sum() / w.sum()
            pen, soft_rms, emb_rms = soft_rms_penalty(model, chunk_emb)
            loss = loss_main + cfg["norm_penalty"] * pen
            if cfg["uniformity_weight"] and train_enc:
                loss = loss + cfg["uniformity_weight"] * uniformity_loss(chunk_emb)
            bow = bow_loss(model, soft, enc_ids, cfg["bow_scale"]) if cfg["bow_weight"] else soft.sum() * 0.0
            loss = loss + cfg["bow_weight"] * bow
            probe_acc = float("nan")
            if cfg["probe_weight"] and train_enc:
                probe_loss, probe_acc = probe.loss(chunk_emb, [c for s in samples for c in s.chunks])
                loss = loss + cfg["probe_weight"] * probe_loss
            fill_bank(bank, samples, chunk_emb)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_([p for _, p in params], cfg["grad_clip"])
            opt.step()
            now = time.time()
            state["train_seconds"] += now - t_prev
            t_prev = now
            state["step"] += 1
            with torch.no_grad():
                rec_mask = torch.tensor([s.template == "reconstruct" for s in samples], device=device)
                rows = sel.nonzero()[:, 0]
                rm = rec_mask[rows]
                acc["loss"].append(float(loss_main))
                if rm.any():
                    acc["recon"].append(float(tok_loss[rm].mean()))
                if (~rm).any():
                    acc["task"].append(float(tok_loss[~rm].mean()))
                acc["pen"].append(float(pen))
                acc["bow"].append(float(bow))
                if probe_acc == probe_acc:
                    acc["probe"].append(probe_acc)
                acc["soft_n"].append(X.shape[1])
            if first_loss is None:
                first_loss = float(loss_main)
            if state["step"] % cfg["log_every"] == 0:
                mean = lambda v: sum(v) / len(v) if v else float("nan")
                rec = {"step": state["step"], "train_seconds": round(state["train_seconds"], 1), "stage": si,
                       "lr": lr, "loss": mean(acc["loss"]), "recon_loss": mean(acc["recon"]),
                       "task_loss": mean(acc["task"]), "norm_pen": mean(acc["pen"]), "bow_loss": mean(acc["bow"]), "soft_rms": soft_rms,
                       "probe_acc": mean(acc["probe"]), "seq_len": mean(acc["soft_n"]),
                       "emb_rms": emb_rms, "chunk_cos": mean_pairwise_cos(chunk_emb)}
                log_jsonl.write(json.dumps(rec) + "\n")
                log_jsonl.flush()
                cw.writerow([rec[k] if not isinstance(rec[k], float) else ("%.5g" % rec[k]) for k in
                             ["step", "train_seconds", "stage", "lr", "loss", "recon_loss", "task_loss", "norm_pen",
                              "bow_loss", "soft_rms", "emb_rms", "chunk_cos", "probe_acc", "seq_len"]])
                log_csv.flush()
                if not quiet:
                    print(json.dumps(rec), flush=True)
                acc = {k: [] for k in acc}
            if time.time() - last_ckpt >= cfg["ckpt_every_s"]:
                state["rng"] = rng.getstate()
                state["torch_rng"] = torch.get_rng_state()
                save_ckpt(ckpt_path, model, opt, state, tok_spec, probe)
                last_ckpt = time.time()
    finally:
        state["rng"] = rng.getstate()
        state["torch_rng"] = torch.get_rng_state()
        save_ckpt(ckpt_path, model, opt, state, tok_spec, probe)
        log_jsonl.close()
        log_csv.close()
        if not cfg.get("run_dir"):
            summ = os.path.join(ROOT, "training", "runs-summary", cfg["name"])
            os.makedirs(summ, exist_ok=True)
            shutil.copyfile(csv_path, os.path.join(summ, "loss.csv"))
    return {"step": state["step"], "train_seconds": state["train_seconds"], "first_loss": first_loss,
            "last_loss": float(loss_main) if first_loss is not None else None, "ckpt": ckpt_path}


# ----------------------------------------------------------------------------------------------
# quick evaluation (held-out documents, seeds not used in training)
# ----------------------------------------------------------------------------------------------

@torch.no_grad()
def greedy_answer(model: E2LLM, ids: ChunkIds, s: Sample, max_new: int, device) -> str:
    E = model.decoder.embed_tokens.weight
    soft = context_block(E, model.adapter(encode_chunks(model, ids, s.chunks, device)[1]), ids, s)
    prefix, suffix = s.prompt()
    p = torch.tensor([BOS_ID] + ids.encode(prefix), device=device)
    q = torch.tensor(ids.encode(suffix), device=device)
    x = torch.cat([E[p], soft, E[q]], dim=0)
    out: List[int] = []
    for _ in range(max_new):
        h = decoder_hidden(model.decoder, x.unsqueeze(0), torch.ones(1, x.shape[0], dtype=torch.long, device=device))
        t = int(torch.argmax(h[0, -1] @ E.t()))
        if t == EOS_ID:
            break
        out.append(t)
        x = torch.cat([x, E[t].unsqueeze(0)], dim=0)
    return ids.tok.decode(out)


@torch.no_grad()
def evaluate(checkpoint: str, chunks: Sequence[int], samples: int, seed: int, tasks: Sequence[str],
             chunk_chars: int = 512, device: str = "cpu", expand: str = "none") -> List[dict]:
    """``expand``: none | evidence (the chunks the answer rests on, read raw: expansion with perfect retrieval) |
    all (the whole document raw: the full-context reading)."""
    model, tok_spec = load_model(checkpoint, 0)
    model = model.to(device).eval()
    tok = ByteLevelBPETokenizer(tok_spec) if tok_spec else ByteLevelBPETokenizer.from_file(
        os.path.join(ROOT, "models", "e2llm-tiny", "tokenizer.json"))
    ids = ChunkIds(tok, model.cfg.encoder.max_tokens)
    _, held = load_documents()
    results = []
    for task in tasks:
        for n in chunks:
            rng = random.Random(seed * 1000 + n)
            correct, total, tok_ok, tok_n, tok_ok_abl = 0, 0, 0, 0, 0
            examples = []
            for _ in range(samples):
                if task == "reconstruct":
                    for _ in range(200):
                        s = GENERATORS[task](rng, held, n, chunk_chars)
                        if len(s.chunks) == n:
                            break
                    # teacher-forced next-token accuracy on the restated text, and the same with the soft
                    # tokens replaced by zeros (what the decoder guesses from the prompt and text alone)
                    for ablate in (False, True):
                        X, A, Y, W, soft, _, _ = build_batch(model, ids, [s], device, 1.0)
                        if ablate:
                            P = 1 + len(ids.encode(s.prompt()[0]))
                            X[0, P: P + len(s.chunks)] = 0
                        logits, tgt, _ = answer_logits(model, X, A, Y)
                        ok = int((logits.argmax(-1) == tgt).sum())
                        if ablate:
                            tok_ok_abl += ok
                        else:
                            tok_ok += ok
                            tok_n += int(tgt.numel())
                    continue
                # rejection-sample documents of exactly n chunks (the generators aim at 1..n chunks and the
                # prose haystacks overshoot their target by up to ~200 characters)
                for _ in range(200):
                    s = GENERATORS[task](rng, held, n, chunk_chars)
                    if len(s.chunks) == n:
                        break
                if expand == "evidence":
                    s.expand = chunks_holding(s.chunks, s.evidence)
                elif expand == "all":
                    s.expand = list(range(len(s.chunks)))
                want = s.answer.strip()
                got = greedy_answer(model, ids, s, max_new=len(ids.encode(s.answer)) + 4, device=device)
                parts = [p.strip() for p in want.replace(",", " ").split()]
                correct += int(all(p in got for p in parts))  # string_match_all
                if len(examples) < 2:
                    examples.append({"chunks": len(s.chunks), "want": want, "got": got})
                total += 1
            if task == "reconstruct":
                results.append({"task": task, "chunks": n, "samples": samples,
                                "token_acc": round(100 * tok_ok / max(1, tok_n), 2),
                                "token_acc_soft_zeroed": round(100 * tok_ok_abl / max(1, tok_n), 2)})
            else:
                results.append({"task": task, "chunks": n, "samples": total,
                                "string_match_all": round(100 * correct / max(1, total), 2), "examples": examples})
    return results


def _raise_interrupt(signum, frame) -> None:
    raise KeyboardInterrupt(f"signal {signum}")  # train()'s finally saves the checkpoint and the loss curve


def main(argv: Optional[Sequence[str]] = None) -> None:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv and argv[0] == "eval":
        ap = argparse.ArgumentParser(prog="training.train eval")
        ap.add_argument("--checkpoint", required=True)
        ap.add_argument("--chunks", default="1,2,4")
        ap.add_argument("--samples", type=int, default=20)
        ap.add_argument("--seed", type=int, default=12345)
        ap.add_argument("--chunk-chars", type=int, default=512)
        ap.add_argument("--tasks", default="reconstruct,niah_single,niah_multikey,vt,qa")
        ap.add_argument("--expand", choices=["none", "evidence", "all"], default="none")
        a = ap.parse_args(argv[1:])
        torch.set_num_threads(max(1, int(os.environ.get("OMP_NUM_THREADS", "1"))))
        res = evaluate(a.checkpoint, [int(x) for x in a.chunks.split(",")], a.samples, a.seed,
                       a.tasks.split(","), a.chunk_chars, expand=a.expand)
        print(json.dumps({"checkpoint": a.checkpoint, "seed": a.seed, "chunk_chars": a.chunk_chars, "expand": a.expand,
                          "results": res}, indent=1))
        return
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--config", required=True)
    ap.add_argument("--fresh", action="store_true", help="ignore an existing ckpt.pt and start over")
    ap.add_argument("--deadline-utc", default=None, help="HH:MM (today, UTC): stop and save by then")
    ap.add_argument("--max-train-seconds", type=float, default=None)
    ap.add_argument("--device", default=None, help="cpu | cuda (default: the config's)")
    ap.add_argument("--docs", default=None, help="training documents as written by `training.e2llm.data.corpus "
                    "snapshot` (another machine's installed files differ; default: read this machine's)")
    a = ap.parse_args(argv)
    over = {}
    if a.device:
        over["device"] = a.device
    if a.docs:
        over["docs_file"] = a.docs
    if a.max_train_seconds is not None:
        over["max_train_seconds"] = a.max_train_seconds
    cfg = load_config(a.config, over)
    deadline = None
    if a.deadline_utc:
        hh, mm = map(int, a.deadline_utc.split(":"))
        now = _dt.datetime.now(_dt.timezone.utc)
        deadline = now.replace(hour=hh, minute=mm, second=0, microsecond=0).timestamp()
    # `kill PID` saves too: a background job started with `&` ignores SIGINT, so SIGTERM is the signal that reaches it
    signal.signal(signal.SIGTERM, _raise_interrupt)
    res = train(cfg, fresh=a.fresh, deadline=deadline)
    print(json.dumps(res), flush=True)


if __name__ == "__main__":
    main()
