"""Stand-in inference engines for the e2e tests: vLLM, SGLang and text-embeddings-inference (TEI) on their own wire
formats, running the project's PyTorch modules with the weights of a shipped model package.

    /usr/bin/python3 test/engines/engine_server.py vllm --package models/e2llm-tiny --served-model-name e2llm-tiny
    /usr/bin/python3 test/engines/engine_server.py sglang --package models/e2llm-tiny
    /usr/bin/python3 test/engines/engine_server.py tei --package models/e2llm-tiny --model-id e2llm/e2llm-tiny-encoder

Each prints ``READY <port>`` once it listens (``--port 0``: a free port). The package is turned back into a PyTorch
model with training/scripts/checkpoint_from_package.py's mapping, so the weights are the package's to the bit.

What each reads, as the engine does:
* vLLM ``POST /v1/completions``: ``prompt_embeds`` is base64 of ``torch.save(tensor)`` bytes, read with
  ``torch.load(io.BytesIO(base64.b64decode(x, validate=True)), weights_only=True)`` (vLLM's own call; within
  ``torch.sparse.check_sparse_tensor_invariants`` where this torch has it, as vLLM >= 0.11.1 does), then checked to be
  [seq, hidden]. Streams ``text_completion`` chunks with ``token_ids`` (``return_token_ids``), the usage chunk and
  ``[DONE]``. Like vLLM, the EOS or stop token id that ends an answer is in ``token_ids`` and not in the text.
* SGLang ``POST /generate``: ``input_embeds`` as nested JSON arrays [seq][hidden]; streams cumulative ``text`` and
  ``output_ids`` with ``meta_info`` (``finish_reason``, ``completion_tokens``), then ``[DONE]``. This stand-in leaves
  the EOS id out of ``output_ids`` (finish_reason matched says which it was), so the client's other path is used.
* TEI ``POST /embed``: ``{"inputs": str | [str], "normalize": bool, "truncate": bool}`` -> ``[[float]]``; the
  package's encoder (CLS + the text's tokens, mean pooling), 422 when a text has more tokens than the encoder takes and
  truncate is false. ``GET /info`` reports model_id and model_sha.

Generation is greedy at temperature 0 with a KV cache, as the ONNX decoder runs it; above 0 it samples with a torch
generator (seeded by ``seed`` for vLLM), which is not the worker's sampler: only greedy answers are compared.
"""
import argparse
import base64
import binascii
import hashlib
import io
import json
import os
import sys
import tempfile
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, ROOT)

import torch  # noqa: E402

from training.e2llm.modules import E2LLMConfig, build_model, pad_batch  # noqa: E402
from training.e2llm.tokenizer import ByteLevelBPETokenizer  # noqa: E402
from training.scripts import checkpoint_from_package  # noqa: E402

# The shipped package's encoder fields that differ from EncoderConfig's defaults (the ONNX graph does not record them).
SHIPPED_ENCODER = '{"positions":"rope","pre_ln":true,"conv_kernel":9,"pooling":"mean"}'


class HttpError(Exception):
    def __init__(self, status: int, body: dict):
        super().__init__(body)
        self.status = status
        self.body = body


def load_model(package: str, encoder_json: str):
    cfg = E2LLMConfig.from_dict({"encoder": json.loads(encoder_json)})
    with tempfile.TemporaryDirectory() as d:
        path = os.path.join(d, "ckpt.pt")
        with open(os.devnull, "w") as quiet:
            saved, sys.stdout = sys.stdout, quiet
            try:
                rc = checkpoint_from_package.main(package, path, cfg)
            finally:
                sys.stdout = saved
        if rc != 0:
            raise SystemExit(f"cannot rebuild a checkpoint from {package}")
        ckpt = torch.load(path)
    model = build_model(0, E2LLMConfig.from_dict(ckpt["config"]))
    model.load_state_dict(ckpt["model"])
    return model.eval()


class Engine:
    def __init__(self, args):
        self.args = args
        with open(os.path.join(args.package, "manifest.json")) as f:
            self.manifest = json.load(f)
        self.model = load_model(args.package, args.encoder)
        self.tok = ByteLevelBPETokenizer.from_file(os.path.join(args.package, self.manifest["decoder"]["tokenizer"]))
        self.enc_tok = ByteLevelBPETokenizer.from_file(os.path.join(args.package, self.manifest["encoder"]["tokenizer"]))
        self.lock = threading.Lock()  # one forward at a time: the model is shared by the server's threads
        self.hidden = self.manifest["decoder"]["hiddenSize"]
        with open(os.path.join(args.package, self.manifest["encoder"]["onnx"]), "rb") as f:
            self.encoder_sha = hashlib.sha256(f.read()).hexdigest()[:40]

    # --- decoder ----------------------------------------------------------------------------------------------------
    def check_embeds(self, t) -> "torch.Tensor":
        if not isinstance(t, torch.Tensor):
            raise HttpError(400, error_body(f"prompt_embeds must be a tensor, got {type(t).__name__}", 400))
        if t.dim() == 3 and t.shape[0] == 1:
            t = t.squeeze(0)
        if t.dim() != 2 or t.shape[1] != self.hidden or t.shape[0] < 1:
            raise HttpError(400, error_body(f"prompt_embeds must be [seq, {self.hidden}], got {list(t.shape)}", 400))
        if t.dtype not in (torch.float32, torch.float16, torch.bfloat16):
            raise HttpError(400, error_body(f"prompt_embeds dtype {t.dtype} is not a float type", 400))
        return t.to(torch.float32)

    def generate(self, embeds, max_tokens: int, min_tokens: int, temperature: float, top_p: float, top_k: int,
                 stop_ids, seed):
        """Yields (token id, finished) one token at a time: greedy with a KV cache, as the ONNX decoder runs."""
        dec = self.model.decoder
        gen = torch.Generator().manual_seed(seed if seed is not None else 0)
        T = embeds.shape[0]
        with self.lock, torch.no_grad():
            out = dec(embeds.unsqueeze(0), torch.ones(1, T, dtype=torch.long), torch.arange(T).unsqueeze(0), *dec.empty_past())
        for step in range(max_tokens):
            logits = out[0][0, -1].clone()
            if step < min_tokens:
                for s in stop_ids:
                    logits[s] = float("-inf")
            if temperature <= 0:
                token = int(torch.argmax(logits))
            else:
                probs = torch.softmax(logits / temperature, dim=-1)
                if top_k > 0:
                    kth = torch.topk(probs, top_k).values[-1]
                    probs = torch.where(probs >= kth, probs, torch.zeros_like(probs))
                if top_p < 1:
                    sorted_p, order = torch.sort(probs, descending=True)
                    keep = torch.cumsum(sorted_p, 0) - sorted_p < top_p * sorted_p.sum()
                    probs = torch.zeros_like(probs).scatter(0, order[keep], sorted_p[keep])
                token = int(torch.multinomial(probs / probs.sum(), 1, generator=gen))
            yield token
            if token in stop_ids:
                return
            with self.lock, torch.no_grad():
                x = dec.embed_tokens(torch.tensor([[token]]))
                out = dec(x, torch.ones(1, T + step + 1, dtype=torch.long), torch.tensor([[T + step]]), *out[1:])

    def answer(self, embeds, p):
        """Runs one generation with stop strings; yields (new ids, new text, finish or None)."""
        stop_ids = list(p["stop_token_ids"])
        tokens, text_so_far = [], ""
        count = 0
        for token in self.generate(embeds, p["max_tokens"], p["min_tokens"], p["temperature"], p["top_p"], p["top_k"],
                                   stop_ids, p.get("seed")):
            count += 1
            if token in stop_ids:
                yield [token], "", ("stop", token)
                return
            tokens.append(token)
            text = self.tok.decode(tokens, skip_special_tokens=True)
            hits = [(text.find(s), s) for s in p["stop"] if s and text.find(s) >= 0]
            if hits:
                at, s = min(hits)
                yield [token], text[len(text_so_far):at] if at > len(text_so_far) else "", ("stop", s)
                return
            delta, text_so_far = text[len(text_so_far):], text
            yield [token], delta, (("length", None) if count >= p["max_tokens"] else None)

    # --- encoder ----------------------------------------------------------------------------------------------------
    def embed(self, texts, normalize: bool, truncate: bool):
        enc = self.manifest["encoder"]
        limit = enc["maxTokens"]
        seqs = []
        for t in texts:
            ids = ([enc["clsTokenId"]] if enc.get("clsTokenId") is not None else []) + self.enc_tok.encode(t)
            if len(ids) > limit:
                if not truncate:
                    raise HttpError(422, {"error": f"Input validation error: `inputs` must have less than {limit} tokens. Given: {len(ids)}",
                                          "error_type": "Validation"})
                ids = ids[:limit]
            seqs.append(ids)
        ids, mask = pad_batch(seqs, enc["padTokenId"])
        with self.lock, torch.no_grad():
            v = self.model.encoder(ids, mask)
        if normalize:
            v = torch.nn.functional.normalize(v, dim=-1)
        return v.tolist()


def error_body(message: str, code: int) -> dict:
    kind = {400: "BadRequestError", 401: "Unauthorized", 404: "NotFoundError"}.get(code, "InternalServerError")
    return {"error": {"message": message, "type": kind, "param": None, "code": code}}


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    engine: Engine = None  # set in main

    def log_message(self, fmt, *args):  # quiet: the test prints what matters
        pass

    def send_json(self, status: int, body) -> None:
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def start_stream(self) -> None:
        self.send_response(200)
        self.send_header("content-type", "text/event-stream")
        self.send_header("cache-control", "no-cache")
        self.send_header("connection", "close")
        self.end_headers()
        self.close_connection = True

    def event(self, body) -> None:
        self.wfile.write(b"data: " + (body if isinstance(body, bytes) else json.dumps(body).encode()) + b"\n\n")
        self.wfile.flush()

    def read_json(self):
        n = int(self.headers.get("content-length") or 0)
        try:
            return json.loads(self.rfile.read(n) or b"null")
        except ValueError as e:
            raise HttpError(400, error_body(f"invalid JSON body: {e}", 400))

    def authorized(self) -> bool:
        key = self.engine.args.api_key
        if key and self.headers.get("authorization") != f"Bearer {key}":
            self.send_json(401, {"error": "Unauthorized"})
            return False
        return True

    def do_GET(self):
        if not self.authorized():
            return
        kind, e = self.engine.args.kind, self.engine
        if self.path == "/health":
            self.send_json(200, {}) if kind != "vllm" else self.send_json(200, None)
        elif kind == "vllm" and self.path == "/v1/models":
            self.send_json(200, {"object": "list", "data": [{"id": e.args.served_model_name, "object": "model"}]})
        elif kind == "sglang" and self.path == "/get_model_info":
            self.send_json(200, {"model_path": e.args.package, "is_generation": True})
        elif kind == "tei" and self.path == "/info":
            self.send_json(200, {
                "model_id": e.args.model_id, "model_sha": e.encoder_sha, "model_dtype": "float32",
                "model_type": {"embedding": {"pooling": e.manifest["encoder"]["pooling"]}},
                "max_concurrent_requests": 512, "max_input_length": e.manifest["encoder"]["maxTokens"],
                "max_batch_tokens": 16384, "max_client_batch_size": e.args.max_client_batch_size, "version": "stand-in",
            })
        else:
            self.send_json(404, error_body(f"no route {self.path}", 404))

    def do_POST(self):
        if not self.authorized():
            return
        try:
            kind = self.engine.args.kind
            if kind == "vllm" and self.path == "/v1/completions":
                self.vllm_completions(self.read_json())
            elif kind == "sglang" and self.path == "/generate":
                self.sglang_generate(self.read_json())
            elif kind == "tei" and self.path == "/embed":
                self.tei_embed(self.read_json())
            else:
                self.send_json(404, error_body(f"no route {self.path}", 404))
        except HttpError as err:
            self.send_json(err.status, err.body)
        except (BrokenPipeError, ConnectionResetError):
            pass  # the client went away (it stopped on a stop sequence, or was cancelled): the engine aborts

    # --- vLLM -------------------------------------------------------------------------------------------------------
    def vllm_completions(self, req):
        e = self.engine
        if not isinstance(req, dict):
            raise HttpError(400, error_body("the body must be a JSON object", 400))
        if req.get("model") != e.args.served_model_name:
            raise HttpError(404, error_body(f"The model `{req.get('model')}` does not exist.", 404))
        if "prompt_embeds" not in req:
            raise HttpError(400, error_body("this stand-in takes prompt_embeds only", 400))
        if not e.args.enable_prompt_embeds:
            raise HttpError(400, error_body("You must set `--enable-prompt-embeds` to input `prompt_embeds`.", 400))
        try:
            raw = base64.b64decode(req["prompt_embeds"], validate=True)
            guard = getattr(torch.sparse, "check_sparse_tensor_invariants", None)
            if guard is not None:
                with guard():
                    tensor = torch.load(io.BytesIO(raw), weights_only=True)
            else:
                tensor = torch.load(io.BytesIO(raw), weights_only=True)
            if isinstance(tensor, torch.Tensor) and tensor.layout != torch.strided:
                tensor = tensor.to_dense()
        except (binascii.Error, RuntimeError, ValueError, TypeError, EOFError) as err:
            raise HttpError(400, error_body(f"cannot load prompt_embeds: {err}", 400))
        embeds = e.check_embeds(tensor)
        top_k = int(req.get("top_k", -1) or -1)
        p = {
            "max_tokens": int(req.get("max_tokens", 16)), "min_tokens": int(req.get("min_tokens", 0)),
            "temperature": float(req.get("temperature", 1.0)), "top_p": float(req.get("top_p", 1.0)),
            "top_k": top_k if top_k > 0 else 0, "stop": list(req.get("stop") or []),
            "stop_token_ids": list(req.get("stop_token_ids") or []) + list(e.manifest["decoder"]["eosTokenIds"]),
            "seed": req.get("seed"),
        }
        if not req.get("stream"):
            raise HttpError(400, error_body("this stand-in streams only", 400))
        created, rid = int(time.time()), f"cmpl-{os.urandom(8).hex()}"
        self.start_stream()
        completion = 0
        for ids, text, finish in e.answer(embeds, p):
            completion += len(ids)
            choice = {"index": 0, "text": text, "logprobs": None, "finish_reason": finish[0] if finish else None,
                      "stop_reason": finish[1] if finish else None}
            if req.get("return_token_ids"):
                choice["token_ids"] = ids
            self.event({"id": rid, "object": "text_completion", "created": created, "model": req["model"], "choices": [choice]})
        if (req.get("stream_options") or {}).get("include_usage"):
            self.event({"id": rid, "object": "text_completion", "created": created, "model": req["model"], "choices": [],
                        "usage": {"prompt_tokens": int(embeds.shape[0]), "completion_tokens": completion,
                                  "total_tokens": int(embeds.shape[0]) + completion}})
        self.event(b"[DONE]")

    # --- SGLang -----------------------------------------------------------------------------------------------------
    def sglang_generate(self, req):
        e = self.engine
        if not isinstance(req, dict) or "input_embeds" not in req:
            raise HttpError(400, {"error": {"message": "this stand-in takes input_embeds only"}})
        try:
            embeds = e.check_embeds(torch.tensor(req["input_embeds"], dtype=torch.float32))
        except (TypeError, ValueError) as err:
            raise HttpError(400, {"error": {"message": f"input_embeds: {err}"}})
        sp = req.get("sampling_params") or {}
        top_k = int(sp.get("top_k", -1))
        p = {
            "max_tokens": int(sp.get("max_new_tokens", 128)), "min_tokens": int(sp.get("min_new_tokens", 0)),
            "temperature": float(sp.get("temperature", 1.0)), "top_p": float(sp.get("top_p", 1.0)),
            "top_k": top_k if top_k > 0 else 0, "stop": list(sp.get("stop") or []),
            "stop_token_ids": list(sp.get("stop_token_ids") or []) + list(e.manifest["decoder"]["eosTokenIds"]),
        }
        if not req.get("stream"):
            raise HttpError(400, {"error": {"message": "this stand-in streams only"}})
        rid = os.urandom(8).hex()
        self.start_stream()
        ids_so_far, text = [], ""
        for ids, delta, finish in e.answer(embeds, p):
            if finish and finish[0] == "stop" and isinstance(finish[1], int):
                ids = []  # the EOS / stop token ends the answer without being returned (see the module doc)
            ids_so_far += ids
            text += delta
            reason = None
            if finish:
                reason = {"type": "length", "length": p["max_tokens"]} if finish[0] == "length" else {"type": "stop", "matched": finish[1]}
            self.event({"text": text, "output_ids": list(ids_so_far), "meta_info": {
                "id": rid, "finish_reason": reason, "prompt_tokens": int(embeds.shape[0]),
                "completion_tokens": len(ids_so_far), "cached_tokens": 0}})
        self.event(b"[DONE]")

    # --- TEI --------------------------------------------------------------------------------------------------------
    def tei_embed(self, req):
        e = self.engine
        inputs = req.get("inputs") if isinstance(req, dict) else None
        texts = [inputs] if isinstance(inputs, str) else inputs
        if not isinstance(texts, list) or not texts or not all(isinstance(t, str) for t in texts):
            raise HttpError(422, {"error": "`inputs` must be a string or a non-empty list of strings", "error_type": "Validation"})
        if len(texts) > e.args.max_client_batch_size:
            raise HttpError(413, {"error": f"batch size {len(texts)} > maximum allowed batch size {e.args.max_client_batch_size}",
                                  "error_type": "Validation"})
        self.send_json(200, e.embed(texts, bool(req.get("normalize", True)), bool(req.get("truncate", False))))


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("kind", choices=["vllm", "sglang", "tei"])
    ap.add_argument("--package", default=os.path.join(ROOT, "models", "e2llm-tiny"))
    ap.add_argument("--encoder", default=SHIPPED_ENCODER, help="EncoderConfig fields as JSON (checkpoint_from_package.py --encoder)")
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--port", type=int, default=0)
    ap.add_argument("--api-key", default=None)
    ap.add_argument("--served-model-name", default="e2llm-tiny")
    ap.add_argument("--no-enable-prompt-embeds", dest="enable_prompt_embeds", action="store_false")
    ap.add_argument("--model-id", default="e2llm/e2llm-tiny-encoder")
    ap.add_argument("--max-client-batch-size", type=int, default=32)
    args = ap.parse_args(argv)
    torch.set_num_threads(1)
    Handler.engine = Engine(args)
    server = ThreadingHTTPServer((args.host, args.port), Handler)
    server.daemon_threads = True
    print(f"READY {server.server_address[1]}", flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    return 0


if __name__ == "__main__":
    sys.exit(main())
