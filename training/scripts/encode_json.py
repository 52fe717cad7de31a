"""stdin: {"tokenizer": path, "texts": [...]} -> stdout: {"ids": [[...]], "decoded": [...]} (Python reference)."""
import json
import sys

from training.e2llm.tokenizer import ByteLevelBPETokenizer

req = json.load(sys.stdin)
tok = ByteLevelBPETokenizer.from_file(req["tokenizer"])
ids = [tok.encode(t) for t in req["texts"]]
json.dump({"ids": ids, "decoded": [tok.decode(x) for x in ids]}, sys.stdout)
