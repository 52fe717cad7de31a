import json
import os
import struct
import tempfile
import unittest

import numpy as np
import torch

from training.hf import safetensors as st


class SafetensorsTest(unittest.TestCase):
    def setUp(self):
        self.tmp = tempfile.TemporaryDirectory()
        self.dir = self.tmp.name

    def tearDown(self):
        self.tmp.cleanup()

    def test_layout_and_roundtrip(self):
        g = torch.Generator().manual_seed(0)
        t = {"a.weight": torch.randn(3, 5, generator=g), "b": torch.arange(7, dtype=torch.int64),
             "c.half": torch.randn(4, generator=g).half(), "scalar": torch.tensor(2.5), "empty": torch.zeros(0, 3)}
        p = os.path.join(self.dir, "m.safetensors")
        st.save_file(t, p, {"format": "pt"})
        with open(p, "rb") as f:
            raw = f.read()
        (n,) = struct.unpack("<Q", raw[:8])
        header = json.loads(raw[8: 8 + n])
        self.assertEqual(header["__metadata__"], {"format": "pt"})
        self.assertEqual(header["a.weight"]["dtype"], "F32")
        self.assertEqual(header["a.weight"]["shape"], [3, 5])
        self.assertEqual(header["b"]["dtype"], "I64")
        self.assertEqual(header["c.half"]["dtype"], "F16")
        b, e = header["a.weight"]["data_offsets"]
        np.testing.assert_array_equal(np.frombuffer(raw[8 + n + b: 8 + n + e], "<f4").reshape(3, 5), t["a.weight"].numpy())
        self.assertEqual(len(raw), 8 + n + max(v["data_offsets"][1] for k, v in header.items() if k != "__metadata__"))
        back = st.load_file(p)
        for k, v in t.items():
            self.assertEqual(back[k].dtype, v.dtype)
            self.assertTrue(torch.equal(back[k], v), k)
        self.assertEqual(st.metadata(p), {"format": "pt"})

    def test_bf16(self):
        x = torch.tensor([1.0, -2.5, 3.140625, 1e-3, 65504.0, float("inf")])
        p = os.path.join(self.dir, "b.safetensors")
        st.save_file({"x": x.bfloat16()}, p)
        self.assertEqual(st.read_header(p)["x"]["dtype"], "BF16")
        self.assertTrue(torch.equal(st.load_file(p)["x"], x.bfloat16().float()))  # widened exactly to f32
        self.assertTrue(torch.equal(st.load_file(p, bf16="bf16")["x"], x.bfloat16()))
        # numpy rounding to bf16 == torch's
        y = torch.randn(1000, generator=torch.Generator().manual_seed(1))
        np.testing.assert_array_equal(st.f32_to_bf16(y.numpy()), y.bfloat16().view(torch.int16).numpy().view(np.uint16))
        st.save_file({"y": y}, p, dtype="BF16")
        self.assertTrue(torch.equal(st.load_file(p)["y"], y.bfloat16().float()))

    def test_sharded(self):
        g = torch.Generator().manual_seed(2)
        t = {f"layers.{i}.w": torch.randn(16, 16, generator=g) for i in range(5)}
        files = st.save_sharded(t, self.dir, max_shard_bytes=2500)
        self.assertGreater(len(files), 1)
        with open(os.path.join(self.dir, st.INDEX_NAME)) as f:
            idx = json.load(f)
        self.assertEqual(set(idx["weight_map"]), set(t))
        self.assertEqual(set(idx["weight_map"].values()), set(files))
        back = st.load_folder(self.dir)
        for k in t:
            self.assertTrue(torch.equal(back[k], t[k]))


if __name__ == "__main__":
    unittest.main()
