"""Finish an exported ONNX graph: optional f32 -> f16 conversion, external data for graphs over 2 GB.

The f16 conversion (no onnxconverter-common here) turns every float initializer, Constant, Cast-to-float and
graph input/output into float16, except "blocked" nodes, which keep computing in f32 with Casts around them:
every Softmax and LayerNormalization, and every node under a module scope whose name ends in ``norm`` /
``LayerNorm`` / ``_ln`` or is ``rotary_emb`` (RMSNorm's sum of squares overflows f16 on real models' activations;
RoPE angles need f32 at large positions). ``keep_io_f32`` keeps float graph inputs/outputs f32 (the encoder and
adapter contract is f32 whatever the package dtype).
"""
from __future__ import annotations

import os
import re
from typing import Dict

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper, shape_inference

BLOCK_SCOPE = re.compile(r"(norm|_ln|rotary_emb)$", re.IGNORECASE)
BLOCK_OPS = {"Softmax", "LayerNormalization"}
TWO_GB = 2_000_000_000
FLOAT, FLOAT16 = TensorProto.FLOAT, TensorProto.FLOAT16


def blocked(node: onnx.NodeProto) -> bool:
    if node.op_type in BLOCK_OPS:
        return True
    return any(BLOCK_SCOPE.search(p) for p in node.name.split("/")[1:-1])


def _elem_types(model: onnx.ModelProto) -> Dict[str, int]:
    inferred = shape_inference.infer_shapes(model)
    g = inferred.graph
    types = {vi.name: vi.type.tensor_type.elem_type for vi in list(g.value_info) + list(g.input) + list(g.output)}
    for init in model.graph.initializer:
        types[init.name] = init.data_type
    return types


def _attr(node, name):
    for a in node.attribute:
        if a.name == name:
            return a
    return None


def convert_f16(model: onnx.ModelProto, types: Dict[str, int], keep_io_f32: bool = False) -> onnx.ModelProto:
    """In place; ``types`` from ``_elem_types`` of the f32 graph (computed before weights are loaded for
    graphs over 2 GB). Initializer data must be loaded."""
    g = model.graph
    is_float = lambda n: types.get(n) == FLOAT
    domain: Dict[str, str] = {}
    for init in g.initializer:
        if init.data_type == FLOAT:
            init.CopyFrom(numpy_helper.from_array(numpy_helper.to_array(init).astype(np.float16), init.name))
            domain[init.name] = "f16"
    for inp in g.input:
        if is_float(inp.name):
            if keep_io_f32:
                domain[inp.name] = "f32"
            else:
                inp.type.tensor_type.elem_type = FLOAT16
                domain[inp.name] = "f16"
    nodes = []
    casts: Dict[tuple, str] = {}

    def cast(name: str, to: str) -> str:
        key = (name, to)
        if key not in casts:
            out = f"{name}__{to}"
            nodes.append(helper.make_node("Cast", [name], [out], to=FLOAT16 if to == "f16" else FLOAT,
                                          name=f"{name}__cast_{to}"))
            casts[key] = out
        return casts[key]

    for node in list(g.node):
        want = "f32" if blocked(node) else "f16"
        for i, n in enumerate(node.input):
            if n and is_float(n) and domain.get(n, want) != want:
                node.input[i] = cast(n, want)
        if want == "f16":
            if node.op_type == "Cast" and _attr(node, "to").i == FLOAT:
                _attr(node, "to").i = FLOAT16
            for a in node.attribute:
                if a.type == onnx.AttributeProto.TENSOR and a.t.data_type == FLOAT:
                    a.t.CopyFrom(numpy_helper.from_array(numpy_helper.to_array(a.t).astype(np.float16), a.t.name))
        for o in node.output:
            if is_float(o):
                domain[o] = want
        nodes.append(node)
    for out in g.output:
        if not is_float(out.name):
            continue
        want = "f32" if keep_io_f32 else "f16"
        if domain.get(out.name) != want:
            internal = out.name + "__pre"
            for n in nodes:
                for i, x in enumerate(n.input):
                    if x == out.name:
                        n.input[i] = internal
                for i, x in enumerate(n.output):
                    if x == out.name:
                        n.output[i] = internal
            nodes.append(helper.make_node("Cast", [internal], [out.name], to=FLOAT if want == "f32" else FLOAT16,
                                          name=out.name + "__cast_out"))
        out.type.tensor_type.elem_type = FLOAT if want == "f32" else FLOAT16
    del g.node[:]
    g.node.extend(nodes)
    del g.value_info[:]
    return model


def finish(src: str, dst: str, f16: bool = False, keep_io_f32: bool = False, check: bool = True) -> None:
    """Load ``src`` (torch.onnx.export output, maybe with external data next to it), convert, and write ``dst``:
    one file, or ``dst`` + ``dst.data`` (all tensors in one external file) when the weights exceed 2 GB."""
    base = os.path.dirname(os.path.abspath(src))
    model = onnx.load(src, load_external_data=False)
    external = any(init.data_location == TensorProto.EXTERNAL for init in model.graph.initializer)
    types = _elem_types(model) if f16 else {}
    if external:
        onnx.external_data_helper.load_external_data_for_model(model, base)
    if f16:
        convert_f16(model, types, keep_io_f32)
    size = sum(len(i.raw_data) for i in model.graph.initializer)
    data_name = os.path.basename(dst) + ".data"
    if os.path.exists(dst + ".data"):
        os.remove(dst + ".data")
    if size > TWO_GB:
        onnx.save_model(model, dst, save_as_external_data=True, all_tensors_to_one_file=True, location=data_name,
                        size_threshold=1024)
    else:
        onnx.save_model(model, dst)
    del model
    if check:
        onnx.checker.check_model(dst, full_check=True)
