"""Split a training checkpoint's model weights into files under a size limit, and join them back.

    /usr/bin/python3 training/scripts/state_parts.py split training/runs/NAME/ckpt.pt OUT_PREFIX [--max-mib 15]
    /usr/bin/python3 training/scripts/state_parts.py join OUT.pt PART...

For moving a run's result off a machine that returns files of a bounded size (a lent GPU machine returns at most
16 MiB a file): ``split`` keeps the config, the tokenizer and the model's parameters (no optimiser state), packing
whole tensors greedily into ``OUT_PREFIX.N.pt``; ``join`` writes a checkpoint that ``training.export --checkpoint``
and ``training.train`` (as ``init``) read. The parameters come back bit for bit.
"""
import argparse
import os
import sys

import torch

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))
from training.e2llm.export import load_checkpoint  # noqa: E402


def split(ckpt: str, prefix: str, max_bytes: int) -> list:
    ck = load_checkpoint(ckpt)
    parts, cur, size = [], {}, 0
    for name, t in ck["model"].items():
        n = t.numel() * t.element_size()
        if cur and size + n > max_bytes:
            parts.append(cur)
            cur, size = {}, 0
        cur[name] = t.contiguous()
        size += n
    parts.append(cur)
    paths = []
    for i, p in enumerate(parts):
        path = f"{prefix}.{i}.pt"
        extra = {"config": ck.get("config"), "tokenizer": ck.get("tokenizer"), "probe": ck.get("probe"),
                 "train_state": {k: v for k, v in ck.get("train_state", {}).items() if k in ("step", "train_seconds")}} if i == 0 else {}
        torch.save({"model": p, **extra}, path)
        paths.append(path)
    return paths


def join(out: str, paths) -> None:
    model, head = {}, {}
    for p in paths:
        ck = load_checkpoint(p)
        model.update(ck["model"])
        if "config" in ck:
            head = ck
    torch.save({"config": head["config"], "model": model, "tokenizer": head.get("tokenizer"),
                **({"probe": head["probe"]} if head.get("probe") else {})}, out)


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="cmd", required=True)
    s = sub.add_parser("split")
    s.add_argument("ckpt")
    s.add_argument("prefix")
    s.add_argument("--max-mib", type=float, default=15.0)
    j = sub.add_parser("join")
    j.add_argument("out")
    j.add_argument("parts", nargs="+")
    a = ap.parse_args()
    if a.cmd == "split":
        for p in split(a.ckpt, a.prefix, int(a.max_mib * 2**20)):
            print(p, os.path.getsize(p))
    else:
        join(a.out, sorted(a.parts))
