"""Fixtures of the search tests: a tiny export whose vocabulary has the synthetic captions' words,
and a small synthetic dataset (features, boxes, captions) to index. Built once per session."""

from __future__ import annotations

from pathlib import Path

import pytest

REGIONS, FEATURE_DIM = 8, 24


def make_search_export(root: Path) -> dict[str, Path]:
    """Synthetic data (40 test images, 8 regions of 24 dims, boxes) + a tiny model exported (all
    precisions: FP32, FP16 and INT8)."""
    import torch

    from vsrn_deploy.data.synthetic import generate_dataset
    from vsrn_deploy.data.vocab import load_vocab
    from vsrn_deploy.export import ExportConfig, export_model
    from vsrn_deploy.model import VSRN
    from vsrn_deploy.model.checkpoint import save_checkpoint
    from vsrn_deploy.model.config import VSRNConfig

    data = generate_dataset(root / "data", n_train=120, n_dev=4, n_test=40, num_regions=REGIONS,
                            feature_dim=FEATURE_DIM, seed=3)
    vocab_path = root / "data" / "vocab" / "synth_precomp_vocab.json"
    vocab = load_vocab(str(vocab_path))
    torch.manual_seed(0)
    model = VSRN(VSRNConfig.tiny(vocab_size=len(vocab), num_regions=REGIONS, img_dim=FEATURE_DIM),
                 with_caption=False).eval()
    ckpt = save_checkpoint(root / "model.pt", model, vocab=vocab)
    export_model(ckpt, root / "export", ExportConfig(precision="all", vocab=str(vocab_path),
                                                     max_batch=8, retrieval_images=20))
    return {"export": root / "export", "images": data / "test_ims.npy", "boxes": data / "test_boxes.npy",
            "captions": data / "test_caps.txt", "root": root}


@pytest.fixture(scope="session")
def search_export(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    return make_search_export(tmp_path_factory.mktemp("search_export"))


@pytest.fixture(scope="session")
def built_index(search_export: dict[str, Path], tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A flat index of the 40 test images with boxes and their 200 captions."""
    from vsrn_deploy.search import IndexConfig, build_index

    out = tmp_path_factory.mktemp("idx") / "index"
    build_index(IndexConfig(onnx_dir=str(search_export["export"]), images=str(search_export["images"]),
                            boxes=str(search_export["boxes"]), captions=str(search_export["captions"]),
                            out=str(out), batch=16, progress=False))
    return out
