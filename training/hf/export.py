"""Export Hugging Face-format checkpoints to an E2LLM model package (docs/model-package.md).

    /usr/bin/python3 -m training.export_hf --encoder DIR --decoder DIR [--adapter FILE] [--lora DIR ...]
        --out DIR [--dtype f16|f32] [--pooling cls|mean] [--template auto|plain|chatml|llama2]
        [--encoder-max-tokens 512] [--window N] [--golden-steps 32 | --no-golden] [--name NAME]

Each DIR is a Hugging Face folder (config.json, *.safetensors or model.safetensors.index.json, tokenizer.json).
Encoders: BertModel (BERT/BGE/GTE v1) and GTE v1.5 (NewModel). Decoders: Llama, Qwen2 (and Mistral, which
has Llama's layout). ``--lora`` takes PEFT LoRA folders (for the encoder or the decoder: decided by their module
names) and merges them. ``--adapter`` is an E2LLM adapter (.safetensors or torch file: fc1/fc2 of the MLP and,
for the PMA variant, pma.*); without it a freshly initialised adapter is written (with a warning).
Writes encoder.onnx, adapter.onnx, decoder.onnx (+ NAME.onnx.data when a graph's weights exceed 2 GB),
embed_tokens.bin, tokenizer.json (+ encoder-tokenizer.json when the encoder's differs), manifest.json and
golden.json (PyTorch reference outputs; token ids come from node + @huggingface/tokenizers, as in the runtime).
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import warnings
from typing import List, Optional, Sequence

import torch

from training.e2llm import export as ex

from . import checkpoint as ck
from .lora import lora_targets, merge_lora
from .models import HFE2LLM, build_adapter, load_adapter_file, load_decoder, load_encoder
from .onnx_f16 import finish

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
TOKENIZE_JS = os.path.join(ROOT, "training", "hf", "scripts", "tokenize.mjs")
FRESH_ADAPTER_WARNING = "adapter is freshly initialised: train it before serving"
TASKS = {
    "qa": "Document:{ctx}\nQuestion: {{question}}",
    "summarize": "Document:{ctx}\nSummarize the document.",
    "reconstruct": "Context:{ctx}\nRestate the context.",
    "instruct": "Document:{ctx}\nInstruction: {{instruction}}",
}
PLAIN_TAIL = {"qa": "\nAnswer:", "summarize": "\nSummary:", "reconstruct": "\nText:", "instruct": "\nResponse:"}


def templates(kind: str) -> dict:
    """Prompt templates per chat format; the soft tokens go where the placeholder is."""
    out = {}
    for task, body in TASKS.items():
        b = body.format(ctx=ex.PLACEHOLDER)
        if kind == "chatml":  # Qwen2 / Qwen2.5 instruct
            out[task] = ("<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n<|im_start|>user\n" + b
                         + "<|im_end|>\n<|im_start|>assistant\n")
        elif kind == "llama2":  # Llama-2-chat (BOS is prepended by the runtime)
            out[task] = "[INST] " + b + " [/INST]"
        elif kind == "plain":
            out[task] = b + PLAIN_TAIL[task]
        else:
            raise ValueError(f"unknown template {kind!r}")
    return out


def tokenize(tokenizer_file: str, texts: List[str]) -> Optional[List[List[int]]]:
    """Ids without special tokens from the runtime's tokenizer (node); None if node is unavailable."""
    try:
        r = subprocess.run(["node", TOKENIZE_JS, tokenizer_file], input=json.dumps({"texts": texts}),
                           capture_output=True, text=True, cwd=ROOT, timeout=600)
    except (OSError, subprocess.TimeoutExpired):
        return None
    if r.returncode != 0:
        print(f"warning: node tokenizer failed: {r.stderr.strip()[:400]}", file=sys.stderr)
        return None
    return json.loads(r.stdout)["ids"]


class _Dec(torch.nn.Module):
    def __init__(self, d):
        super().__init__()
        self.model_ = d

    def forward(self, inputs_embeds, attention_mask, position_ids, *past):
        return self.model_(inputs_embeds, attention_mask, position_ids, *past)


def export_onnx(m: HFE2LLM, out: str, dtype: str, cls_id: int, pad_id: int, check: bool = True) -> None:
    """Trace the three graphs into a scratch folder (torch writes external data there for > 2 GB graphs), then
    convert/pack them into ``out`` with ``onnx_f16.finish``."""
    d = m.decoder.spec
    width = m.encoder.width
    f16 = dtype == "f16"
    with tempfile.TemporaryDirectory(dir=out, prefix=".onnx-") as tmp, torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        vocab = m.encoder.backbone.spec.vocab_size
        a, b = [cls_id, 10 % vocab, 11 % vocab, 12 % vocab, 13 % vocab], [cls_id, 20 % vocab, 21 % vocab]
        ids, mask = ex.pad_batch([a, b], pad_id)
        p = os.path.join(tmp, "encoder.onnx")
        torch.onnx.export(m.encoder, (ids, mask), p, input_names=["input_ids", "attention_mask"],
                          output_names=["chunk_embeddings"],
                          dynamic_axes={"input_ids": {0: "batch", 1: "tokens"},
                                        "attention_mask": {0: "batch", 1: "tokens"},
                                        "chunk_embeddings": {0: "batch"}},
                          opset_version=ex.OPSET, do_constant_folding=True)
        finish(p, os.path.join(out, "encoder.onnx"), f16=f16, keep_io_f32=True, check=check)
        p = os.path.join(tmp, "adapter.onnx")
        torch.onnx.export(m.adapter, (torch.randn(3, width),), p, input_names=["chunk_embeddings"],
                          output_names=["soft_tokens"],
                          dynamic_axes={"chunk_embeddings": {0: "n"}, "soft_tokens": {0: "n"}},
                          opset_version=ex.OPSET, do_constant_folding=True)
        finish(p, os.path.join(out, "adapter.onnx"), f16=False, check=check)  # small: stays f32
        B, P, S = 2, 4, 3
        x = torch.randn(B, S, d.hidden)
        am = torch.ones(B, P + S, dtype=torch.long)
        am[1, 0] = 0
        pos = torch.arange(P, P + S).unsqueeze(0).repeat(B, 1)
        past = [torch.randn(B, d.kv_heads, P, d.head_size) for _ in range(2 * d.layers)]
        in_names, out_names = ex.decoder_io_names(d.layers)
        axes = {"inputs_embeds": {0: "batch", 1: "seq"}, "attention_mask": {0: "batch", 1: "past_plus_seq"},
                "position_ids": {0: "batch", 1: "seq"}, "logits": {0: "batch"}}
        for n in in_names[3:]:
            axes[n] = {0: "batch", 2: "past"}
        for n in out_names[1:]:
            axes[n] = {0: "batch", 2: "past_plus_seq"}
        p = os.path.join(tmp, "decoder.onnx")
        torch.onnx.export(_Dec(m.decoder), (x, am, pos, *past), p, input_names=in_names, output_names=out_names,
                          dynamic_axes=axes, opset_version=ex.OPSET, do_constant_folding=True)
        finish(p, os.path.join(out, "decoder.onnx"), f16=f16, check=check)


@torch.no_grad()
def _greedy(dec, embeds: torch.Tensor, steps: int):
    E = dec.embed_tokens.weight

    def prefill(seq):
        L = seq.shape[0]
        o = dec(seq.unsqueeze(0), torch.ones(1, L, dtype=torch.long), torch.arange(L).unsqueeze(0), *dec.empty_past(1))
        return o[0][0, 0], list(o[1:])

    logits, past = prefill(embeds)
    L = embeds.shape[0]
    tokens, step_logits = [], []
    for k in range(steps):
        step_logits.append(logits)
        t = int(torch.argmax(logits))
        tokens.append(t)
        if k == steps - 1:
            break
        o = dec(E[t].reshape(1, 1, -1), torch.ones(1, L + k + 1, dtype=torch.long),
                torch.tensor([[L + k]], dtype=torch.long), *past)
        logits, past = o[0][0, 0], list(o[1:])
    nocache, seq = [], embeds
    for k in range(steps):
        lg, _ = prefill(seq)
        t = int(torch.argmax(lg))
        nocache.append(t)
        seq = torch.cat([seq, E[t].unsqueeze(0)], dim=0)
    return tokens, nocache, step_logits


@torch.no_grad()
def golden(m: HFE2LLM, man: dict, enc_tok: str, dec_tok: str, text: str, steps: int) -> Optional[dict]:
    e, d = man["encoder"], man["decoder"]
    chunks = ex.chunk_text(text, man["prompt"]["chunking"]["chunkChars"])[: ex.GOLDEN_CHUNKS]
    question = ex.GOLDEN_QUESTION
    prefix, suffix = ex.split_template(man["prompt"]["templates"]["qa"], question=question)
    ids = tokenize(enc_tok, chunks)
    pids = tokenize(dec_tok, [prefix, suffix])
    if ids is None or pids is None:
        return None
    cls = [e["clsTokenId"]] if e["clsTokenId"] is not None else []
    enc_ids = [(cls + c)[: e["maxTokens"]] for c in ids]
    x, mask = ex.pad_batch(enc_ids, e["padTokenId"])
    chunk_emb = m.encoder(x, mask)
    soft = m.adapter(chunk_emb)
    prefix_ids = ([d["bosTokenId"]] if d["bosTokenId"] is not None else []) + pids[0]
    suffix_ids = pids[1]
    E = m.decoder.embed_tokens.weight
    embeds = torch.cat([E[prefix_ids], soft, E[suffix_ids]], dim=0)
    tokens, nocache, step_logits = _greedy(m.decoder, embeds, steps)
    return {
        "chunks": chunks, "encoderInputIds": enc_ids,
        "chunkEmbeddings": [ex.golden_floats(r) for r in chunk_emb], "softTokens": [ex.golden_floats(r) for r in soft],
        "task": {"type": "qa", "question": question}, "prefixIds": prefix_ids, "suffixIds": suffix_ids,
        "prefillLogits": ex.golden_floats(step_logits[0]), "greedyTokens": tokens, "greedyTokensNoCache": nocache,
        "stepLogits": [ex.golden_floats(l) for l in step_logits],
    }


def special_ids(enc_dir: str, dec_dir: str, enc_tok: dict, dec_tok: dict, bos: str):
    ec = ck.read_config(enc_dir)
    cls = ck.token_id(enc_tok, "[CLS]", "<cls>", "<s>")
    epad = ec.get("pad_token_id")
    if epad is None:
        epad = ck.token_id(enc_tok, "[PAD]", "<pad>") or 0
    dc = ck.read_config(dec_dir)
    gen = ck.read_json(dec_dir, "generation_config.json") or {}
    eos = []
    for v in ck.as_id_list(dc.get("eos_token_id")) + ck.as_id_list(gen.get("eos_token_id")):
        if v not in eos:
            eos.append(v)
    if not eos:
        t = ck.token_id(dec_tok, "</s>", "<|endoftext|>", "<eos>")
        if t is None:
            raise ValueError(f"{dec_dir}: no eos_token_id in config.json / generation_config.json")
        eos = [t]
    if bos == "auto":  # Llama-family tokenizers prepend BOS; Qwen2's do not
        bos_id = None if dc.get("model_type") == "qwen2" else dc.get("bos_token_id", gen.get("bos_token_id"))
    elif bos == "none":
        bos_id = None
    else:
        bos_id = int(bos)
    dpad = dc.get("pad_token_id")
    if dpad is None:
        dpad = gen.get("pad_token_id")
    if dpad is None:
        dpad = ck.token_id(dec_tok, "<pad>", "<|endoftext|>", "<unk>")
    if dpad is None:
        dpad = eos[0]
    return cls, int(epad), bos_id, eos, int(ck.as_id_list(dpad)[0])


def export_hf(encoder: str, decoder: str, out: str, adapter: Optional[str] = None, loras: Sequence[str] = (),
              dtype: str = "f32", pooling: Optional[str] = None, template: str = "auto", bos: str = "auto",
              encoder_max_tokens: int = 512, window: Optional[int] = None, golden_steps: int = ex.GREEDY_STEPS,
              sample: str = os.path.join(ROOT, ex.DEFAULT_SAMPLE), name: Optional[str] = None,
              check: bool = True, seed: int = 0, log=print) -> dict:
    if dtype not in ("f32", "f16"):
        raise ValueError("dtype must be f32 or f16")
    os.makedirs(out, exist_ok=True)
    mlp_state, pma_state = load_adapter_file(adapter) if adapter else ({}, {})
    enc = load_encoder(encoder, pooling, pma_state or None)
    dec = load_decoder(decoder)
    for d in loras:
        target = lora_targets(d, [("decoder", dec), ("encoder", enc.backbone)])
        n = merge_lora(dec if target == "decoder" else enc.backbone, d)
        log(f"merged LoRA {d} into the {target} ({n} layers)")
    if not adapter:
        print(f"warning: {FRESH_ADAPTER_WARNING}", file=sys.stderr)
    ada = build_adapter(enc.width, dec.spec.hidden, mlp_state or None, seed)
    m = HFE2LLM(enc, ada, dec).eval()
    if dtype == "f16":  # the golden then reflects the f16 weights; only activation rounding differs
        with torch.no_grad():
            for n_, p in list(m.encoder.named_parameters()) + list(m.decoder.named_parameters()):
                p.copy_(p.half().float())

    enc_tok_src, dec_tok_src = ck.tokenizer_path(encoder), ck.tokenizer_path(decoder)
    with open(enc_tok_src, "rb") as f:
        enc_bytes = f.read()
    with open(dec_tok_src, "rb") as f:
        dec_bytes = f.read()
    shutil.copyfile(dec_tok_src, os.path.join(out, "tokenizer.json"))
    enc_tok_name = "tokenizer.json"
    if enc_bytes != dec_bytes:
        enc_tok_name = "encoder-tokenizer.json"
        shutil.copyfile(enc_tok_src, os.path.join(out, enc_tok_name))
    elif os.path.exists(os.path.join(out, "encoder-tokenizer.json")):
        os.remove(os.path.join(out, "encoder-tokenizer.json"))
    enc_tok, dec_tok = json.loads(enc_bytes), json.loads(dec_bytes)
    cls, epad, bos_id, eos, dpad = special_ids(encoder, decoder, enc_tok, dec_tok, bos)
    if template == "auto":
        template = "chatml" if ck.token_id(dec_tok, "<|im_start|>") is not None else "plain"
    es, ds = enc.backbone.spec, dec.spec
    max_tokens = min(es.max_positions, encoder_max_tokens) if es.arch == "bert" else encoder_max_tokens
    man = {
        "schemaVersion": 1,
        "name": name or f"{os.path.basename(os.path.normpath(encoder))}+{os.path.basename(os.path.normpath(decoder))}",
        "version": "0.1.0",
        "encoder": {"onnx": "encoder.onnx", "tokenizer": enc_tok_name, "maxTokens": max_tokens, "width": es.hidden,
                    "pooling": enc.pooling, "clsTokenId": cls, "padTokenId": epad},
        "adapter": {"onnx": "adapter.onnx", "kind": "pma" if enc.pooling == "pma" else "mlp",
                    "inputWidth": es.hidden, "outputWidth": ds.hidden},
        "decoder": {
            "onnx": "decoder.onnx", "tokenizer": "tokenizer.json",
            "embeddings": {"file": "embed_tokens.bin", "dtype": dtype, "shape": [ds.vocab_size, ds.hidden]},
            "hiddenSize": ds.hidden, "layers": ds.layers, "heads": ds.heads, "kvHeads": ds.kv_heads,
            "headSize": ds.head_size, "vocabSize": ds.vocab_size, "window": min(ds.window, window or ds.window),
            "bosTokenId": bos_id, "eosTokenIds": eos, "padTokenId": dpad, "dtype": dtype,
        },
        "prompt": {"placeholder": ex.PLACEHOLDER, "templates": templates(template),
                   "chunking": {"chunkChars": ex.CHUNK_CHARS, "overlapChars": ex.OVERLAP_CHARS}},
    }
    log(f"exporting ONNX ({dtype}) to {out}")
    export_onnx(m, out, dtype, cls if cls is not None else epad, epad, check)
    W = dec.embed_tokens.weight.detach().cpu().numpy()
    W.astype("<f2" if dtype == "f16" else "<f4").tofile(os.path.join(out, "embed_tokens.bin"))
    g = None
    if golden_steps > 0:
        with open(sample, encoding="utf-8") as f:
            text = f.read()
        g = golden(m, man, os.path.join(out, enc_tok_name), os.path.join(out, "tokenizer.json"), text, golden_steps)
        if g is None:
            log("warning: node + @huggingface/tokenizers unavailable: golden.json not written")
    gpath = os.path.join(out, "golden.json")
    if g is not None:
        man["golden"] = "golden.json"
        with open(gpath, "w", encoding="utf-8") as f:
            f.write(ex.golden_json(g) + "\n")
    elif os.path.exists(gpath):
        os.remove(gpath)
    with open(os.path.join(out, "manifest.json"), "w", encoding="utf-8") as f:
        json.dump(man, f, ensure_ascii=False, indent=2)
        f.write("\n")
    return man


def main(argv: Optional[Sequence[str]] = None) -> None:
    ap = argparse.ArgumentParser(prog="python3 -m training.export_hf", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--encoder", required=True, help="Hugging Face encoder folder (BERT/BGE/GTE, GTE v1.5)")
    ap.add_argument("--decoder", required=True, help="Hugging Face decoder folder (Llama, Qwen2)")
    ap.add_argument("--adapter", default=None, help="E2LLM adapter weights (.safetensors or torch file)")
    ap.add_argument("--lora", action="append", default=[], metavar="DIR", help="PEFT LoRA folder to merge (repeatable)")
    ap.add_argument("--out", required=True)
    ap.add_argument("--dtype", choices=["f32", "f16"], default="f32")
    ap.add_argument("--pooling", choices=["cls", "mean"], default=None,
                    help="encoder pooling (default: 1_Pooling/config.json if present, else cls; pma when the adapter has PMA weights)")
    ap.add_argument("--template", choices=["auto", "plain", "chatml", "llama2"], default="auto",
                    help="prompt format (auto: chatml when the tokenizer has <|im_start|>, else plain)")
    ap.add_argument("--bos", default="auto", help="BOS id to prepend: auto (config's, none for qwen2) | none | ID")
    ap.add_argument("--encoder-max-tokens", type=int, default=512)
    ap.add_argument("--window", type=int, default=None, help="cap the decoder window (default: max_position_embeddings)")
    ap.add_argument("--golden-steps", type=int, default=ex.GREEDY_STEPS, help="greedy steps in golden.json (0: no golden)")
    ap.add_argument("--no-golden", action="store_true")
    ap.add_argument("--sample", default=os.path.join(ROOT, ex.DEFAULT_SAMPLE))
    ap.add_argument("--name", default=None)
    ap.add_argument("--no-check", action="store_true", help="skip onnx.checker")
    args = ap.parse_args(argv)
    torch.set_num_threads(max(1, int(os.environ.get("OMP_NUM_THREADS", "2"))))
    export_hf(args.encoder, args.decoder, args.out, args.adapter, args.lora, args.dtype, args.pooling, args.template,
              args.bos, args.encoder_max_tokens, args.window, 0 if args.no_golden else args.golden_steps,
              args.sample, args.name, not args.no_check)
    for n in sorted(os.listdir(args.out)):
        p = os.path.join(args.out, n)
        if os.path.isfile(p):
            print(f"{os.path.getsize(p):>12}  {p}")


if __name__ == "__main__":
    main()
