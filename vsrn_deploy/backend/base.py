"""The runner protocol shared by validation and benchmarking (after Polygraphy's runners).

A runner serves one encoder of one backend. It is built cheaply, does its heavy loading in
`activate()`, and is used as a context manager:

    with make_runner("ort", "image", onnx_dir="export") as runner:
        outputs = runner.infer({"region_features": features})

Inputs and outputs are numpy arrays named, typed and shaped as `vsrn_deploy.core.contract` declares
them (`python -m vsrn_deploy.core.contract` prints the declaration).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from vsrn_deploy.core import backends, contract

BACKENDS = backends.NAMES  # the backend table's names (vsrn_deploy.core.backends)
ENCODERS = tuple(contract.ENCODERS)

# views of the contract, keyed by encoder ("image", "text")
INPUT_NAMES = {key: spec.input_names for key, spec in contract.ENCODERS.items()}
OUTPUT_NAMES = {key: spec.output_names for key, spec in contract.ENCODERS.items()}


class Runner:
    """Base class: subclasses implement `_activate`, `_infer` and optionally `_deactivate`, `synchronize`.

    `backend` is the backend's name in the table; `make_runner` sets it from the row it built the
    runner from (a runner class may serve several rows: ort, ort-fp16 and ort-int8 share one).
    """

    backend: str = ""
    batch: int | None = None  # rows per call of `infer_batched` (None: all in one)

    def __init__(self, encoder: str) -> None:
        if encoder not in ENCODERS:
            raise ValueError(f"encoder must be one of {ENCODERS}, got {encoder!r}")
        self.encoder = encoder
        self.is_active = False

    @property
    def name(self) -> str:
        return f"{self.backend}:{self.encoder}"

    def activate(self) -> None:
        if not self.is_active:
            self._activate()
            self.is_active = True

    def deactivate(self) -> None:
        if self.is_active:
            self._deactivate()
            self.is_active = False

    def __enter__(self) -> Runner:
        self.activate()
        return self

    def __exit__(self, *exc: Any) -> None:
        self.deactivate()

    def infer(self, feed: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        """Run one batch; returns float32 numpy outputs keyed by the contract's output names."""
        if not self.is_active:
            raise RuntimeError(f"{self.name} runner used before activate()")
        return self._infer(feed)

    def infer_batched(self, feed: dict[str, np.ndarray], batch: int | None = None) -> dict[str, np.ndarray]:
        """`infer` over `feed` in batches of `batch` rows (None: the runner's `batch`; when that is
        None too, one call), outputs concatenated.

        The one place large inputs are split: a row's result does not depend on the rows beside it,
        and batches of many small recurrent ops run many times slower than a few medium ones.
        """
        batch = batch or self.batch
        n = len(next(iter(feed.values())))
        if batch is None or n <= batch:
            return self.infer(feed)
        parts = [self.infer({k: v[i : i + batch] for k, v in feed.items()}) for i in range(0, n, batch)]
        return {name: np.concatenate([p[name] for p in parts]) for name in parts[0]}

    def synchronize(self) -> None:
        """Wait for queued device work (GPU backends); a no-op on the CPU."""

    def _activate(self) -> None:
        raise NotImplementedError

    def _deactivate(self) -> None:
        pass

    def _infer(self, feed: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        raise NotImplementedError
