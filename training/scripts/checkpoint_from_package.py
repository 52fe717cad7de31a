"""Rebuild a PyTorch checkpoint from an exported model package (encoder/adapter/decoder ONNX + embed_tokens.bin).

    /usr/bin/python3 training/scripts/checkpoint_from_package.py models/e2llm-tiny training/runs/base/package-ckpt.pt \
        --encoder '{"positions":"rope","pre_ln":true,"conv_kernel":9,"pooling":"mean"}'

--encoder gives the fields of EncoderConfig that differ from its defaults (the shipped package's are above; the
ONNX graph does not record them). A wrong shape fails the mapping below with the parameters it could not match.

Training runs keep their checkpoints in the gitignored training/runs/; the package is what is committed. To go on
training from a shipped package, this maps every ONNX initializer back to the parameter it holds: a model with
distinct random values in every parameter is exported with the same exporter (so the initializer names match,
including the anonymous ``onnx::MatMul_*`` ones, which hold transposed weights), each of its initializers is
matched by value to a parameter (directly or transposed), and the package's values are read through that map.
Exits 1 if any parameter is left unmatched. Exporting the result again gives initializers identical to the package.
"""
import argparse
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


def main(pkg: str, out: str, cfg: E2LLMConfig) -> int:
    with open(os.path.join(pkg, "manifest.json")) as f:
        manifest = json.load(f)
    ref = build_model(0, cfg)
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
                if name not in theirs:  # another shape, or an exporter that folded this initializer away
                    continue
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
    model = build_model(0, cfg)
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
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("package")
    ap.add_argument("out")
    ap.add_argument("--encoder", default="{}", help="EncoderConfig fields as JSON (those that differ from the defaults)")
    args = ap.parse_args()
    sys.exit(main(args.package, args.out, E2LLMConfig.from_dict({"encoder": json.loads(args.encoder)})))
