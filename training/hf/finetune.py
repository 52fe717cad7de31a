"""E2LLM fine-tuning on real checkpoints (the paper's recipe): the encoder and the decoder stay frozen, the adapter
is trained fully, and LoRA layers on both the encoder and the decoder are trained, with the two objectives:

* reconstruction: from the soft tokens of a document's chunks alone, the decoder restates the document;
* instruction: from the soft tokens plus a question, the decoder answers it.

    /usr/bin/python3 -m training.hf.finetune --encoder DIR --decoder DIR --out DIR [--steps 1000] [--lr 1e-4]
        [--lora-rank 8] [--lora-alpha 16] [--device cuda] [--bf16] [--data FILE.jsonl ...]

Writes ``OUT/adapter.safetensors`` (E2LLM MLP adapter, and PMA weights with ``--pooling pma``), ``OUT/encoder-lora/``
and ``OUT/decoder-lora/`` (PEFT format: adapter_config.json + adapter_model.safetensors) and ``OUT/train-log.json``;
then export with ``python3 -m training.export_hf --encoder DIR --decoder DIR --adapter OUT/adapter.safetensors
--lora OUT/encoder-lora --lora OUT/decoder-lora --out PKG``.

Data: ``--data`` JSONL files with ``{"text": ...}`` (reconstruction) and/or ``{"text": ..., "question": ...,
"answer": ...}`` (instruction) lines; without it a tiny built-in generator makes synthetic records (item codes),
enough to see both losses fall, not to get a useful model. Token ids come from the checkpoints' tokenizer.json
through node + @huggingface/tokenizers (the runtime's tokenizer), so node must be installed.
"""
from __future__ import annotations

import argparse
import json
import os
import random
import time
from typing import Dict, List, Optional, Sequence

import torch
import torch.nn.functional as F

from training.e2llm import export as ex
from training.e2llm.data import expansion

from . import checkpoint as ck
from .export import special_ids, templates, tokenize
from .lora import add_lora, save_lora
from .models import HFE2LLM, PMA, build_adapter, load_decoder, load_encoder
from .safetensors import save_file

DECODER_TARGETS = ["q_proj", "k_proj", "v_proj", "o_proj"]
ENCODER_TARGETS = {"bert": ["query", "key", "value"], "new": ["qkv_proj"]}
WORDS = ["amber", "birch", "cobalt", "delta", "ember", "fjord", "garnet", "harbor", "indigo", "juniper", "kestrel",
         "lagoon", "meadow", "nimbus", "onyx", "prairie", "quartz", "river", "summit", "tundra"]


def synthetic_records(n: int, seed: int) -> List[dict]:
    rng = random.Random(seed)
    out = []
    for i in range(n):
        items = rng.sample(WORDS, 4)
        codes = [rng.randint(100, 999) for _ in items]
        text = " ".join(f"The code of the {w} item is {c}." for w, c in zip(items, codes))
        k = rng.randrange(len(items))
        out.append({"text": text, "question": f"What is the code of the {items[k]} item?", "answer": str(codes[k])})
    return out


def read_records(paths: Sequence[str]) -> List[dict]:
    recs = []
    for p in paths:
        with open(p, encoding="utf-8") as f:
            recs += [json.loads(line) for line in f if line.strip()]
    return recs


class Example:
    def __init__(self, chunk_ids: List[List[int]], prefix: List[int], suffix: List[int], target: List[int], kind: str,
                 raw_ids: Optional[List[List[int]]] = None, expand: Sequence[int] = ()):
        self.chunk_ids, self.prefix, self.suffix, self.target, self.kind = chunk_ids, prefix, suffix, target, kind
        # the chunks' decoder token ids, and which chunks the decoder reads raw in place of their soft tokens
        self.raw_ids, self.expand = raw_ids or [], list(expand)


def build_examples(records: List[dict], enc_tok: str, dec_tok: str, man_ids: dict, tpl: Dict[str, str],
                   chunk_chars: int, max_chunk_tokens: int, max_target_tokens: int,
                   expand: Optional[dict] = None, seed: int = 0) -> List[Example]:
    """Tokenise everything in two node calls. ``expand`` (the selective-expansion policy of
    ``training.e2llm.data.expansion``, the same recipe the tiny model trains with) picks, per instruction example,
    the chunks the decoder reads as raw tokens: the chunks holding the answer and a few others, or the whole
    document."""
    pol = expansion.policy(expand) if expand else None
    rng = random.Random(seed)
    enc_texts: List[str] = []
    dec_texts: List[str] = []
    plans = []
    for r in records:
        chunks = ex.chunk_text(r["text"], chunk_chars)
        jobs = [("reconstruct", ex.split_template(tpl["reconstruct"]), r["text"], [])]
        if r.get("question") and r.get("answer"):
            chosen = expansion.choose_expansion(rng, chunks, "qa", [r["answer"]], [], pol) if pol else []
            jobs.append(("qa", ex.split_template(tpl["qa"], question=r["question"]), r["answer"], chosen))
        plans.append((len(enc_texts), len(chunks), len(dec_texts), jobs))
        enc_texts += chunks
        for _, (pre, suf), target, _ in jobs:
            dec_texts += [pre, suf, target]
        if pol:
            dec_texts += chunks
    enc_ids = tokenize(enc_tok, enc_texts)
    dec_ids = tokenize(dec_tok, dec_texts)
    if enc_ids is None or dec_ids is None:
        raise RuntimeError("tokenising needs node and @huggingface/tokenizers (run from the repository root)")
    cls = [man_ids["cls"]] if man_ids["cls"] is not None else []
    bos = [man_ids["bos"]] if man_ids["bos"] is not None else []
    out = []
    for e0, n, d0, jobs in plans:
        chunk_ids = [(cls + enc_ids[e0 + i])[:max_chunk_tokens] for i in range(n)]
        raw = dec_ids[d0 + 3 * len(jobs): d0 + 3 * len(jobs) + n] if pol else None
        for j, (kind, _, _, chosen) in enumerate(jobs):
            pre, suf, tgt = dec_ids[d0 + 3 * j: d0 + 3 * j + 3]
            out.append(Example(chunk_ids, bos + pre, suf, tgt[:max_target_tokens] + [man_ids["eos"]], kind, raw, chosen))
    return out


def example_loss(m: HFE2LLM, e: Example, pad_id: int, device) -> torch.Tensor:
    ids, mask = ex.pad_batch(e.chunk_ids, pad_id)
    soft = m.soft_tokens(ids.to(device), mask.to(device))
    E = m.decoder.embed_tokens.weight
    t = lambda xs: torch.tensor(xs, dtype=torch.long, device=device)
    soft = soft.to(E.dtype)
    if e.expand:  # expanded chunks: their own token embeddings in their place
        chosen = set(e.expand)
        soft = torch.cat([E[t(e.raw_ids[i])] if i in chosen else soft[i: i + 1] for i in range(soft.shape[0])], dim=0)
    embeds = torch.cat([E[t(e.prefix)], soft, E[t(e.suffix)], E[t(e.target[:-1])]], dim=0).unsqueeze(0)
    L = embeds.shape[1]
    logits = m.decoder.all_logits(embeds, torch.ones(1, L, dtype=torch.long, device=device),
                                  torch.arange(L, device=device).unsqueeze(0))[0]
    start = L - len(e.target)  # the position predicting target[0] is the last prompt position
    return F.cross_entropy(logits[start:].float(), t(e.target))


def finetune(encoder: str, decoder: str, out: str, steps: int = 200, lr: float = 1e-4, lora_rank: int = 8,
             lora_alpha: float = 16.0, batch: int = 4, data: Sequence[str] = (), pooling: Optional[str] = None,
             template: str = "auto", seed: int = 0, device: str = "cpu", bf16: bool = False,
             max_chunk_tokens: int = 512, max_target_tokens: int = 256, chunk_chars: int = ex.CHUNK_CHARS,
             synthetic: int = 256, log_every: int = 10, expand: Optional[dict] = None, log=print) -> dict:
    torch.manual_seed(seed)
    os.makedirs(out, exist_ok=True)
    enc = load_encoder(encoder, "cls" if pooling == "pma" else pooling)
    if pooling == "pma":  # paper v2: learned PMA pooling, trained with the adapter
        s = enc.backbone.spec
        pma = PMA(s.hidden, 4 if s.hidden % 4 == 0 else 1, 4 * s.hidden, s.eps)
        with torch.no_grad():
            pma.query.normal_(0, 0.02)
        enc.pma, enc.pooling = pma, "pma"
    dec = load_decoder(decoder)
    adapter = build_adapter(enc.width, dec.spec.hidden, None, seed)
    m = HFE2LLM(enc, adapter, dec)
    for p in m.parameters():
        p.requires_grad_(False)
    enc_targets = ENCODER_TARGETS[enc.backbone.spec.arch]
    add_lora(enc.backbone, enc_targets, lora_rank, lora_alpha, seed + 1)
    add_lora(dec, DECODER_TARGETS, lora_rank, lora_alpha, seed + 2)
    for p in adapter.parameters():
        p.requires_grad_(True)
    if enc.pma is not None:
        for p in enc.pma.parameters():
            p.requires_grad_(True)
    dev = torch.device(device)
    if bf16:  # frozen base weights in bf16; trainable LoRA / adapter / PMA stay f32
        for mod in m.modules():
            for name, p in mod.named_parameters(recurse=False):
                if not p.requires_grad:
                    p.data = p.data.to(torch.bfloat16)
    m.to(dev).train()
    trainable = [p for p in m.parameters() if p.requires_grad]
    log(f"trainable parameters: {sum(p.numel() for p in trainable):,} (adapter + LoRA r={lora_rank}"
        f"{' + PMA' if enc.pma is not None else ''}); frozen: {sum(p.numel() for p in m.parameters() if not p.requires_grad):,}")

    enc_tok_j = ck.read_json(encoder, "tokenizer.json") or {}
    dec_tok_j = ck.read_json(decoder, "tokenizer.json") or {}
    cls, epad, bos, eos, _ = special_ids(encoder, decoder, enc_tok_j, dec_tok_j, "auto")
    if template == "auto":
        template = "chatml" if ck.token_id(dec_tok_j, "<|im_start|>") is not None else "plain"
    records = read_records(data) if data else synthetic_records(synthetic, seed)
    examples = build_examples(records, ck.tokenizer_path(encoder), ck.tokenizer_path(decoder),
                              {"cls": cls, "bos": bos, "eos": eos[0]}, templates(template), chunk_chars,
                              max_chunk_tokens, max_target_tokens, expand, seed)
    n_exp = sum(1 for e in examples if e.expand)
    log(f"{len(records)} records -> {len(examples)} examples (reconstruction + instruction), {n_exp} with expanded chunks")
    opt = torch.optim.AdamW(trainable, lr=lr, weight_decay=0.0)
    rng = random.Random(seed)
    history = []
    t0 = time.time()
    for step in range(1, steps + 1):
        opt.zero_grad()
        losses = {"reconstruct": [], "qa": []}
        for e in rng.sample(examples, min(batch, len(examples))):
            with torch.autocast(device_type=dev.type, dtype=torch.bfloat16, enabled=bf16 and dev.type == "cuda"):
                loss = example_loss(m, e, epad, dev)
            (loss / batch).backward()
            losses[e.kind].append(float(loss))
        torch.nn.utils.clip_grad_norm_(trainable, 1.0)
        opt.step()
        rec = {k: (sum(v) / len(v) if v else None) for k, v in losses.items()}
        history.append({"step": step, **rec})
        if step % log_every == 0 or step == 1 or step == steps:
            log(f"step {step}/{steps}  reconstruction {rec['reconstruct']}  instruction {rec['qa']}  "
                f"{time.time() - t0:.1f}s")
    m.eval()
    ada_state = {k: v.detach().float().cpu() for k, v in adapter.state_dict().items()}
    if enc.pma is not None:
        ada_state.update({"pma." + k: v.detach().float().cpu() for k, v in enc.pma.state_dict().items()})
    save_file(ada_state, os.path.join(out, "adapter.safetensors"), {"format": "pt", "kind": "pma" if enc.pma is not None else "mlp"})
    n_enc = save_lora(enc.backbone.to("cpu").float(), os.path.join(out, "encoder-lora"), enc_targets, lora_rank,
                      lora_alpha, os.path.abspath(encoder), "FEATURE_EXTRACTION")
    n_dec = save_lora(dec.to("cpu").float(), os.path.join(out, "decoder-lora"), DECODER_TARGETS, lora_rank,
                      lora_alpha, os.path.abspath(decoder), "CAUSAL_LM")
    summary = {"steps": steps, "lr": lr, "loraRank": lora_rank, "loraAlpha": lora_alpha, "template": template,
               "encoderLoraLayers": n_enc, "decoderLoraLayers": n_dec, "history": history}
    with open(os.path.join(out, "train-log.json"), "w") as f:
        json.dump(summary, f, indent=1)
    log(f"wrote {out}/adapter.safetensors, encoder-lora/ ({n_enc} layers), decoder-lora/ ({n_dec} layers)")
    return summary


def main(argv: Optional[Sequence[str]] = None) -> None:
    ap = argparse.ArgumentParser(prog="python3 -m training.hf.finetune", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--encoder", required=True)
    ap.add_argument("--decoder", required=True)
    ap.add_argument("--out", required=True)
    ap.add_argument("--steps", type=int, default=200)
    ap.add_argument("--lr", type=float, default=1e-4)
    ap.add_argument("--batch", type=int, default=4, help="examples per optimiser step")
    ap.add_argument("--lora-rank", type=int, default=8)
    ap.add_argument("--lora-alpha", type=float, default=16.0)
    ap.add_argument("--pooling", choices=["cls", "mean", "pma"], default=None)
    ap.add_argument("--template", choices=["auto", "plain", "chatml", "llama2"], default="auto")
    ap.add_argument("--data", action="append", default=[], help="JSONL file (repeatable); default: built-in synthetic data")
    ap.add_argument("--synthetic", type=int, default=256, help="number of built-in synthetic records")
    ap.add_argument("--max-chunk-tokens", type=int, default=512)
    ap.add_argument("--max-target-tokens", type=int, default=256)
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    ap.add_argument("--bf16", action="store_true", help="frozen weights in bf16 + autocast (CUDA)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--log-every", type=int, default=10)
    ap.add_argument("--expand", default=None, help="selective-expansion policy as JSON, e.g. '{\"p\": 0.6, \"raw_doc_p\": 0.1}' "
                    "(training.e2llm.data.expansion; default: none)")
    a = ap.parse_args(argv)
    torch.set_num_threads(max(1, int(os.environ.get("OMP_NUM_THREADS", "2"))))
    finetune(a.encoder, a.decoder, a.out, a.steps, a.lr, a.lora_rank, a.lora_alpha, a.batch, a.data, a.pooling,
             a.template, a.seed, a.device, a.bf16, a.max_chunk_tokens, a.max_target_tokens,
             synthetic=a.synthetic, log_every=a.log_every, expand=json.loads(a.expand) if a.expand else None)


if __name__ == "__main__":
    main()
