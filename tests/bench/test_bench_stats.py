"""Latency statistics, synthetic inputs and the timing loop of vsrn_deploy.bench.core."""

from __future__ import annotations

import numpy as np
import pytest

from vsrn_deploy.backend.base import Runner
from vsrn_deploy.bench.core import BenchConfig, image_feed, latency_stats, text_feed, time_runner
from vsrn_deploy.core.errors import VsrnError
from vsrn_deploy.model.config import VSRNConfig


def test_percentiles_match_hand_values_and_numpy():
    samples = [float(v) for v in range(1, 101)]  # 1..100 ms, shuffled below
    rng = np.random.default_rng(0)
    shuffled = list(rng.permutation(samples))
    stats = latency_stats(shuffled)
    # linear interpolation: position q/100 * (n-1) into the sorted list
    assert stats["p50_ms"] == pytest.approx(50.5)
    assert stats["p90_ms"] == pytest.approx(90.1)
    assert stats["p99_ms"] == pytest.approx(99.01)
    assert stats["mean_ms"] == pytest.approx(50.5)
    assert (stats["min_ms"], stats["max_ms"], stats["iters"]) == (1.0, 100.0, 100)
    odd = [3.2, 0.7, 9.9, 1.1, 4.0, 2.5, 8.8]
    for q in (50, 90, 99):
        assert latency_stats(odd)[f"p{q}_ms"] == pytest.approx(np.percentile(odd, q))


def test_percentiles_of_nothing_is_an_error():
    with pytest.raises(ValueError):
        latency_stats([])


def test_text_feed_has_mixed_realistic_lengths_and_contract_layout():
    cfg = VSRNConfig.tiny()
    feed = text_feed(cfg, 64, seed=3, min_tokens=8, max_tokens=20)
    ids, lengths = feed["token_ids"], feed["lengths"]
    assert ids.dtype == np.int64 and lengths.dtype == np.int64
    assert ids.shape == (64, int(lengths.max()))
    assert lengths.min() >= 8 and lengths.max() <= 20 and len(set(lengths.tolist())) > 3
    rows = np.arange(64)
    assert (ids[:, 0] == 1).all() and (ids[rows, lengths - 1] == 2).all()
    pad = np.arange(ids.shape[1])[None, :] >= lengths[:, None]
    assert (ids[pad] == 0).all()
    inner = ids[(~pad) & (np.arange(ids.shape[1])[None, :] > 0)]
    inner = inner[inner != 2]
    assert inner.min() >= 4 and inner.max() < cfg.vocab_size


def test_image_feed_shape_and_dtype():
    cfg = VSRNConfig.tiny()
    x = image_feed(cfg, 3)["region_features"]
    assert x.shape == (3, cfg.num_regions, cfg.img_dim) and x.dtype == np.float32 and x.min() >= 0


class _CountingRunner(Runner):
    backend = "fake"

    def __init__(self) -> None:
        super().__init__("image")
        self.calls = 0
        self.syncs = 0

    def _activate(self) -> None:
        pass

    def _infer(self, feed):
        self.calls += 1
        return {"image_embedding": feed["region_features"][:, 0]}

    def synchronize(self) -> None:
        self.syncs += 1


def test_time_runner_warms_up_then_times_each_synchronised_call():
    feed = image_feed(VSRNConfig.tiny(), 2)
    with _CountingRunner() as runner:
        samples = time_runner(runner, feed, warmup=3, iters=7, seconds=None)
        assert len(samples) == 7 and all(s >= 0 for s in samples)
        assert runner.calls == 10
        assert runner.syncs >= 7
        budget = time_runner(runner, feed, warmup=0, iters=None, seconds=0.0, min_iters=4)
        assert len(budget) == 4


@pytest.mark.parametrize("kwargs", [
    {"backends": ("torch", "nope")}, {"batches": (0,)}, {"iters": None, "seconds": None},
    {"iters": None, "seconds": -1.0}, {"encoders": ("audio",)}, {"tiny": True, "checkpoint": "x.pt"},
    {"min_tokens": 9, "max_tokens": 8}, {"dtype": "int8"}])
def test_bad_settings_are_user_errors(kwargs):
    with pytest.raises(VsrnError):
        BenchConfig(**kwargs)
