"""Triton python-backend model `tokenizer`: captions (UTF-8 strings) -> token_ids + lengths.

Written by `vsrn-deploy triton-repo` as `tokenizer/1/model.py`, with `vsrn_tokens.py` (a copy of
`vsrn_deploy/core/tokens.py`: the package's own tokenisation) and the export's `vocab.json` beside it.
Needs numpy and nltk in the Python that runs the backend stub; no torch, no vsrn-deploy.

Each request's captions are padded to one width, the longest caption rounded up to a multiple of
`pad_to_multiple` (padding is inert: `lengths` counts the real ids), so that the text encoder's
dynamic batcher can merge requests of similar length. A caption longer than `max_caption_bytes`
(refused before it is decoded or tokenised, so a huge string costs the server nothing), not UTF-8,
empty or with no word in the vocabulary (`vsrn_tokens.unusable_query`, the rule search applies, with
its message: such a caption embeds to the same vector as any other, confident nonsense), or with more
than `max_tokens` ids (counting <start> and <end>) is an error (INVALID_ARG) for its request only.
The model is dynamically batched: one execute() gets every request queued together and answers each
on its own.
"""

from __future__ import annotations

import json
import os
import sys

import numpy as np
import triton_python_backend_utils as pb_utils

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from vsrn_tokens import UNK, encode, pad_ids, read_word2idx, unusable_query  # noqa: E402


def _param(config: dict, key: str, default: str) -> str:
    return config.get("parameters", {}).get(key, {}).get("string_value", default)


class TritonPythonModel:
    """The vocabulary, loaded once; one response per request."""

    def initialize(self, args: dict) -> None:
        config = json.loads(args["model_config"])
        folder = os.path.join(args["model_repository"], args["model_version"])
        self.word2idx = read_word2idx(os.path.join(folder, "vocab.json"))
        self.max_tokens = int(_param(config, "max_tokens", "256"))
        self.multiple = max(1, int(_param(config, "pad_to_multiple", "8")))
        self.max_bytes = int(_param(config, "max_caption_bytes", str(32 * self.max_tokens)))
        self.input = config["input"][0]["name"]
        self.ids_name, self.lengths_name = (t["name"] for t in config["output"])
        encode(self.word2idx, "warm up")  # imports nltk now, not in the first request

    def _encode(self, request) -> tuple[np.ndarray, np.ndarray]:
        captions = pb_utils.get_input_tensor_by_name(request, self.input).as_numpy().reshape(-1)
        rows = []
        for i, raw in enumerate(captions):
            size = len(raw) if isinstance(raw, bytes) else len(str(raw).encode("utf-8"))
            if size > self.max_bytes:
                raise ValueError(f"caption {i} has {size} bytes, more than max_caption_bytes "
                                 f"{self.max_bytes}")
            try:
                text = raw.decode("utf-8") if isinstance(raw, bytes) else str(raw)
            except UnicodeDecodeError:
                raise ValueError(f"caption {i} is not UTF-8 text") from None
            ids = encode(self.word2idx, text)
            problem = unusable_query(ids, text, self.word2idx[UNK])
            if problem:
                raise ValueError(f"caption {i}: {problem}")
            if len(ids) > self.max_tokens:
                raise ValueError(f"caption {i} has {len(ids)} tokens, more than max_tokens "
                                 f"{self.max_tokens} (counting <start> and <end>)")
            rows.append(ids)
        token_ids, lengths = pad_ids(rows)
        width = -(-token_ids.shape[1] // self.multiple) * self.multiple
        token_ids = np.pad(token_ids, [(0, 0), (0, width - token_ids.shape[1])])
        return np.ascontiguousarray(token_ids), np.ascontiguousarray(lengths.reshape(-1, 1))

    def execute(self, requests: list) -> list:
        responses = []
        for request in requests:
            try:
                token_ids, lengths = self._encode(request)
            except Exception as exc:  # noqa: BLE001 - a bad caption fails its own request only
                responses.append(pb_utils.InferenceResponse(
                    error=pb_utils.TritonError(str(exc)[:500], pb_utils.TritonError.INVALID_ARG)))
                continue
            responses.append(pb_utils.InferenceResponse(output_tensors=[
                pb_utils.Tensor(self.ids_name, token_ids), pb_utils.Tensor(self.lengths_name, lengths)]))
        return responses
