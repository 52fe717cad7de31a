"""Bench helpers that need the onnx package: a MatMul model for the compute ceiling, and the encoder's FLOPs.

Usage: python3 onnx_tools.py matmul OUT.onnx M K N  |  python3 onnx_tools.py encoder-flops ENCODER.onnx
"""
import json
import sys

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper


def matmul(out, m, k, n):
    b = numpy_helper.from_array((np.random.default_rng(0).standard_normal((k, n)) * 0.01).astype(np.float32), 'B')
    graph = helper.make_graph(
        [helper.make_node('MatMul', ['A', 'B'], ['C'])], 'matmul',
        [helper.make_tensor_value_info('A', TensorProto.FLOAT, [m, k])],
        [helper.make_tensor_value_info('C', TensorProto.FLOAT, [m, n])], [b])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid('', 17)])
    model.ir_version = 8
    onnx.save(model, out)


def encoder_flops(path):
    """Per token: 2*in*out for every weight MatMul of the transformer layers; per attention layer 4*d per key
    position (QK^T and AV); per chunk: the pooling block's weight MatMuls."""
    g = onnx.load(path).graph
    inits = {i.name: list(i.dims) for i in g.initializer}
    token_flops = 0
    chunk_flops = 0
    attn_layers = set()
    for node in g.node:
        if node.op_type not in ('MatMul', 'Gemm'):
            continue
        w = inits.get(node.input[1])
        pooled = node.name.startswith('/pma') or node.input[0].startswith('/pma') or node.input[0] == 'pma.query'
        if w is not None and len(w) >= 2:
            flops = 2 * w[-2] * w[-1]
            if pooled:
                chunk_flops += flops
            else:
                token_flops += flops
        elif not pooled:
            attn_layers.add(node.input[0].split('/')[1])
    print(json.dumps({'tokenWeightFlops': token_flops, 'chunkWeightFlops': chunk_flops, 'attentionLayers': len(attn_layers)}))


if __name__ == '__main__':
    if sys.argv[1] == 'matmul':
        matmul(sys.argv[2], *map(int, sys.argv[3:6]))
    else:
        encoder_flops(sys.argv[2])
