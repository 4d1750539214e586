"""The runner protocol's one place for splitting large feeds (`Runner.infer_batched`)."""

from __future__ import annotations

import numpy as np
import pytest

from vsrn_deploy.backend.base import Runner


class _Recording(Runner):
    """A text runner that records each call's batch size; its embedding is the row's length."""

    backend = "recording"

    def __init__(self) -> None:
        super().__init__("text")
        self.calls: list[int] = []

    def _activate(self) -> None:
        pass

    def _infer(self, feed):
        self.calls.append(len(feed["lengths"]))
        return {"text_embedding": np.repeat(feed["lengths"][:, None], 3, axis=1).astype(np.float32)}


def _feed(n: int) -> dict[str, np.ndarray]:
    return {"token_ids": np.ones((n, 4), dtype=np.int64), "lengths": (np.arange(n) % 4 + 1).astype(np.int64)}


@pytest.mark.parametrize("batch, own, calls", [
    (None, None, [10]), (4, None, [4, 4, 2]), (None, 3, [3, 3, 3, 1]), (16, 3, [10]), (10, None, [10])])
def test_infer_batched_splits_rows_and_concatenates_in_order(batch, own, calls):
    with _Recording() as runner:
        runner.batch = own
        out = runner.infer_batched(_feed(10), batch)
    assert runner.calls == calls
    np.testing.assert_array_equal(out["text_embedding"][:, 0], _feed(10)["lengths"])


def test_infer_batched_needs_an_active_runner():
    with pytest.raises(RuntimeError, match="before activate"):
        _Recording().infer_batched(_feed(3), 2)
