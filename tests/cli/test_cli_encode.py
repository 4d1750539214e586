"""`vsrn-deploy encode` through typer's CliRunner: outputs, summary, exit codes."""

from __future__ import annotations

import pickle
import re
import sys
from pathlib import Path

import numpy as np
from typer.testing import CliRunner

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "model"))
from authors_reference import as_numpy, image_forward, randomize_, text_forward  # noqa: E402

from vsrn_deploy.cli.app import app  # noqa: E402
from vsrn_deploy.data.vocab import Vocabulary  # noqa: E402
from vsrn_deploy.model import VSRN  # noqa: E402
from vsrn_deploy.model.checkpoint import save_authors_checkpoint, save_checkpoint  # noqa: E402
from vsrn_deploy.model.config import VSRNConfig  # noqa: E402

WORDS = ["<pad>", "<start>", "<end>", "<unk>", "a", "dog", "cat", "runs", "on", "grass", "sits"]


def _setup(tmp_path: Path):
    cfg = VSRNConfig.tiny(vocab_size=len(WORDS), fc_norm=False, final_bn=True, data_name="f30k_precomp")
    model = randomize_(VSRN(cfg, with_caption=False), seed=21)
    ckpt = save_authors_checkpoint(tmp_path / "model_best.pth.tar", model, legacy=True, cuda_tagged=True)
    vocab = Vocabulary(WORDS)
    vocab_file = vocab.save_json(tmp_path / "vocab.json")
    feats = np.random.default_rng(0).standard_normal((5, cfg.num_regions, cfg.img_dim)).astype(np.float32)
    np.save(tmp_path / "ims.npy", feats)
    caps = ["a dog runs on grass", "A cat sits", "a zebra"]
    (tmp_path / "caps.txt").write_text("\n".join(caps) + "\n", encoding="utf-8")
    return cfg, model, ckpt, vocab, vocab_file, feats, caps


def test_encode_writes_embeddings_matching_the_reference(tmp_path):
    cfg, model, ckpt, vocab, vocab_file, feats, caps = _setup(tmp_path)
    out = tmp_path / "emb"
    result = CliRunner().invoke(app, ["encode", str(ckpt), "--images", str(tmp_path / "ims.npy"),
                                      "--captions", str(tmp_path / "caps.txt"), "--vocab", str(vocab_file),
                                      "--out", str(out), "--batch-size", "2"])
    assert result.exit_code == 0, result.output
    images = np.load(out / "image_embeddings.npy")
    texts = np.load(out / "text_embeddings.npy")
    assert images.shape == (5, cfg.embed_size) and texts.shape == (3, cfg.embed_size)
    img_sd, txt_sd = model.encoder_state_dicts()
    np.testing.assert_allclose(images, image_forward(as_numpy(img_sd), feats, "f30k_precomp")[0], atol=1e-5)
    ref_txt = text_forward(as_numpy(txt_sd), [vocab.encode(c) for c in caps])
    np.testing.assert_allclose(texts, ref_txt, atol=1e-5)
    best = (texts @ images.T).argmax(axis=1)
    assert "authors format, f30k variant" in result.output
    for row in range(3):
        assert f"caption {row}: image {best[row]} (cosine" in result.output


def test_encode_uses_the_checkpoints_own_vocabulary(tmp_path):
    cfg, model, _, vocab, _, _, _ = _setup(tmp_path)
    own = save_checkpoint(tmp_path / "own.pt", VSRN(cfg), vocab=vocab)
    result = CliRunner().invoke(app, ["encode", str(own), "--captions", str(tmp_path / "caps.txt"),
                                      "--out", str(tmp_path / "o")])
    assert result.exit_code == 0, result.output
    assert np.load(tmp_path / "o" / "text_embeddings.npy").shape == (3, cfg.embed_size)
    assert not (tmp_path / "o" / "image_embeddings.npy").exists()


def test_encode_bad_inputs_exit_2_without_traceback(tmp_path):
    _, _, ckpt, _, vocab_file, _, _ = _setup(tmp_path)
    (tmp_path / "bad.pt").write_bytes(b"not a checkpoint at all" * 5)
    np.save(tmp_path / "flat.npy", np.zeros((4, 3), np.float32))
    np.save(tmp_path / "wide.npy", np.zeros((2, 6, 99), np.float32))
    pwned = tmp_path / "pwned"
    (tmp_path / "hostile.pt").write_bytes(pickle.dumps({"model": _CreatesFile(pwned)}, protocol=2))
    runner = CliRunner()
    cases = [
        (["encode", str(tmp_path / "hostile.pt"), "--images", str(tmp_path / "ims.npy")], "refusing to load"),
        (["encode", str(tmp_path / "bad.pt"), "--images", str(tmp_path / "ims.npy")], "not a PyTorch"),
        (["encode", str(ckpt)], "nothing to encode"),
        (["encode", str(ckpt), "--images", str(tmp_path / "flat.npy")], "must be \\[images, regions"),
        (["encode", str(ckpt), "--images", str(tmp_path / "wide.npy")], "expects 24"),
        (["encode", str(ckpt), "--captions", str(tmp_path / "caps.txt"), "--vocab",
          str(tmp_path / "missing.json")], "not found"),
        (["encode", str(ckpt), "--captions", str(tmp_path / "caps.txt")], "pass --vocab"),
    ]
    for args, message in cases:
        result = runner.invoke(app, [*args, "--out", str(tmp_path / "x")])
        assert result.exit_code == 2, (args, result.output)
        assert "Traceback" not in result.output
        assert isinstance(result.exception, SystemExit), result.exception  # typer.Exit, not a crash
        assert re.search(message, result.output), (message, result.output)
    assert not list(tmp_path.glob("x/*.npy"))  # nothing half-written
    assert not pwned.exists()


class _CreatesFile:
    def __init__(self, target: Path) -> None:
        self.target = target

    def __reduce__(self):
        return (open, (str(self.target), "w"))
