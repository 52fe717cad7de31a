"""Rebuild a PyTorch checkpoint from an exported model package (encoder/adapter/decoder ONNX + embed_tokens.bin).

    /usr/bin/python3 training/scripts/checkpoint_from_package.py models/e2llm-tiny training/runs/tiny-cpu/package-ckpt.pt

Training runs keep their checkpoints in the gitignored training/runs/; the package is what is committed. To go on
training from a shipped package, this maps every ONNX initializer back to the parameter it holds: a model with
distinct random values in every parameter is exported with the same exporter (so the initializer names match,
including the anonymous ``onnx::MatMul_*`` ones, which hold transposed weights), each of its initializers is
matched by value to a parameter (directly or transposed), and the package's values are read through that map.
Exits 1 if any parameter is left unmatched. Exporting the result again gives initializers identical to the package.
"""
import json
import os
import sys
import tempfile

import numpy as np
import onnx
import torch
from onnx import numpy_helper

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))
from training.e2llm.export import export_onnx  # noqa: E402
from training.e2llm.modules import E2LLMConfig, build_model  # noqa: E402


def initializers(path: str) -> dict:
    return {i.name: numpy_helper.to_array(i) for i in onnx.load(path).graph.initializer}


def main(pkg: str, out: str) -> int:
    with open(os.path.join(pkg, "manifest.json")) as f:
        manifest = json.load(f)
    ref = build_model(0)
    gen = torch.Generator().manual_seed(1)
    with torch.no_grad():
        for p in ref.parameters():
            p.copy_(torch.randn(p.shape, generator=gen))
    sd = {k: v.detach().numpy() for k, v in ref.state_dict().items()}
    params = {k for k, _ in ref.named_parameters()}
    got = {}
    with tempfile.TemporaryDirectory() as d:
        export_onnx(ref, d)
        for part in ("encoder", "adapter", "decoder"):
            theirs = initializers(os.path.join(pkg, f"{part}.onnx"))
            for name, val in initializers(os.path.join(d, f"{part}.onnx")).items():
                for k, v in sd.items():
                    if v.shape == val.shape and np.array_equal(v, val):
                        got[k] = theirs[name]
                        break
                    if v.ndim == 2 and v.T.shape == val.shape and np.array_equal(v.T, val):
                        got[k] = theirs[name].T
                        break
    emb_shape = sd["decoder.embed_tokens.weight"].shape
    got["decoder.embed_tokens.weight"] = np.fromfile(os.path.join(pkg, "embed_tokens.bin"), dtype="<f4").reshape(emb_shape)
    missing = sorted(params - set(got))
    if missing:
        print("unmatched parameters: " + ", ".join(missing), file=sys.stderr)
        return 1
    model = build_model(0)
    state = model.state_dict()  # buffers (rotary frequencies) are deterministic and come from the config
    for k, v in got.items():
        state[k] = torch.from_numpy(np.ascontiguousarray(v).copy())
    model.load_state_dict(state)
    with open(os.path.join(pkg, "tokenizer.json"), encoding="utf-8") as f:
        tok = json.load(f)
    os.makedirs(os.path.dirname(os.path.abspath(out)), exist_ok=True)
    torch.save({"config": model.cfg.to_dict(), "model": model.state_dict(), "tokenizer": tok}, out)
    print(f"{out}: {len(got)} parameters from {pkg} (manifest {manifest.get('name', '?')})")
    return 0


if __name__ == "__main__":
    if len(sys.argv) != 3:
        print(__doc__, file=sys.stderr)
        sys.exit(2)
    sys.exit(main(sys.argv[1], sys.argv[2]))
