"""Shared pieces of the fault suite: one tiny dataset, checkpoint and export per session, a folder
snapshot, and the check every refusal must pass (exit code, one `error:` line, no traceback)."""

from __future__ import annotations

from pathlib import Path

import pytest
from faultkit import TRAIN_SIZES, cli, snapshot  # noqa: F401


@pytest.fixture(scope="session")
def world(tmp_path_factory) -> dict[str, Path]:
    """A tiny synthetic dataset, a checkpoint of a model that fits it (vocabulary inline), a second
    model of other sizes, and an FP32 export of the first, made once for the whole suite."""
    import torch

    from vsrn_deploy.data.synthetic import default_vocab_path, generate_dataset
    from vsrn_deploy.data.vocab import load_vocab
    from vsrn_deploy.export import ExportConfig, export_model
    from vsrn_deploy.model import VSRN
    from vsrn_deploy.model.checkpoint import save_checkpoint
    from vsrn_deploy.model.config import VSRNConfig

    root = tmp_path_factory.mktemp("faults")
    data = generate_dataset(root / "data", n_train=24, n_dev=12, n_test=12, num_regions=6, feature_dim=24,
                            boxes=False)
    vocab_path = default_vocab_path(data)
    vocab = load_vocab(vocab_path)
    torch.manual_seed(0)
    model = VSRN(VSRNConfig.tiny(vocab_size=len(vocab), data_name="synth_precomp"), with_caption=False).eval()
    ckpt = save_checkpoint(root / "model.pt", model, vocab=vocab)
    other = VSRN(VSRNConfig.tiny(vocab_size=len(vocab), embed_size=8, data_name="synth_precomp"),
                 with_caption=False).eval()
    other_ckpt = save_checkpoint(root / "other.pt", other, vocab=vocab)
    export = root / "export"
    export_model(ckpt, export, ExportConfig(precision="fp32", max_batch=8))
    return {"root": root, "data": data, "vocab": vocab_path, "ckpt": Path(ckpt),
            "other_ckpt": Path(other_ckpt), "export": export}


@pytest.fixture(autouse=True)
def one_torch_thread():
    """Tiny models on a shared 2-core machine: one intra-op thread is many times faster than the
    default (threads fight over the cores); restored afterwards for the rest of the suite."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def pytest_collection_modifyitems(items):
    """A module's cases its `takes_ray(item)` marks run last in that module, each other order kept as
    collected: the one Ray session they share starts with the first of them and stops with the
    module, so the module's other cases run without it."""
    places: dict[object, list[int]] = {}
    for place, item in enumerate(items):
        module = getattr(item, "module", None)
        if callable(getattr(module, "takes_ray", None)):
            places.setdefault(module, []).append(place)
    for module, where in places.items():
        mine = [items[p] for p in where]
        ordered = [i for i in mine if not module.takes_ray(i)] + [i for i in mine if module.takes_ray(i)]
        for place, item in zip(where, ordered, strict=True):
            items[place] = item
