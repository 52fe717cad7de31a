import unittest

import numpy as np
from onnx import TensorProto, helper, numpy_helper

from training.scripts.quantize_encoder import QuantizeOptions, quantize


def _graph(seed: int = 0):
    """ids -> Gather(table) -> MatMul(w1) -> MatMul(w2), plus an activation-by-activation MatMul left alone."""
    rng = np.random.default_rng(seed)
    inits = {
        "table": rng.normal(size=(32, 8)).astype(np.float32),
        "w1": rng.normal(size=(8, 16)).astype(np.float32),
        "w2": rng.normal(size=(16, 8)).astype(np.float32),
        "conv_like": rng.normal(size=(64, 64)).astype(np.float32),
    }
    nodes = [
        helper.make_node("Gather", ["table", "ids"], ["emb"]),
        helper.make_node("MatMul", ["emb", "w1"], ["h"]),
        helper.make_node("MatMul", ["h", "w2"], ["y0"]),
        helper.make_node("Transpose", ["y0"], ["y0_t"], perm=[1, 0]),
        helper.make_node("MatMul", ["y0", "y0_t"], ["scores"]),
        helper.make_node("ReduceSum", ["conv_like"], ["c"], keepdims=0),
        helper.make_node("Add", ["scores", "c"], ["y"]),
    ]
    graph = helper.make_graph(
        nodes, "g",
        [helper.make_tensor_value_info("ids", TensorProto.INT64, ["n"])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["n", "n"])],
        [numpy_helper.from_array(v, k) for k, v in inits.items()],
    )
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), inits


class QuantizeEncoderTest(unittest.TestCase):
    def test_weight_matmuls_become_matmul_integer(self):
        model, _ = _graph()
        q, counts = quantize(model, QuantizeOptions())
        ops = [n.op_type for n in q.graph.node]
        self.assertEqual(counts["matmul"], 2)
        self.assertEqual(ops.count("MatMulInteger"), 2)
        self.assertEqual(ops.count("DynamicQuantizeLinear"), 2)
        self.assertEqual(ops.count("MatMul"), 1)  # scores = y0 @ y0^T has no constant B
        names = {i.name for i in q.graph.initializer}
        self.assertNotIn("w1", names)
        self.assertIn("table", names)  # embeddings stay f32 unless asked

    def test_per_column_weights_dequantize_within_half_a_step(self):
        model, inits = _graph()
        q, _ = quantize(model, QuantizeOptions(per_column=True, embeddings=True))
        arr = {i.name: numpy_helper.to_array(i) for i in q.graph.initializer}
        self.assertEqual(arr["w1_quantized"].dtype, np.int8)
        self.assertEqual(arr["w1_scale"].shape, (16,))
        self.assertTrue(np.all(arr["w1_zero_point"] == 0))
        err = np.abs(arr["w1_quantized"] * arr["w1_scale"] - inits["w1"])
        self.assertTrue(np.all(err <= arr["w1_scale"] / 2 + 1e-7))
        table = arr["table_quantized"] * arr["table_row_scale"]
        self.assertTrue(np.all(np.abs(table - inits["table"]) <= arr["table_row_scale"] / 2 + 1e-7))
        self.assertNotIn("table", arr)

    def test_ms_ops_and_f16_storage(self):
        model, inits = _graph()
        q, counts = quantize(model, QuantizeOptions(ms_ops=True, f16_rest=True))
        ops = [(n.domain, n.op_type) for n in q.graph.node]
        self.assertEqual(ops.count(("com.microsoft", "DynamicQuantizeMatMul")), 2)
        self.assertIn("com.microsoft", {o.domain for o in q.opset_import})
        self.assertEqual(counts["f16"], 1)
        arr = {i.name: numpy_helper.to_array(i) for i in q.graph.initializer}
        self.assertEqual(arr["conv_like_f16"].dtype, np.float16)
        self.assertEqual(q.graph.node[0].op_type, "Cast")


if __name__ == "__main__":
    unittest.main()
