"""Hugging Face-format checkpoints (config.json + safetensors) -> E2LLM model packages, without transformers.

safetensors.py  pure Python/numpy reader and writer (sharded checkpoints, bf16)
checkpoint.py   config.json / weights / tokenizer.json of a Hugging Face folder
models.py       BERT / GTE (v1.5 rotary "NewModel") encoders, Llama / Qwen2 decoders, loaders
lora.py         PEFT LoRA: merge into base weights, trainable LoRA layers, PEFT-format save
onnx_f16.py     f32 -> f16 ONNX conversion keeping norms, softmax and RoPE in f32
export.py       the package writer behind ``python3 -m training.export_hf``
finetune.py     ``python3 -m training.hf.finetune``: adapter + LoRA training with frozen encoder/decoder
testing.py      tiny randomly initialised checkpoints in the exact Hugging Face layout (tests)
"""
