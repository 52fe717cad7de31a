"""Dynamic int8 quantization of an encoder.onnx with the onnx package alone (onnxruntime's Python quantizer is not
installed here): ``/usr/bin/python3 -m training.scripts.quantize_encoder IN.onnx OUT.onnx [options]``

Each MatMul whose B is a constant 2-D initializer becomes the pattern onnxruntime's ``quantize_dynamic`` writes
(weights int8, symmetric, zero point 0; activations uint8, quantized per call):

    DynamicQuantizeLinear(A) -> A_q, A_scale, A_zp       (one per activation, shared by q/k/v)
    MatMulInteger(A_q, B_q, A_zp, B_zp) -> int32 ; Cast(float) ; Mul(A_scale * B_scale)

onnxruntime's graph optimisation (level "extended" and up) fuses it into its own DynamicQuantizeMatMul kernel, so
the portable pattern costs nothing over writing com.microsoft ops (``--ms`` writes DynamicQuantizeMatMul directly).
``--per-column`` gives each output column its own weight scale. ``--embeddings`` also stores the token embedding
table (the Gather on ``input_ids``) as int8 with one scale per row, dequantized after the Gather: only the rows a
batch reads are touched, and the file shrinks by three quarters of that table.

Attention's activation-by-activation MatMuls (QK^T, PV), the convolution and LayerNorm stay f32 (``--f16-rest``
stores the convolution's weights as f16, cast back at load).

The shipped models/e2llm-tiny/encoder.int8.onnx (1,770,817 bytes against encoder.onnx's 5,938,277) is
``--per-column --embeddings --f16-rest`` of encoder.onnx. Measured 2026-12-04 on this two-core machine (shared with
other work, load 2-5), onnxruntime-node 1.30, graph optimisation "all":

- closeness (``node training/scripts/bench_encoder_int8.mjs F32 INT8``, 256 real 512-character chunks of GPL-3 and
  the Vim-manual text): max |diff| 0.074 (largest |f32| value 4.89), cosine min 0.99972, mean 0.99992.
- speed, same padded batches, A/B alternated, best of 7 (real tokens/s): batch 8: f32 45,037, int8 64,192 (1.43x);
  batch 64: f32 33,759, int8 46,758 (1.39x). A second run at load 5 (best of 9): 35,843 vs 47,645 (1.33x) and
  20,604 vs 28,796 (1.40x). Variants, batch 8 / 64 tok/s in the first run: per-tensor 63,805 / 41,005;
  per-column without --embeddings 61,529 / 36,894; ``--ms`` DynamicQuantizeMatMul 56,375 / 37,202 (the portable
  pattern, fused by onnxruntime, is as fast or faster).
- RULER (``e2llm eval ruler --tasks niah_single_1,niah_single_2,niah_single_3 --lengths 4096,8192 --samples 100
  --seed 7 --expand 0,4``, the same 100 samples a cell for both graphs): expand 0, f32 -> int8: niah_single_1
  4k 89 -> 88, 8k 92 -> 93; niah_single_2 4k 89 -> 89, 8k 90 -> 90; niah_single_3 0 -> 0 at both lengths (the
  compressed path cannot read uuids with either). Expand 4 (the default): niah_single_1 100 -> 100 and
  niah_single_2 100 -> 100 at both lengths, niah_single_3 4k 95 -> 95, 8k 98 -> 98; identical predictions on every
  expand-4 sample. Every cell within 1 point, inside the 2 points issue 21 allows.
"""
from __future__ import annotations

import argparse
from dataclasses import dataclass

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper


@dataclass(frozen=True)
class QuantizeOptions:
    per_column: bool = False
    embeddings: bool = False
    ms_ops: bool = False
    f16_rest: bool = False


def _int8_symmetric(w: np.ndarray, axis: int | None) -> tuple[np.ndarray, np.ndarray]:
    """int8 weights and their scales (per tensor, or reduced over ``axis``), zero point 0."""
    amax = np.abs(w).max() if axis is None else np.abs(w).max(axis=axis)
    scale = np.where(amax > 0, amax / 127.0, 1.0).astype(np.float32)
    q = np.clip(np.rint(w / (scale if axis is None else np.expand_dims(scale, axis))), -127, 127).astype(np.int8)
    return q, np.asarray(scale, dtype=np.float32)


def quantize(model: onnx.ModelProto, opts: QuantizeOptions) -> tuple[onnx.ModelProto, dict[str, int]]:
    graph = model.graph
    inits = {i.name: i for i in graph.initializer}
    consumers: dict[str, int] = {}
    for n in graph.node:
        for x in n.input:
            consumers[x] = consumers.get(x, 0) + 1
    new_inits: list[onnx.TensorProto] = []
    dropped: set[str] = set()
    activation_q: dict[str, tuple[str, str, str]] = {}
    nodes: list[onnx.NodeProto] = []
    counts = {"matmul": 0, "gather": 0, "f16": 0}

    def quantized_activation(a: str) -> tuple[str, str, str]:
        if a not in activation_q:
            base = f"{a}_dq"
            nodes.append(helper.make_node("DynamicQuantizeLinear", [a], [f"{base}_q", f"{base}_scale", f"{base}_zp"], name=f"{base}/DynamicQuantizeLinear"))
            activation_q[a] = (f"{base}_q", f"{base}_scale", f"{base}_zp")
        return activation_q[a]

    for n in graph.node:
        b = n.input[1] if len(n.input) > 1 else None
        w = numpy_helper.to_array(inits[b]) if b in inits else None
        if n.op_type == "MatMul" and w is not None and w.ndim == 2 and w.dtype == np.float32:
            q, scale = _int8_symmetric(w, 0 if opts.per_column else None)
            zp = np.zeros_like(scale, dtype=np.int8)
            new_inits += [numpy_helper.from_array(q, f"{b}_quantized"), numpy_helper.from_array(scale, f"{b}_scale"), numpy_helper.from_array(zp, f"{b}_zero_point")]
            if consumers[b] == 1:
                dropped.add(b)
            y = n.output[0]
            name = n.name or y
            if opts.ms_ops:
                nodes.append(helper.make_node("DynamicQuantizeMatMul", [n.input[0], f"{b}_quantized", f"{b}_scale", f"{b}_zero_point"], [y], name=f"{name}_quant", domain="com.microsoft"))
            else:
                a_q, a_scale, a_zp = quantized_activation(n.input[0])
                nodes += [
                    helper.make_node("MatMulInteger", [a_q, f"{b}_quantized", a_zp, f"{b}_zero_point"], [f"{y}_int32"], name=f"{name}_quant"),
                    helper.make_node("Cast", [f"{y}_int32"], [f"{y}_cast"], to=TensorProto.FLOAT, name=f"{name}_cast"),
                    helper.make_node("Mul", [a_scale, f"{b}_scale"], [f"{y}_scale"], name=f"{name}_scale_mul"),
                    helper.make_node("Mul", [f"{y}_cast", f"{y}_scale"], [y], name=f"{name}_output_mul"),
                ]
            counts["matmul"] += 1
            continue
        table = n.input[0] if n.op_type == "Gather" else None
        if opts.embeddings and table in inits and consumers[table] == 1 and numpy_helper.to_array(inits[table]).ndim == 2 and dict((a.name, a.i) for a in n.attribute).get("axis", 0) == 0:
            q, scale = _int8_symmetric(numpy_helper.to_array(inits[table]), 1)
            new_inits += [numpy_helper.from_array(q, f"{table}_quantized"), numpy_helper.from_array(scale[:, None], f"{table}_row_scale")]
            dropped.add(table)
            ids, y, name = n.input[1], n.output[0], n.name or n.output[0]
            nodes += [
                helper.make_node("Gather", [f"{table}_quantized", ids], [f"{y}_q"], name=f"{name}_quant"),
                helper.make_node("Gather", [f"{table}_row_scale", ids], [f"{y}_scale"], name=f"{name}_scale"),
                helper.make_node("Cast", [f"{y}_q"], [f"{y}_cast"], to=TensorProto.FLOAT, name=f"{name}_cast"),
                helper.make_node("Mul", [f"{y}_cast", f"{y}_scale"], [y], name=f"{name}_dequant"),
            ]
            counts["gather"] += 1
            continue
        nodes.append(n)

    if opts.f16_rest:
        # Large f32 weights left (the convolution) stored as f16 and cast back: onnxruntime folds the Cast at load,
        # so this shrinks the file and changes no kernel.
        for init in graph.initializer:
            if init.name in dropped or init.data_type != TensorProto.FLOAT or np.prod(init.dims) < 4096:
                continue
            new_inits.append(numpy_helper.from_array(numpy_helper.to_array(init).astype(np.float16), f"{init.name}_f16"))
            nodes.insert(0, helper.make_node("Cast", [f"{init.name}_f16"], [init.name], to=TensorProto.FLOAT, name=f"{init.name}_cast"))
            dropped.add(init.name)
            counts["f16"] += 1
    kept = [i for i in graph.initializer if i.name not in dropped]
    del graph.initializer[:]
    graph.initializer.extend(kept + new_inits)
    del graph.node[:]
    graph.node.extend(nodes)
    if opts.ms_ops and not any(o.domain == "com.microsoft" for o in model.opset_import):
        model.opset_import.append(helper.make_opsetid("com.microsoft", 1))
    onnx.checker.check_model(model)
    return model, counts


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("input")
    ap.add_argument("output")
    ap.add_argument("--per-column", action="store_true", help="one weight scale per output column")
    ap.add_argument("--embeddings", action="store_true", help="also store the token embedding table as int8 (per-row scales)")
    ap.add_argument("--ms", action="store_true", help="write com.microsoft DynamicQuantizeMatMul instead of the portable pattern")
    ap.add_argument("--f16-rest", action="store_true", help="store the other large f32 weights (the convolution) as f16")
    args = ap.parse_args()
    model, counts = quantize(onnx.load(args.input), QuantizeOptions(args.per_column, args.embeddings, args.ms, args.f16_rest))
    onnx.save(model, args.output)
    print(f"{args.output}: {counts['matmul']} MatMuls and {counts['gather']} embedding tables quantized, {counts['f16']} weights stored as f16")


if __name__ == "__main__":
    main()
