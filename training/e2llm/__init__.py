"""E2LLM training / export code (tokenizer, PyTorch modules, ONNX export)."""
