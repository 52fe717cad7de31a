"""safetensors in pure Python + numpy (no ``safetensors`` package).

File layout: 8-byte little-endian unsigned header length N, N bytes of JSON header
``{"name": {"dtype": "F32", "shape": [..], "data_offsets": [begin, end]}, ..., "__metadata__": {str: str}}``
(offsets relative to the first byte after the header), then the raw little-endian tensor bytes.
Sharded checkpoints: ``model.safetensors.index.json`` with ``{"metadata": {...}, "weight_map": {name: file}}``.
bf16 has no numpy dtype: it is read as uint16 and widened to f32 by a 16-bit shift (exact), and written by
rounding f32 to nearest-even bf16.
"""
from __future__ import annotations

import json
import os
import struct
from typing import Dict, Iterable, List, Mapping, Optional, Union

import numpy as np
import torch

_NP = {
    "F64": np.float64, "F32": np.float32, "F16": np.float16, "I64": np.int64, "I32": np.int32, "I16": np.int16,
    "I8": np.int8, "U8": np.uint8, "BOOL": np.bool_, "U16": np.uint16, "U32": np.uint32, "U64": np.uint64,
}
_TORCH = {
    torch.float64: "F64", torch.float32: "F32", torch.float16: "F16", torch.bfloat16: "BF16", torch.int64: "I64",
    torch.int32: "I32", torch.int16: "I16", torch.int8: "I8", torch.uint8: "U8", torch.bool: "BOOL",
}
INDEX_NAME = "model.safetensors.index.json"


def bf16_to_f32(u16: np.ndarray) -> np.ndarray:
    return (u16.astype(np.uint32) << 16).view(np.float32)


def f32_to_bf16(a: np.ndarray) -> np.ndarray:
    """Round to nearest even (NaN kept NaN)."""
    u = np.ascontiguousarray(a, dtype=np.float32).view(np.uint32)
    rounded = ((u + 0x7FFF + ((u >> 16) & 1)) >> 16).astype(np.uint16)
    nan = np.isnan(a)
    if nan.any():
        rounded[nan] = 0x7FC0
    return rounded


def read_header(path: str) -> dict:
    with open(path, "rb") as f:
        (n,) = struct.unpack("<Q", f.read(8))
        if n > 100 * 1024 * 1024:
            raise ValueError(f"{path}: implausible safetensors header length {n}")
        return json.loads(f.read(n).decode("utf-8"))


def load_file(path: str, names: Optional[Iterable[str]] = None, as_torch: bool = True,
              bf16: str = "f32", float32: bool = False) -> Dict[str, Union[torch.Tensor, np.ndarray]]:
    """Tensors of one .safetensors file (memory-mapped, each copied once). bf16 tensors come back as f32
    (bf16="f32") or, with as_torch, as torch.bfloat16 (bf16="bf16"); ``float32`` widens every floating tensor
    to f32 as it is read (no second full-size copy of the checkpoint)."""
    with open(path, "rb") as f:
        (n,) = struct.unpack("<Q", f.read(8))
        header = json.loads(f.read(n).decode("utf-8"))
    base = 8 + n
    mm = np.memmap(path, dtype=np.uint8, mode="r")
    wanted = set(names) if names is not None else None
    out: Dict[str, Union[torch.Tensor, np.ndarray]] = {}
    for name, info in header.items():
        if name == "__metadata__" or (wanted is not None and name not in wanted):
            continue
        dt, shape = info["dtype"], info["shape"]
        b, e = info["data_offsets"]
        raw = mm[base + b: base + e]
        if dt == "BF16":
            arr = np.frombuffer(raw, dtype="<u2").reshape(shape)
            if as_torch and bf16 == "bf16":
                out[name] = torch.from_numpy(np.array(arr).view(np.int16)).view(torch.bfloat16)
                continue
            arr = bf16_to_f32(arr)
        elif dt in _NP:
            arr = np.frombuffer(raw, dtype=np.dtype(_NP[dt]).newbyteorder("<")).reshape(shape)
        else:
            raise ValueError(f"{path}: tensor {name} has unsupported dtype {dt}")
        if float32 and arr.dtype.kind == "f":
            arr = arr.astype(np.float32)
        out[name] = torch.from_numpy(np.array(arr, copy=False) if arr.flags.writeable else np.array(arr)) \
            if as_torch else np.array(arr)
    return out


def metadata(path: str) -> Dict[str, str]:
    return read_header(path).get("__metadata__", {}) or {}


def _as_numpy(t) -> (np.ndarray, str):
    if isinstance(t, torch.Tensor):
        t = t.detach().cpu().contiguous()
        if t.dtype == torch.bfloat16:
            return t.view(torch.int16).numpy().view(np.uint16), "BF16"
        code = _TORCH.get(t.dtype)
        if code is None:
            raise ValueError(f"unsupported torch dtype {t.dtype}")
        return t.numpy(), code
    a = np.asarray(t)
    for code, dt in _NP.items():
        if a.dtype == np.dtype(dt):
            return a, code
    raise ValueError(f"unsupported numpy dtype {a.dtype}")


def save_file(tensors: Mapping[str, Union[torch.Tensor, np.ndarray]], path: str,
              metadata: Optional[Mapping[str, str]] = None, dtype: Optional[str] = None) -> None:
    """Write one .safetensors file. ``dtype`` ("F32" | "F16" | "BF16") converts floating tensors."""
    header: Dict[str, dict] = {}
    blobs: List[bytes] = []
    offset = 0
    for name in sorted(tensors):
        a, code = _as_numpy(tensors[name])
        if dtype and code in ("F32", "F16", "F64", "BF16"):
            f = bf16_to_f32(a) if code == "BF16" else a.astype(np.float32)
            if dtype == "BF16":
                a, code = f32_to_bf16(f), "BF16"
            else:
                a, code = f.astype(_NP[dtype]), dtype
        data = np.ascontiguousarray(a).astype(a.dtype.newbyteorder("<"), copy=False).tobytes()
        header[name] = {"dtype": code, "shape": list(a.shape), "data_offsets": [offset, offset + len(data)]}
        blobs.append(data)
        offset += len(data)
    if metadata:
        header["__metadata__"] = {str(k): str(v) for k, v in metadata.items()}
    h = json.dumps(header, separators=(",", ":")).encode("utf-8")
    h += b" " * ((8 - len(h) % 8) % 8)  # align the data start to 8 bytes, as the reference writer does
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(h)))
        f.write(h)
        for b in blobs:
            f.write(b)


def save_sharded(tensors: Mapping[str, Union[torch.Tensor, np.ndarray]], folder: str, max_shard_bytes: int,
                 prefix: str = "model", dtype: Optional[str] = None) -> List[str]:
    """Write ``model-0000i-of-0000n.safetensors`` shards plus ``model.safetensors.index.json``."""
    groups: List[List[str]] = [[]]
    size = 0
    total = 0
    for name in sorted(tensors):
        a, _ = _as_numpy(tensors[name])
        nb = a.size * (2 if dtype in ("F16", "BF16") else a.dtype.itemsize)
        if groups[-1] and size + nb > max_shard_bytes:
            groups.append([])
            size = 0
        groups[-1].append(name)
        size += nb
        total += nb
    files = []
    weight_map = {}
    for i, names in enumerate(groups):
        fname = f"{prefix}-{i + 1:05d}-of-{len(groups):05d}.safetensors"
        save_file({n: tensors[n] for n in names}, os.path.join(folder, fname), {"format": "pt"}, dtype)
        files.append(fname)
        weight_map.update({n: fname for n in names})
    with open(os.path.join(folder, f"{prefix}.safetensors.index.json"), "w") as f:
        json.dump({"metadata": {"total_size": total}, "weight_map": weight_map}, f, indent=2)
    return files


def load_folder(folder: str, bf16: str = "f32", float32: bool = False) -> Dict[str, torch.Tensor]:
    """All tensors of a Hugging Face folder: model.safetensors, or the shards named by the index; else
    every *.safetensors file in it."""
    index = os.path.join(folder, INDEX_NAME)
    if os.path.exists(index):
        with open(index) as f:
            weight_map = json.load(f)["weight_map"]
        out: Dict[str, torch.Tensor] = {}
        for fname in sorted(set(weight_map.values())):
            names = [n for n, v in weight_map.items() if v == fname]
            out.update(load_file(os.path.join(folder, fname), names, bf16=bf16, float32=float32))
        missing = set(weight_map) - set(out)
        if missing:
            raise ValueError(f"{folder}: index names tensors missing from their shards: {sorted(missing)[:5]}")
        return out
    single = os.path.join(folder, "model.safetensors")
    files = [single] if os.path.exists(single) else sorted(
        os.path.join(folder, n) for n in os.listdir(folder) if n.endswith(".safetensors"))
    if not files:
        raise FileNotFoundError(f"{folder}: no model.safetensors, {INDEX_NAME} or *.safetensors file")
    out = {}
    for p in files:
        out.update(load_file(p, bf16=bf16, float32=float32))
    return out
