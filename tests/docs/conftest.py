"""The folder the documentation's commands run in: what `vsrn-deploy demo` leaves in `runs/demo/`,
at tiny sizes, so every documented path exists and every block runs in seconds.

    runs/demo/data/synth_precomp/   {train,dev,test}_{ims,caps,boxes}, 36 regions of 24 dims
    runs/demo/data/vocab/           synth_precomp_vocab.json
    runs/demo/vocab.json            the vocabulary the export uses
    runs/demo/train/model_best.pt   vsrn-deploy's own checkpoint format
    runs/demo/model_best.pth.tar    the same model in the authors' format (legacy, CUDA-tagged)
    runs/demo/export/               export --precision all (FP32, FP16, INT8 graphs, manifest, vocab)
    runs/demo/index/                index of the test split (boxes and captions included)

The model is untrained (the docs show commands, not accuracy); the demo's real sizes are in
vsrn_deploy/jobs/demo.py.
"""

from __future__ import annotations

from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
REGIONS, FEATURE_DIM = 36, 24  # 36 regions like the demo (an authors' checkpoint does not record k)


def build_workspace(root: Path) -> Path:
    import torch
    from typer.testing import CliRunner

    from vsrn_deploy.cli.app import app
    from vsrn_deploy.data.synthetic import generate_dataset
    from vsrn_deploy.data.vocab import load_vocab
    from vsrn_deploy.export import ExportConfig, export_model
    from vsrn_deploy.model import VSRN
    from vsrn_deploy.model.checkpoint import save_authors_checkpoint, save_checkpoint
    from vsrn_deploy.model.config import VSRNConfig

    run = root / "runs" / "demo"
    data = generate_dataset(run / "data", n_train=40, n_dev=10, n_test=20, num_regions=REGIONS,
                            feature_dim=FEATURE_DIM, seed=0)
    vocab = load_vocab(str(run / "data" / "vocab" / "synth_precomp_vocab.json"))
    vocab.save_json(run / "vocab.json")
    torch.manual_seed(0)
    model = VSRN(VSRNConfig.tiny(vocab_size=len(vocab), num_regions=REGIONS, img_dim=FEATURE_DIM)).eval()
    save_checkpoint(run / "train" / "model_best.pt", model, vocab=vocab)
    authors = save_authors_checkpoint(run / "model_best.pth.tar", model, legacy=True, cuda_tagged=True,
                                      opt={"data_name": "synth_precomp",
                                           "vocab_path": str(run / "data" / "vocab")})
    export_model(authors, run / "export", ExportConfig(precision="all", vocab=str(run / "vocab.json"),
                                                       max_batch=8, retrieval_images=20))
    result = CliRunner().invoke(app, ["index", "--onnx-dir", str(run / "export"),
                                      "--images", str(data / "test_ims.npy"),
                                      "--boxes", str(data / "test_boxes.npy"),
                                      "--captions", str(data / "test_caps.txt"),
                                      "--out", str(run / "index"), "--batch", "16", "--no-progress"])
    assert result.exit_code == 0, result.output
    for name in (".venv", "examples"):  # the checkout's, as a user after the demo has them
        if (REPO / name).exists():
            (root / name).symlink_to(REPO / name)
    return root


@pytest.fixture(scope="module")
def docs_workspace(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_workspace(tmp_path_factory.mktemp("docs_workspace"))
