"""Export an E2LLM model package (docs/model-package.md, manifest schema version 1).

    /usr/bin/python3 -m training.export --out models/e2llm-tiny [--checkpoint FILE] [--seed 0]
        [--tokenizer FILE | --retrain-tokenizer] [--sample samples/gpl-3.0.txt]

Writes encoder.onnx, adapter.onnx, decoder.onnx (opset 17, dynamic axes), embed_tokens.bin,
tokenizer.json, manifest.json and golden.json (PyTorch reference outputs for the runtime parity test).
Without --checkpoint the weights are the deterministic seeded init of ``training.e2llm.modules``.
A checkpoint is a ``torch.save`` of ``{"config": E2LLMConfig.to_dict(), "model": state_dict,
"tokenizer": tokenizer.json dict (optional)}`` or a bare state_dict of ``E2LLM``.
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import warnings
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np
import torch

from .modules import E2LLM, E2LLMConfig, build_model, pad_batch
from .tokenizer import BOS_ID, CLS_ID, EOS_ID, PAD_ID, ByteLevelBPETokenizer, train_tokenizer

OPSET = 17
PLACEHOLDER = "<|context|>"
TEMPLATES = {
    "qa": "Document:" + PLACEHOLDER + "\nQuestion: {question}\nAnswer:",
    "summarize": "Document:" + PLACEHOLDER + "\nSummarize the document.\nSummary:",
    "reconstruct": "Context:" + PLACEHOLDER + "\nRestate the context.\nText:",
    "instruct": "Document:" + PLACEHOLDER + "\nInstruction: {instruction}\nResponse:",
}
CHUNK_CHARS = 512
OVERLAP_CHARS = 0
GOLDEN_QUESTION = "Which version of the licence may you choose if the Program does not specify one?"
GOLDEN_CHUNKS = 4
GREEDY_STEPS = 32
DEFAULT_TOKENIZER = "models/e2llm-tiny/tokenizer.json"
DEFAULT_SAMPLE = "samples/gpl-3.0.txt"


# ----------------------------------------------------------------------------------------------
# helpers
# ----------------------------------------------------------------------------------------------

def chunk_text(text: str, chunk_chars: int = CHUNK_CHARS, overlap_chars: int = OVERLAP_CHARS) -> List[str]:
    """Cut as serving cuts (libs/shared/src/chunker.ts, run by Node: see chunker.py)."""
    from .chunker import serving_chunker

    return serving_chunker().chunk(text, chunk_chars, overlap_chars)


def split_template(template: str, **fields: str) -> Tuple[str, str]:
    prefix, suffix = template.split(PLACEHOLDER)
    return prefix.format(**fields), suffix.format(**fields)


def load_checkpoint(path: str):
    """A checkpoint this package wrote (model, optimiser, RNG state and tokenizer dict), on the CPU. PyTorch 2.6 and
    later load weights only by default, which refuses the RNG state; these files are our own."""
    return torch.load(path, map_location="cpu", weights_only=False)


def load_model(checkpoint: Optional[str], seed: int) -> Tuple[E2LLM, Optional[dict]]:
    if not checkpoint:
        return build_model(seed), None
    ck = load_checkpoint(checkpoint)
    if isinstance(ck, dict) and "model" in ck:
        cfg = E2LLMConfig.from_dict(ck["config"]) if ck.get("config") else E2LLMConfig()
        model = build_model(seed, cfg)
        model.load_state_dict(ck["model"])
        return model.eval(), ck.get("tokenizer")
    model = build_model(seed)
    model.load_state_dict(ck)
    return model.eval(), None


ATTENTION_OUTPUT = "attention"


class ExportedDecoder(torch.nn.Module):
    """The decoder as exported: logits, the presents, and the attention output (the manifest's
    ``decoder.attentionOutput``): the last position's attention over every position, averaged over heads and
    layers, which evidence by attention sums while the answer is generated."""

    def __init__(self, decoder):
        super().__init__()
        self.decoder = decoder

    def forward(self, inputs_embeds, attention_mask, position_ids, *past):
        attn = [layer.self_attn for layer in self.decoder.layers]
        for a in attn:
            a.keep_last_probs = True
        try:
            out = self.decoder(inputs_embeds, attention_mask, position_ids, *past)
            return (*out, torch.stack([a.last_probs for a in attn]).mean(dim=0))
        finally:
            for a in attn:
                a.keep_last_probs, a.last_probs = False, None


def decoder_io_names(layers: int, attention: bool = False) -> Tuple[List[str], List[str]]:
    """Input and output names of decoder.onnx; ``attention`` adds the attention output (last)."""
    past = [f"past_key_values.{i}.{kv}" for i in range(layers) for kv in ("key", "value")]
    present = [f"present.{i}.{kv}" for i in range(layers) for kv in ("key", "value")]
    return ["inputs_embeds", "attention_mask", "position_ids", *past], ["logits", *present] + ([ATTENTION_OUTPUT] if attention else [])


def export_onnx(model: E2LLM, out: str) -> None:
    enc_cfg, dec_cfg = model.cfg.encoder, model.cfg.decoder
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        # encoder: trace with batch 2 and padding so nothing specialises on batch 1 / no padding
        ids, mask = pad_batch([[CLS_ID, 10, 11, 12, 13], [CLS_ID, 20, 21]], PAD_ID)
        torch.onnx.export(
            model.encoder, (ids, mask), os.path.join(out, "encoder.onnx"),
            input_names=["input_ids", "attention_mask"], output_names=["chunk_embeddings"],
            dynamic_axes={"input_ids": {0: "batch", 1: "tokens"}, "attention_mask": {0: "batch", 1: "tokens"},
                          "chunk_embeddings": {0: "batch"}},
            opset_version=OPSET, do_constant_folding=True,
        )
        emb = torch.randn(3, enc_cfg.hidden)
        torch.onnx.export(
            model.adapter, (emb,), os.path.join(out, "adapter.onnx"),
            input_names=["chunk_embeddings"], output_names=["soft_tokens"],
            dynamic_axes={"chunk_embeddings": {0: "n"}, "soft_tokens": {0: "n"}},
            opset_version=OPSET, do_constant_folding=True,
        )
        # decoder: trace with past 4 and seq 3 (both dynamic; past 0 is checked afterwards)
        B, P, S = 2, 4, 3
        x = torch.randn(B, S, dec_cfg.hidden)
        am = torch.ones(B, P + S, dtype=torch.long)
        am[1, 0] = 0
        pos = torch.arange(P, P + S).unsqueeze(0).repeat(B, 1)
        past = [torch.randn(B, dec_cfg.kv_heads, P, dec_cfg.head_size) for _ in range(2 * dec_cfg.layers)]
        in_names, out_names = decoder_io_names(dec_cfg.layers, attention=True)
        axes = {"inputs_embeds": {0: "batch", 1: "seq"}, "attention_mask": {0: "batch", 1: "past_plus_seq"},
                "position_ids": {0: "batch", 1: "seq"}, "logits": {0: "batch"}}
        for n in in_names[3:]:
            axes[n] = {0: "batch", 2: "past"}
        for n in out_names[1:-1]:
            axes[n] = {0: "batch", 2: "past_plus_seq"}
        axes[ATTENTION_OUTPUT] = {0: "batch", 1: "past_plus_seq"}
        torch.onnx.export(
            ExportedDecoder(model.decoder), (x, am, pos, *past), os.path.join(out, "decoder.onnx"),
            input_names=in_names, output_names=out_names, dynamic_axes=axes,
            opset_version=OPSET, do_constant_folding=True,
        )


def check_onnx(out: str) -> None:
    import onnx

    for name in ("encoder.onnx", "adapter.onnx", "decoder.onnx"):
        onnx.checker.check_model(onnx.load(os.path.join(out, name)), full_check=True)


def manifest(model: E2LLM) -> dict:
    e, d = model.cfg.encoder, model.cfg.decoder
    return {
        "schemaVersion": 1,
        "name": "e2llm-tiny",
        "version": "0.1.0",
        # The tiny model's training text is English only (docs/models.md); GET /v1/models shows this.
        "languages": ["en"],
        "encoder": {
            "onnx": "encoder.onnx", "tokenizer": "tokenizer.json", "maxTokens": e.max_tokens, "width": e.hidden,
            "pooling": e.pooling, "clsTokenId": CLS_ID, "padTokenId": PAD_ID,
        },
        "adapter": {"onnx": "adapter.onnx", "kind": "mlp", "inputWidth": e.hidden, "outputWidth": d.hidden},
        "decoder": {
            "onnx": "decoder.onnx", "tokenizer": "tokenizer.json",
            "embeddings": {"file": "embed_tokens.bin", "dtype": "f32", "shape": [d.vocab_size, d.hidden]},
            "hiddenSize": d.hidden, "layers": d.layers, "heads": d.heads, "kvHeads": d.kv_heads,
            "headSize": d.head_size, "vocabSize": d.vocab_size, "window": d.window,
            "bosTokenId": BOS_ID, "eosTokenIds": [EOS_ID], "padTokenId": PAD_ID, "dtype": "f32",
            "attentionOutput": ATTENTION_OUTPUT,
        },
        "prompt": {
            "placeholder": PLACEHOLDER,
            "templates": dict(TEMPLATES),
            "chunking": {"chunkChars": CHUNK_CHARS, "overlapChars": OVERLAP_CHARS},
        },
        "golden": "golden.json",
    }


# ----------------------------------------------------------------------------------------------
# golden reference
# ----------------------------------------------------------------------------------------------

@torch.no_grad()
def decoder_prefill(model: E2LLM, embeds: torch.Tensor):
    """embeds [L, D] -> (logits [V], presents) with an empty past."""
    dec = model.decoder
    L = embeds.shape[0]
    out = dec(embeds.unsqueeze(0), torch.ones(1, L, dtype=torch.long), torch.arange(L).unsqueeze(0),
              *dec.empty_past(1))
    return out[0][0, 0], list(out[1:])


@torch.no_grad()
def greedy(model: E2LLM, embeds: torch.Tensor, steps: int):
    dec = model.decoder
    E = dec.embed_tokens.weight
    logits, past = decoder_prefill(model, embeds)
    L = embeds.shape[0]
    tokens, step_logits = [], []
    for k in range(steps):
        step_logits.append(logits)
        t = int(torch.argmax(logits))
        tokens.append(t)
        if k == steps - 1:
            break
        pos = L + k
        out = dec(E[t].reshape(1, 1, -1), torch.ones(1, pos + 1, dtype=torch.long),
                  torch.tensor([[pos]], dtype=torch.long), *past)
        logits, past = out[0][0, 0], list(out[1:])
    # no-cache recomputation
    nocache = []
    seq = embeds
    for k in range(steps):
        lg, _ = decoder_prefill(model, seq)
        t = int(torch.argmax(lg))
        nocache.append(t)
        seq = torch.cat([seq, E[t].unsqueeze(0)], dim=0)
    return tokens, nocache, step_logits


class RawJson(str):
    """Text golden_json writes as it is (a pre-formatted float array)."""


def golden_floats(x) -> RawJson:
    """A float array as compact JSON with 8 significant digits (golden files of this exporter and training/hf's)."""
    a = np.asarray(x, dtype=np.float32).reshape(-1)
    return RawJson("[" + ",".join("%.8g" % v for v in a.tolist()) + "]")


def golden_json(obj, indent: int = 0) -> str:
    """Small JSON writer that inlines pre-formatted float arrays compactly."""
    pad = " " * indent
    if isinstance(obj, RawJson):
        return str(obj)
    if isinstance(obj, dict):
        items = [f'{pad}  {json.dumps(k)}: {golden_json(v, indent + 2)}' for k, v in obj.items()]
        return "{\n" + ",\n".join(items) + "\n" + pad + "}"
    if isinstance(obj, list) and obj and isinstance(obj[0], (RawJson, list)):
        return "[\n" + ",\n".join(pad + "  " + golden_json(v, indent + 2) for v in obj) + "\n" + pad + "]"
    return json.dumps(obj, ensure_ascii=False)


@torch.no_grad()
def golden(model: E2LLM, tok: ByteLevelBPETokenizer, sample_text: str, n_chunks: int = GOLDEN_CHUNKS,
           question: str = GOLDEN_QUESTION, steps: int = GREEDY_STEPS) -> dict:
    enc = model.cfg.encoder
    chunks = chunk_text(sample_text)[:n_chunks]
    enc_ids = [[CLS_ID] + tok.encode(c)[: enc.max_tokens - 1] for c in chunks]
    ids, mask = pad_batch(enc_ids, PAD_ID)
    chunk_emb = model.encoder(ids, mask)
    soft = model.adapter(chunk_emb)
    E = model.decoder.embed_tokens.weight
    # The runtime parity test generates `steps` tokens and stops at EOS, so the golden must not contain EOS:
    # a qa task first; a trained model answers briefly and ends with EOS, then the reconstruct task
    # (it restates the chunks at length) is used instead.
    for task in ({"type": "qa", "question": question}, {"type": "reconstruct"}):
        fields = {"question": task["question"]} if "question" in task else {}
        prefix, suffix = split_template(TEMPLATES[task["type"]], **fields)
        prefix_ids = [BOS_ID] + tok.encode(prefix)
        suffix_ids = tok.encode(suffix)
        embeds = torch.cat([E[prefix_ids], soft, E[suffix_ids]], dim=0)
        tokens, nocache, step_logits = greedy(model, embeds, steps)
        if EOS_ID not in tokens and EOS_ID not in nocache:
            break
    return {
        "chunks": chunks,
        "encoderInputIds": enc_ids,
        "chunkEmbeddings": [golden_floats(r) for r in chunk_emb],
        "softTokens": [golden_floats(r) for r in soft],
        "task": task,
        "prefixIds": prefix_ids,
        "suffixIds": suffix_ids,
        "prefillLogits": golden_floats(step_logits[0]),
        "greedyTokens": tokens,
        "greedyTokensNoCache": nocache,
        "stepLogits": [golden_floats(l) for l in step_logits],
    }


# ----------------------------------------------------------------------------------------------
# main
# ----------------------------------------------------------------------------------------------

def export_package(out: str, checkpoint: Optional[str] = None, seed: int = 0, tokenizer: Optional[str] = None,
                   retrain_tokenizer: bool = False, sample: str = DEFAULT_SAMPLE, check: bool = True) -> dict:
    os.makedirs(out, exist_ok=True)
    model, ck_tok = load_model(checkpoint, seed)
    tok_out = os.path.join(out, "tokenizer.json")
    if tokenizer is None and ck_tok is not None and not retrain_tokenizer:
        with open(tok_out, "w", encoding="utf-8") as f:
            json.dump(ck_tok, f, ensure_ascii=False, indent=1)
            f.write("\n")
    else:
        if tokenizer is None and not retrain_tokenizer and os.path.exists(DEFAULT_TOKENIZER):
            tokenizer = DEFAULT_TOKENIZER
        if tokenizer is None or retrain_tokenizer:
            train_tokenizer(tok_out)
        elif os.path.abspath(tokenizer) != os.path.abspath(tok_out):
            shutil.copyfile(tokenizer, tok_out)
    tok = ByteLevelBPETokenizer.from_file(tok_out)
    if tok.vocab_size != model.cfg.decoder.vocab_size:
        raise ValueError(f"tokenizer has {tok.vocab_size} tokens, model expects {model.cfg.decoder.vocab_size}")

    export_onnx(model, out)
    W = model.decoder.embed_tokens.weight.detach().cpu().numpy().astype("<f4")
    W.tofile(os.path.join(out, "embed_tokens.bin"))
    man = manifest(model)
    with open(os.path.join(out, "manifest.json"), "w", encoding="utf-8") as f:
        json.dump(man, f, ensure_ascii=False, indent=2)
        f.write("\n")
    with open(sample, encoding="utf-8") as f:
        text = f.read()
    g = golden(model, tok, text)
    with open(os.path.join(out, "golden.json"), "w", encoding="utf-8") as f:
        f.write(golden_json(g) + "\n")
    if check:
        check_onnx(out)
    return man


def main(argv: Optional[Sequence[str]] = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", default="models/e2llm-tiny")
    ap.add_argument("--checkpoint", default=None)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--tokenizer", default=None,
                    help=f"tokenizer.json to package (default: the checkpoint's, else {DEFAULT_TOKENIZER} if present, else train one)")
    ap.add_argument("--retrain-tokenizer", action="store_true")
    ap.add_argument("--sample", default=DEFAULT_SAMPLE, help="text the golden chunks are taken from")
    ap.add_argument("--no-check", action="store_true", help="skip onnx.checker")
    args = ap.parse_args(argv)
    torch.set_num_threads(max(1, int(os.environ.get("OMP_NUM_THREADS", "2"))))
    export_package(args.out, args.checkpoint, args.seed, args.tokenizer, args.retrain_tokenizer, args.sample,
                   not args.no_check)
    for name in sorted(os.listdir(args.out)):
        print(f"{os.path.getsize(os.path.join(args.out, name)):>10}  {os.path.join(args.out, name)}")


if __name__ == "__main__":
    main()
