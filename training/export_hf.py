"""Entry point: ``/usr/bin/python3 -m training.export_hf --encoder DIR --decoder DIR [--adapter FILE]
[--lora DIR ...] --out DIR [--dtype f16|f32]`` (see training/hf/export.py and docs/models.md)."""
from training.hf.export import main

if __name__ == "__main__":
    main()
