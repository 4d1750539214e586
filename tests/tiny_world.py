"""The tiny synthetic world several test folders share (search, artifacts, distributed): synthetic
data whose vocabulary holds its captions' words, and a random tiny VSRN exported from it.

A plain module beside tests/conftest.py (importable as `tiny_world` from every test folder), not a
conftest: `from conftest import ...` picks whichever folder's conftest was imported last.
"""

from __future__ import annotations

from pathlib import Path

REGIONS, FEATURE_DIM = 8, 24


def make_synthetic_export(root: Path, *, n_train: int, n_test: int, precision: str, max_batch: int,
                          retrieval_images: int, polygraphy_lint: bool = True) -> dict[str, Path]:
    """Synthetic data (n_test test images of REGIONS x FEATURE_DIM, boxes, 5 captions each) under
    `root`/data and a tiny random model exported at `precision` under `root`/export.

    Returns:
        {export, images, boxes, captions, root}; the checkpoint is `root`/model.pt.
    """
    import torch

    from vsrn_deploy.data.synthetic import generate_dataset
    from vsrn_deploy.data.vocab import load_vocab
    from vsrn_deploy.export import ExportConfig, export_model
    from vsrn_deploy.model import VSRN
    from vsrn_deploy.model.checkpoint import save_checkpoint
    from vsrn_deploy.model.config import VSRNConfig

    data = generate_dataset(root / "data", n_train=n_train, n_dev=4, n_test=n_test, num_regions=REGIONS,
                            feature_dim=FEATURE_DIM, seed=3)
    vocab_path = root / "data" / "vocab" / "synth_precomp_vocab.json"
    vocab = load_vocab(str(vocab_path))
    torch.manual_seed(0)
    model = VSRN(VSRNConfig.tiny(vocab_size=len(vocab), num_regions=REGIONS, img_dim=FEATURE_DIM),
                 with_caption=False).eval()
    ckpt = save_checkpoint(root / "model.pt", model, vocab=vocab)
    export_model(ckpt, root / "export", ExportConfig(precision=precision, vocab=str(vocab_path),
                                                     max_batch=max_batch, retrieval_images=retrieval_images,
                                                     polygraphy_lint=polygraphy_lint))
    return {"export": root / "export", "images": data / "test_ims.npy", "boxes": data / "test_boxes.npy",
            "captions": data / "test_caps.txt", "root": root}
