"""A Hugging Face model folder: config.json, weights (safetensors, sharded or not; pytorch_model.bin as a
fallback), tokenizer.json and the special-token ids the package manifest needs."""
from __future__ import annotations

import json
import os
from typing import Dict, List, Optional

import torch

from .safetensors import INDEX_NAME, load_folder


def read_config(folder: str) -> dict:
    p = os.path.join(folder, "config.json")
    if not os.path.exists(p):
        raise FileNotFoundError(f"{folder}: no config.json (expected a Hugging Face model folder)")
    with open(p) as f:
        return json.load(f)


def read_json(folder: str, name: str) -> Optional[dict]:
    p = os.path.join(folder, name)
    if not os.path.exists(p):
        return None
    with open(p) as f:
        return json.load(f)


def load_weights(folder: str) -> Dict[str, torch.Tensor]:
    """name -> tensor (floating tensors as f32)."""
    names = os.listdir(folder)
    if os.path.exists(os.path.join(folder, INDEX_NAME)) or any(n.endswith(".safetensors") for n in names):
        return load_folder(folder, float32=True)
    elif os.path.exists(os.path.join(folder, "pytorch_model.bin")):
        sd = torch.load(os.path.join(folder, "pytorch_model.bin"), map_location="cpu")
    else:
        raise FileNotFoundError(f"{folder}: no *.safetensors, {INDEX_NAME} or pytorch_model.bin")
    return {k: (v.float() if v.is_floating_point() else v) for k, v in sd.items()}


def tokenizer_path(folder: str) -> str:
    p = os.path.join(folder, "tokenizer.json")
    if not os.path.exists(p):
        raise FileNotFoundError(f"{folder}: no tokenizer.json (convert the tokenizer to the fast format first)")
    return p


def token_id(tokenizer_json: dict, *contents: str) -> Optional[int]:
    """Id of the first of ``contents`` found among added tokens or in the vocabulary."""
    added = {t["content"]: t["id"] for t in tokenizer_json.get("added_tokens", [])}
    vocab = tokenizer_json.get("model", {}).get("vocab", {})
    for c in contents:
        if c in added:
            return added[c]
        if isinstance(vocab, dict) and c in vocab:
            return vocab[c]
    return None


def as_id_list(v) -> List[int]:
    if v is None:
        return []
    return [int(x) for x in v] if isinstance(v, (list, tuple)) else [int(v)]
