"""PEFT-format LoRA: merge saved adapters into base weights (W += alpha/r * B @ A), wrap Linear layers with
trainable LoRA for fine-tuning, and save them in the PEFT layout (adapter_config.json + adapter_model.safetensors
with keys ``base_model.model.<module>.lora_A.weight`` / ``.lora_B.weight``)."""
from __future__ import annotations

import json
import math
import os
import re
from typing import Dict, Iterable, List, Optional, Sequence, Tuple

import torch
from torch import nn

from .safetensors import load_file, save_file

_KEY = re.compile(r"^(?:base_model\.model\.)?(.+?)\.lora_([AB])(?:\.[A-Za-z0-9_]+)?\.weight$")
PREFIXES = ("", "model.", "bert.", "new.", "roberta.")


def read_lora(folder: str) -> Tuple[dict, Dict[str, Tuple[torch.Tensor, torch.Tensor]]]:
    """(adapter_config, {module path: (A [r, in], B [out, r])})."""
    with open(os.path.join(folder, "adapter_config.json")) as f:
        cfg = json.load(f)
    if cfg.get("peft_type", "LORA").upper() != "LORA":
        raise ValueError(f"{folder}: peft_type {cfg.get('peft_type')!r} is not LORA")
    if cfg.get("fan_in_fan_out"):
        raise NotImplementedError(f"{folder}: fan_in_fan_out LoRA (GPT-2 Conv1D) is not supported")
    st = os.path.join(folder, "adapter_model.safetensors")
    sd = load_file(st) if os.path.exists(st) else torch.load(os.path.join(folder, "adapter_model.bin"), map_location="cpu")
    pairs: Dict[str, Dict[str, torch.Tensor]] = {}
    for k, v in sd.items():
        m = _KEY.match(k)
        if not m:
            continue  # modules_to_save, embeddings LoRA etc. are not handled
        pairs.setdefault(m.group(1), {})[m.group(2)] = v.float()
    out = {}
    for path, ab in pairs.items():
        if set(ab) != {"A", "B"}:
            raise ValueError(f"{folder}: {path} lacks lora_A or lora_B")
        out[path] = (ab["A"], ab["B"])
    if not out:
        raise ValueError(f"{folder}: no lora_A/lora_B weights found")
    return cfg, out


def lora_scale(cfg: dict, path: str) -> float:
    r = cfg.get("rank_pattern", {}) or {}
    a = cfg.get("alpha_pattern", {}) or {}
    rank = next((v for k, v in r.items() if path.endswith(k)), cfg["r"])
    alpha = next((v for k, v in a.items() if path.endswith(k)), cfg.get("lora_alpha", rank))
    return alpha / math.sqrt(rank) if cfg.get("use_rslora") else alpha / rank


def _find(module: nn.Module, path: str) -> Optional[nn.Module]:
    mods = dict(module.named_modules())
    for p in PREFIXES:
        if path.startswith(p) and path[len(p):] in mods:
            return mods[path[len(p):]]
    return None


def lora_targets(folder: str, modules: Sequence[Tuple[str, nn.Module]]) -> str:
    """Which of the named modules ('encoder', 'decoder') every LoRA path of ``folder`` resolves in."""
    _, pairs = read_lora(folder)
    for name, m in modules:
        if all(isinstance(_find(m, p), nn.Linear) for p in pairs):
            return name
    raise ValueError(f"{folder}: its LoRA module names ({sorted(pairs)[:3]} ...) match neither the encoder nor the decoder")


@torch.no_grad()
def merge_lora(module: nn.Module, folder: str) -> int:
    """Merge a PEFT LoRA folder into ``module`` in place; returns the number of merged layers."""
    cfg, pairs = read_lora(folder)
    for path, (A, B) in pairs.items():
        lin = _find(module, path)
        if not isinstance(lin, nn.Linear):
            raise ValueError(f"{folder}: LoRA target {path} is not a Linear layer of this model")
        if A.shape[1] != lin.in_features or B.shape[0] != lin.out_features or A.shape[0] != B.shape[1]:
            raise ValueError(f"{folder}: {path} LoRA shapes A{tuple(A.shape)} B{tuple(B.shape)} do not fit "
                             f"{lin.out_features}x{lin.in_features}")
        lin.weight += lora_scale(cfg, path) * (B @ A).to(lin.weight.dtype)
    return len(pairs)


class LoRALinear(nn.Module):
    """A frozen Linear plus a trainable low-rank update (B initialised to zero: starts as the base layer)."""

    def __init__(self, base: nn.Linear, r: int, alpha: float, generator: Optional[torch.Generator] = None):
        super().__init__()
        self.base = base
        for p in base.parameters():
            p.requires_grad_(False)
        self.lora_A = nn.Parameter(torch.randn(r, base.in_features, generator=generator) / math.sqrt(base.in_features))
        self.lora_B = nn.Parameter(torch.zeros(base.out_features, r))
        self.scale = alpha / r

    def forward(self, x):
        return self.base(x) + torch.matmul(torch.matmul(x, self.lora_A.t()), self.lora_B.t()) * self.scale


def add_lora(module: nn.Module, targets: Iterable[str], r: int, alpha: float, seed: int = 0) -> List[str]:
    """Replace every Linear whose name is one of ``targets`` or ends with ``.target`` (PEFT's rule)."""
    targets = list(targets)
    g = torch.Generator().manual_seed(seed)
    names = [n for n, m in module.named_modules()
             if isinstance(m, nn.Linear) and any(n == t or n.endswith("." + t) for t in targets)]
    for n in names:
        parent_name, _, child = n.rpartition(".")
        parent = module.get_submodule(parent_name) if parent_name else module
        setattr(parent, child, LoRALinear(getattr(parent, child), r, alpha, g))
    if not names:
        raise ValueError(f"no Linear layer matches LoRA targets {targets}")
    return names


def save_lora(module: nn.Module, folder: str, targets: Sequence[str], r: int, alpha: float, base_model: str,
              task_type: str) -> int:
    os.makedirs(folder, exist_ok=True)
    tensors = {}
    for n, m in module.named_modules():
        if isinstance(m, LoRALinear):
            tensors[f"base_model.model.{n}.lora_A.weight"] = m.lora_A.detach().clone()
            tensors[f"base_model.model.{n}.lora_B.weight"] = m.lora_B.detach().clone()
    save_file(tensors, os.path.join(folder, "adapter_model.safetensors"), {"format": "pt"})
    cfg = {"peft_type": "LORA", "task_type": task_type, "r": r, "lora_alpha": alpha, "lora_dropout": 0.0,
           "target_modules": list(targets), "bias": "none", "fan_in_fan_out": False, "inference_mode": True,
           "base_model_name_or_path": base_model}
    with open(os.path.join(folder, "adapter_config.json"), "w") as f:
        json.dump(cfg, f, indent=2)
    return len(tensors) // 2


@torch.no_grad()
def unwrap_lora(module: nn.Module) -> None:
    """Merge LoRALinear layers back into plain Linear layers in place."""
    for n, m in list(module.named_modules()):
        if isinstance(m, LoRALinear):
            m.base.weight += m.scale * (m.lora_B @ m.lora_A)
            parent_name, _, child = n.rpartition(".")
            parent = module.get_submodule(parent_name) if parent_name else module
            setattr(parent, child, m.base)
