"""Helpers of the distributed tests: a tiny FP32 export and small feature shards."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from tiny_world import FEATURE_DIM, REGIONS, make_synthetic_export

SHARD_ROWS = (7, 5, 9)


def make_tiny_export(root: Path) -> Path:
    """A tiny model (random weights) exported in FP32 under `root`/export."""
    return make_synthetic_export(root, n_train=8, n_test=4, precision="fp32", max_batch=4, retrieval_images=8,
                                 polygraphy_lint=False)["export"]


def write_shards(folder: Path, rows=SHARD_ROWS, seed: int = 0) -> list[Path]:
    """Sparse non-negative features like the synthetic data's, one .npy per shard."""
    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for i, n in enumerate(rows):
        feats = rng.random((n, REGIONS, FEATURE_DIM), dtype=np.float32) * 3
        feats[rng.random(feats.shape) < 0.7] = 0
        path = folder / f"part{i}.npy"
        np.save(path, feats)
        paths.append(path)
    return paths


def one_error_line(result, *needles):
    """A CLI result refused with exit 2 and one `error:` line holding every needle, no traceback."""
    assert result.exit_code == 2, result.output
    errors = [line for line in result.output.splitlines() if line.startswith("error: ")]
    assert len(errors) == 1 and "Traceback" not in result.output, result.output
    for needle in needles:
        assert needle in errors[0], errors[0]
