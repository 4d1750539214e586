"""Helpers of the distributed tests: a tiny FP32 export and small feature shards."""

from __future__ import annotations

from pathlib import Path

import numpy as np

REGIONS, FEATURE_DIM = 8, 24
SHARD_ROWS = (7, 5, 9)


def make_tiny_export(root: Path) -> Path:
    """A tiny model (random weights) exported in FP32 under `root`/export."""
    import torch

    from vsrn_deploy.data.synthetic import generate_dataset
    from vsrn_deploy.data.vocab import load_vocab
    from vsrn_deploy.export import ExportConfig, export_model
    from vsrn_deploy.model import VSRN
    from vsrn_deploy.model.checkpoint import save_checkpoint
    from vsrn_deploy.model.config import VSRNConfig

    data = generate_dataset(root / "data", n_train=8, n_dev=4, n_test=4, num_regions=REGIONS,
                            feature_dim=FEATURE_DIM, seed=3)
    vocab_path = root / "data" / "vocab" / "synth_precomp_vocab.json"
    vocab = load_vocab(str(vocab_path))
    torch.manual_seed(0)
    model = VSRN(VSRNConfig.tiny(vocab_size=len(vocab), num_regions=REGIONS, img_dim=FEATURE_DIM),
                 with_caption=False).eval()
    ckpt = save_checkpoint(root / "model.pt", model, vocab=vocab)
    export_model(ckpt, root / "export", ExportConfig(precision="fp32", vocab=str(vocab_path), max_batch=4,
                                                     retrieval_images=8, polygraphy_lint=False))
    assert data.exists()
    return root / "export"


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
