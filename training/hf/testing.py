"""Tiny randomly initialised checkpoints written in exactly the Hugging Face layout (config keys, tensor names,
safetensors files) for the tests and for trying the exporter without downloading anything.

    /usr/bin/python3 -m training.hf.testing --out /tmp/tiny   # writes bert/, gte/, llama/, qwen2/, lora-*/
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
from typing import Dict, Optional, Sequence

import torch
from torch import nn

from .lora import save_lora, add_lora
from .models import BertBackbone, DecoderSpec, EncoderSpec, HFDecoder, NewBackbone
from .safetensors import save_file, save_sharded

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
TINY_TOKENIZER = os.path.join(ROOT, "models", "e2llm-tiny", "tokenizer.json")
VOCAB = 4096  # models/e2llm-tiny/tokenizer.json: <pad>=0 <bos>=1 <eos>=2 <cls>=3


def _randomise(module: nn.Module, seed: int) -> None:
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in sorted(module.named_parameters()):
            if name.endswith("bias"):
                p.copy_(torch.randn(p.shape, generator=g) * 0.02)
            elif p.dim() == 1:
                p.copy_(1.0 + torch.randn(p.shape, generator=g) * 0.05)
            elif "embed" in name:
                p.copy_(torch.randn(p.shape, generator=g) * 0.5)
            else:
                p.copy_(torch.randn(p.shape, generator=g) * p.shape[1] ** -0.5)


def _write(folder: str, config: dict, tensors: Dict[str, torch.Tensor], shard_bytes: Optional[int] = None,
           dtype: Optional[str] = None, tokenizer: str = TINY_TOKENIZER) -> str:
    os.makedirs(folder, exist_ok=True)
    with open(os.path.join(folder, "config.json"), "w") as f:
        json.dump(config, f, indent=2)
    if shard_bytes:
        save_sharded(tensors, folder, shard_bytes, dtype=dtype)
    else:
        save_file(tensors, os.path.join(folder, "model.safetensors"), {"format": "pt"}, dtype)
    shutil.copyfile(tokenizer, os.path.join(folder, "tokenizer.json"))
    return folder


def bert_config(hidden=64, layers=2, heads=4, ffn=128, max_pos=128) -> dict:
    return {
        "architectures": ["BertModel"], "model_type": "bert", "vocab_size": VOCAB, "hidden_size": hidden,
        "num_hidden_layers": layers, "num_attention_heads": heads, "intermediate_size": ffn, "hidden_act": "gelu",
        "hidden_dropout_prob": 0.1, "attention_probs_dropout_prob": 0.1, "max_position_embeddings": max_pos,
        "type_vocab_size": 2, "initializer_range": 0.02, "layer_norm_eps": 1e-12, "pad_token_id": 0,
        "position_embedding_type": "absolute", "use_cache": True, "classifier_dropout": None,
        "torch_dtype": "float32", "transformers_version": "4.41.2",
    }


def write_bert(folder: str, seed: int = 1, prefix: str = "", pooling: Optional[str] = None,
               model_type: str = "bert", **kw) -> str:
    cfg = bert_config(**kw)
    if model_type != "bert":  # RoBERTa / XLM-R: positions start after padding_idx
        cfg.update(model_type=model_type, architectures=["XLMRobertaModel" if model_type == "xlm-roberta" else "RobertaModel"],
                   pad_token_id=1, max_position_embeddings=cfg["max_position_embeddings"] + 2, type_vocab_size=1)
    m = BertBackbone(EncoderSpec.from_config(cfg))
    _randomise(m, seed)
    sd = {prefix + k: v for k, v in m.state_dict().items()}
    h = cfg["hidden_size"]
    sd[prefix + "pooler.dense.weight"] = torch.randn(h, h) * 0.1  # BertModel's pooler: present, unused
    sd[prefix + "pooler.dense.bias"] = torch.zeros(h)
    _write(folder, cfg, sd)
    if pooling:  # sentence-transformers pooling config
        os.makedirs(os.path.join(folder, "1_Pooling"), exist_ok=True)
        with open(os.path.join(folder, "1_Pooling", "config.json"), "w") as f:
            json.dump({"word_embedding_dimension": h, "pooling_mode_cls_token": pooling == "cls",
                       "pooling_mode_mean_tokens": pooling == "mean"}, f)
    return folder


def gte_config(hidden=64, layers=2, heads=4, ffn=128) -> dict:
    return {
        "architectures": ["NewModel"], "model_type": "new",
        "auto_map": {"AutoConfig": "Alibaba-NLP/new-impl--configuration.NewConfig",
                     "AutoModel": "Alibaba-NLP/new-impl--modeling.NewModel"},
        "vocab_size": VOCAB, "hidden_size": hidden, "num_hidden_layers": layers, "num_attention_heads": heads,
        "intermediate_size": ffn, "hidden_act": "gelu", "hidden_dropout_prob": 0.1,
        "attention_probs_dropout_prob": 0.0, "max_position_embeddings": 8192, "type_vocab_size": 2,
        "initializer_range": 0.02, "layer_norm_eps": 1e-12, "layer_norm_type": "layer_norm",
        "position_embedding_type": "rope", "rope_theta": 160000, "rope_scaling": {"type": "ntk", "factor": 2.0},
        "logn_attention_scale": False, "logn_attention_clip1": False, "pack_qkv": True, "unpad_inputs": False,
        "use_memory_efficient_attention": False, "pad_token_id": 0, "torch_dtype": "float32",
        "transformers_version": "4.39.1",
    }


def write_gte(folder: str, seed: int = 2, **kw) -> str:
    cfg = gte_config(**kw)
    m = NewBackbone(EncoderSpec.from_config(cfg))
    _randomise(m, seed)
    return _write(folder, cfg, dict(m.state_dict()))


def llama_config(hidden=64, layers=2, heads=4, kv_heads=2, ffn=128, tied=False) -> dict:
    return {
        "architectures": ["LlamaForCausalLM"], "model_type": "llama", "vocab_size": VOCAB, "hidden_size": hidden,
        "intermediate_size": ffn, "num_hidden_layers": layers, "num_attention_heads": heads,
        "num_key_value_heads": kv_heads, "hidden_act": "silu", "max_position_embeddings": 4096,
        "initializer_range": 0.02, "rms_norm_eps": 1e-5, "use_cache": True, "pad_token_id": 0, "bos_token_id": 1,
        "eos_token_id": 2, "pretraining_tp": 1, "tie_word_embeddings": tied, "rope_theta": 10000.0,
        "rope_scaling": None, "attention_bias": False, "attention_dropout": 0.0, "mlp_bias": False,
        "torch_dtype": "bfloat16", "transformers_version": "4.41.2",
    }


def qwen2_config(hidden=64, layers=2, heads=4, kv_heads=2, ffn=128, tied=True) -> dict:
    return {
        "architectures": ["Qwen2ForCausalLM"], "model_type": "qwen2", "vocab_size": VOCAB, "hidden_size": hidden,
        "intermediate_size": ffn, "num_hidden_layers": layers, "num_attention_heads": heads,
        "num_key_value_heads": kv_heads, "hidden_act": "silu", "max_position_embeddings": 32768,
        "max_window_layers": 28, "initializer_range": 0.02, "rms_norm_eps": 1e-6, "use_cache": True,
        "use_sliding_window": False, "sliding_window": 131072, "bos_token_id": 1, "eos_token_id": 2,
        "tie_word_embeddings": tied, "rope_theta": 1000000.0, "rope_scaling": None, "attention_dropout": 0.0,
        "torch_dtype": "bfloat16", "transformers_version": "4.43.1",
    }


def write_decoder(folder: str, config: dict, seed: int = 3, shard_bytes: Optional[int] = None,
                  dtype: Optional[str] = None) -> str:
    m = HFDecoder(DecoderSpec.from_config(config))
    _randomise(m, seed)
    sd = dict(m.state_dict())
    if config["model_type"] == "llama":  # older Llama checkpoints carry these buffers
        sd["model.layers.0.self_attn.rotary_emb.inv_freq"] = m.model.rotary_emb.inv_freq.clone()
    _write(folder, config, sd, shard_bytes, dtype)
    with open(os.path.join(folder, "generation_config.json"), "w") as f:
        json.dump({"bos_token_id": config["bos_token_id"], "eos_token_id": [config["eos_token_id"]],
                   "do_sample": False}, f)
    return folder


def write_lora(folder: str, module: nn.Module, targets: Sequence[str], r: int = 4, alpha: float = 8.0,
               seed: int = 7, base: str = "tiny", task_type: str = "CAUSAL_LM") -> str:
    """A PEFT LoRA folder for ``module`` with random (non-zero) A and B."""
    import copy
    m = copy.deepcopy(module)
    add_lora(m, targets, r, alpha, seed)
    g = torch.Generator().manual_seed(seed + 1)
    with torch.no_grad():
        for n, p in m.named_parameters():
            if n.endswith("lora_B"):
                p.copy_(torch.randn(p.shape, generator=g) * 0.2)
    save_lora(m, folder, targets, r, alpha, base, task_type)
    return folder


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", required=True)
    a = ap.parse_args(argv)
    write_bert(os.path.join(a.out, "bert"), prefix="bert.")
    write_gte(os.path.join(a.out, "gte"))
    write_decoder(os.path.join(a.out, "llama"), llama_config(), shard_bytes=200_000, dtype="BF16")
    write_decoder(os.path.join(a.out, "qwen2"), qwen2_config())
    print("\n".join(sorted(os.listdir(a.out))))


if __name__ == "__main__":
    main()
