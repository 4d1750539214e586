"""A Python client of a served repository (`vsrn-deploy triton-repo` + `vsrn-deploy serve`).

    from vsrn_deploy.client import TritonClient

    with TritonClient("127.0.0.1:8000") as client:             # or ("127.0.0.1:8001", protocol="grpc")
        texts = client.encode_captions(["a man rides a horse"])   # (1, D) float32, l2-normalised
        images = client.encode_images(region_features)            # (n, regions, dim) -> (n, D)

Captions go to the `caption_encoder` ensemble as UTF-8 strings (the server tokenises them), region
features to `image_encoder`; inputs larger than the model's max_batch_size are sent in several
requests. Needs tritonclient (`pip install 'tritonclient[http,grpc]'`), never torch. Every failure (no
server, a refused request, bad input) is a `VsrnError` with a one-line message.
"""

from __future__ import annotations

import importlib
from collections.abc import Sequence
from typing import Any

import numpy as np

from vsrn_deploy.core.contract import CAPTION_ENCODER, CAPTIONS, IMAGE, TEXT
from vsrn_deploy.core.errors import VsrnError

__all__ = ["TritonClient"]

PROTOCOLS = ("http", "grpc")
INSTALL = "pip install 'tritonclient[http,grpc]'"


def _module(protocol: str) -> Any:
    try:
        return importlib.import_module(f"tritonclient.{protocol}")
    except ImportError as exc:
        raise VsrnError(f"TritonClient({protocol!r}) needs tritonclient, not installed here ({exc}); "
                        f"install it with: {INSTALL}") from None


class TritonClient:
    """Embeddings from a Triton server that serves a `vsrn-deploy triton-repo` repository.

    Args:
        url: "host:port" of the server's HTTP (protocol "http", default port 8000) or gRPC ("grpc",
            8001) endpoint; a leading http:// is accepted.
        protocol: "http" or "grpc".
        timeout: seconds one request may take.
        caption_model, image_model: model names (the repository's defaults).
    """

    def __init__(self, url: str = "127.0.0.1:8000", protocol: str = "http", *, timeout: float = 60.0,
                 caption_model: str = CAPTION_ENCODER, image_model: str = IMAGE.graph) -> None:
        if protocol not in PROTOCOLS:
            raise VsrnError(f"protocol must be one of {', '.join(PROTOCOLS)} (got {protocol!r})")
        self.url = url.split("://", 1)[1] if "://" in url else url
        self.protocol = protocol
        self.timeout = float(timeout)
        self.caption_model, self.image_model = caption_model, image_model
        self._mod = _module(protocol)
        self._utils = importlib.import_module("tritonclient.utils")
        try:
            if protocol == "http":
                self._client = self._mod.InferenceServerClient(self.url, connection_timeout=self.timeout,
                                                               network_timeout=self.timeout)
            else:
                self._client = self._mod.InferenceServerClient(self.url)
        except Exception as exc:  # noqa: BLE001 - a malformed URL
            raise VsrnError(f"cannot use {url!r} as a Triton {protocol} address ({_first_line(exc)}); "
                            "give host:port, e.g. 127.0.0.1:8000") from None
        self._configs: dict[str, dict[str, Any]] = {}

    # --- the two calls ---------------------------------------------------------------------------------

    def encode_captions(self, captions: Sequence[str]) -> np.ndarray:
        """(n, D) float32 embeddings of `captions` (strings), tokenised by the server."""
        if isinstance(captions, (str, bytes)) or not all(isinstance(c, str) for c in captions):
            raise VsrnError("encode_captions takes a list of strings (one caption each)")
        rows = np.array([[c.encode("utf-8")] for c in captions], dtype=object).reshape(-1, 1)
        return self._batched(self.caption_model, CAPTIONS, rows, "BYTES", TEXT.embedding)

    def encode_images(self, features: np.ndarray) -> np.ndarray:
        """(n, D) float32 embeddings of region features (n, regions, feature_dim)."""
        array = np.ascontiguousarray(features, dtype=np.float32)
        if array.ndim != 3:
            raise VsrnError(f"encode_images takes region features of shape (n, regions, feature_dim), got "
                            f"shape {tuple(array.shape)}")
        if not np.isfinite(array).all():
            raise VsrnError("the region features hold NaN or Inf; fix the features before encoding them")
        name = IMAGE.inputs[0].name
        dims = next((d.get("dims") for d in self._config(self.image_model).get("input", [])
                     if d.get("name") == name), None)
        if dims and any(int(want) not in (-1, got) for want, got in zip(dims, array.shape[1:], strict=False)):
            raise VsrnError(f"{self.image_model} on {self.url} takes region features of shape (n, "
                            f"{', '.join(str(d) for d in dims)}), got {tuple(array.shape)}")
        return self._batched(self.image_model, name, array, "FP32", IMAGE.embedding)

    # --- plumbing --------------------------------------------------------------------------------------

    def _call(self, model: str, fn, *args: Any, **kwargs: Any) -> Any:
        """Run one tritonclient call; its failures become one-line VsrnErrors."""
        try:
            return fn(*args, **kwargs)
        except self._utils.InferenceServerException as exc:
            message = _first_line(exc.message() if callable(getattr(exc, "message", None)) else exc)
            status = str(exc.status() or "") if callable(getattr(exc, "status", None)) else ""
            if "UNAVAILABLE" in status or "failed to connect" in message.lower() or "connect" in status:
                raise VsrnError(_unreachable(self.url, self.protocol, message)) from None
            raise VsrnError(f"{model} on {self.url} refused the request: {message}") from None
        except (OSError, TimeoutError) as exc:
            raise VsrnError(_unreachable(self.url, self.protocol, _first_line(exc) or type(exc).__name__)) \
                from None

    def _config(self, model: str) -> dict[str, Any]:
        if model not in self._configs:
            if self.protocol == "grpc":
                config = self._call(model, self._client.get_model_config, model, as_json=True,
                                    client_timeout=self.timeout)["config"]
            else:
                config = self._call(model, self._client.get_model_config, model)
            self._configs[model] = config
        return self._configs[model]

    def _batched(self, model: str, name: str, rows: np.ndarray, datatype: str, output: str) -> np.ndarray:
        config = self._config(model)
        step = int(config.get("max_batch_size") or 0) or max(1, len(rows))
        if len(rows) == 0:
            dims = next((o.get("dims") for o in config.get("output", []) if o.get("name") == output), [])
            return np.zeros((0, *(int(d) for d in dims)), dtype=np.float32)
        parts = [self._infer(model, name, rows[i : i + step], datatype, output)
                 for i in range(0, len(rows), step)]
        return np.concatenate(parts).astype(np.float32, copy=False)

    def _infer(self, model: str, name: str, rows: np.ndarray, datatype: str, output: str) -> np.ndarray:
        item = self._mod.InferInput(name, list(rows.shape), datatype)
        if self.protocol == "http":
            item.set_data_from_numpy(rows, binary_data=True)
            wanted = [self._mod.InferRequestedOutput(output, binary_data=True)]
            result = self._call(model, self._client.infer, model, [item], outputs=wanted)
        else:
            item.set_data_from_numpy(rows)
            wanted = [self._mod.InferRequestedOutput(output)]
            result = self._call(model, self._client.infer, model, [item], outputs=wanted,
                                client_timeout=self.timeout)
        out = result.as_numpy(output)
        if out is None or out.shape[0] != rows.shape[0]:
            raise VsrnError(f"{model} on {self.url} answered without {output} for {rows.shape[0]} rows; is "
                            "this a vsrn-deploy triton-repo repository?")
        return out

    def close(self) -> None:
        self._client.close()

    def __enter__(self) -> TritonClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _first_line(exc: object) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else ""


def _unreachable(url: str, protocol: str, why: str) -> str:
    return (f"cannot reach a Triton server at {url} over {protocol} ({why}); start one with: "
            "vsrn-deploy serve --repo DIR")
