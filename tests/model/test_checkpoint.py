"""Checkpoints: the authors' three serialisations, vsrn-deploy's own format, hostile and broken files."""

from __future__ import annotations

import argparse
import pickle
import sys
import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from authors_reference import as_numpy, image_forward, randomize_, text_forward  # noqa: E402
from hostile_payloads import CreatesFile, RunsShell

from vsrn_deploy import load_model  # noqa: E402
from vsrn_deploy.core.errors import VsrnError  # noqa: E402
from vsrn_deploy.data.vocab import Vocabulary  # noqa: E402
from vsrn_deploy.model import VSRN  # noqa: E402
from vsrn_deploy.model.checkpoint import (  # noqa: E402
    find_authors_vocab,
    load_checkpoint,
    save_authors_checkpoint,
    save_checkpoint,
)
from vsrn_deploy.model.config import VSRNConfig  # noqa: E402

SERIALISATIONS = {
    "zip": {},
    "legacy-py2": {"legacy": True},
    "zip-cuda": {"cuda_tagged": True},
    "legacy-py2-cuda": {"legacy": True, "cuda_tagged": True},
}


def _config(variant: str, **overrides) -> VSRNConfig:
    if variant == "f30k":
        return VSRNConfig.tiny(fc_norm=False, final_bn=True, data_name="f30k_precomp", **overrides)
    return VSRNConfig.tiny(**overrides)


def _inputs(cfg: VSRNConfig, seed: int = 0):
    rng = np.random.default_rng(seed)
    feats = rng.standard_normal((3, cfg.num_regions, cfg.img_dim)).astype(np.float32)
    lengths = [4, 9, 2, 6]  # unsorted on purpose
    captions = [[1, *rng.integers(3, cfg.vocab_size, size=n - 2).tolist(), 2] for n in lengths]
    ids = torch.zeros(len(captions), max(lengths) + 1, dtype=torch.int64)
    for row, c in enumerate(captions):
        ids[row, : len(c)] = torch.tensor(c)
    return feats, captions, ids, torch.tensor(lengths)


def _assert_matches_reference(model: VSRN, img_sd, txt_sd, data_name: str, cfg: VSRNConfig,
                              atol: float = 1e-5) -> None:
    feats, captions, ids, lengths = _inputs(cfg)
    with torch.no_grad():
        emb, regions = model.encode_images_with_regions(torch.from_numpy(feats))
        txt = model.encode_texts(ids, lengths)
    ref_emb, ref_regions = image_forward(as_numpy(img_sd), feats, data_name)
    np.testing.assert_allclose(emb.numpy(), ref_emb, atol=atol, rtol=0)
    np.testing.assert_allclose(regions.numpy(), ref_regions, atol=atol, rtol=0)
    np.testing.assert_allclose(txt.numpy(), text_forward(as_numpy(txt_sd), captions), atol=atol, rtol=0)


@pytest.mark.parametrize("variant", ["coco", "f30k"])
@pytest.mark.parametrize("serialisation", list(SERIALISATIONS))
def test_authors_checkpoint_loads_and_matches_reference(tmp_path, variant, serialisation):
    cfg = _config(variant)
    source = randomize_(VSRN(cfg, with_caption=False), seed=11)
    path = save_authors_checkpoint(tmp_path / "model_best.pth.tar", source, **SERIALISATIONS[serialisation])
    if serialisation.startswith("legacy"):
        assert not zipfile.is_zipfile(path)
    loaded = load_checkpoint(path)
    assert loaded.kind == "authors"
    assert not loaded.model.training and loaded.model.caption is None
    got = loaded.config
    assert (got.variant, got.vocab_size, got.embed_size, got.img_dim, got.word_dim, got.gcn_layers) == (
        variant, cfg.vocab_size, cfg.embed_size, cfg.img_dim, cfg.word_dim, cfg.gcn_layers)
    assert loaded.train_state["authors_opt"]["data_name"] == cfg.data_name
    img_sd, txt_sd = source.encoder_state_dicts()  # the reference reads the raw weights
    _assert_matches_reference(loaded.model, img_sd, txt_sd, cfg.data_name, cfg)


def test_cuda_tagged_file_really_is_cuda_tagged(tmp_path):
    if torch.cuda.is_available():
        pytest.skip("this machine has a GPU, so a CUDA-tagged file loads without map_location")
    model = VSRN(VSRNConfig.tiny(), with_caption=False)
    for legacy in (False, True):
        path = save_authors_checkpoint(tmp_path / f"m{legacy}.pth.tar", model, cuda_tagged=True,
                                       legacy=legacy)
        with pytest.raises(RuntimeError, match="CUDA"), torch.serialization.safe_globals(
                [argparse.Namespace]):
            torch.load(path, weights_only=True)
        assert load_checkpoint(path, map_location="cpu").model.img_enc.fc.weight.device.type == "cpu"


def test_legacy_file_stores_python2_byte_strings(tmp_path):
    path = save_authors_checkpoint(tmp_path / "m.pth.tar", VSRN(VSRNConfig.tiny(), with_caption=False),
                                   legacy=True)
    data = path.read_bytes()
    assert pickle.SHORT_BINSTRING + bytes([len(b"coco_precomp")]) + b"coco_precomp" in data
    assert b"coco_precomp" in data and pickle.BINUNICODE + b"\x0c\x00\x00\x00coco_precomp" not in data


def test_opt_with_bytes_values_and_no_num_batches_tracked(tmp_path):
    cfg = _config("f30k")
    source = randomize_(VSRN(cfg, with_caption=False), seed=12)
    img_sd, txt_sd = source.encoder_state_dicts()
    img_sd = {k: v for k, v in img_sd.items() if not k.endswith("num_batches_tracked")}  # PyTorch 0.4.0
    obj = {"epoch": 3, "model": [img_sd, txt_sd], "best_rsum": 400.5, "Eiters": 7,
           "opt": argparse.Namespace(data_name=b"f30k_precomp", vocab_path=b"./vocab/",
                                     embed_size=cfg.embed_size, no_imgnorm=False, use_abs=False)}
    torch.save(obj, tmp_path / "m.pth.tar")
    loaded = load_checkpoint(tmp_path / "m.pth.tar")
    assert loaded.config.variant == "f30k"
    assert loaded.train_state["authors_opt"]["data_name"] == "f30k_precomp"
    assert loaded.train_state["epoch"] == 3 and loaded.train_state["step"] == 7
    _assert_matches_reference(loaded.model, img_sd, txt_sd, "f30k_precomp", cfg)


@pytest.mark.parametrize("legacy", [False, True])
def test_numpy_scalars_in_the_file_are_plain_numbers_after_loading(tmp_path, legacy):
    path = save_authors_checkpoint(tmp_path / "m.pth.tar", VSRN(VSRNConfig.tiny(), with_caption=False),
                                   legacy=legacy, best_rsum=np.float64(512.25),
                                   opt={"margin": np.float32(0.25)})
    state = load_checkpoint(path).train_state
    assert state["best_rsum"] == 512.25 and type(state["best_rsum"]) is float
    assert state["authors_opt"]["margin"] == 0.25 and type(state["authors_opt"]["margin"]) is float


def test_realistic_sizes_match_reference(tmp_path):
    cfg = VSRNConfig(vocab_size=300, img_dim=512, embed_size=256, num_regions=36, gcn_layers=4,
                     fc_norm=False, final_bn=True, data_name="f30k_precomp")
    source = randomize_(VSRN(cfg, with_caption=False), seed=13)
    path = save_authors_checkpoint(tmp_path / "model_best.pth.tar", source, legacy=True, cuda_tagged=True)
    loaded = load_checkpoint(path)
    img_sd, txt_sd = source.encoder_state_dicts()
    _assert_matches_reference(loaded.model, img_sd, txt_sd, "f30k_precomp", cfg)


@pytest.mark.parametrize(("opt", "message"), [
    ({"data_name": "f30k_precomp"}, "opt.data_name is 'f30k_precomp'.*no bn"),
    ({"embed_size": 99}, "opt.embed_size is 99 but fc.weight has 16 rows"),
    ({"word_dim": 7, "vocab_size": 51}, "opt.word_dim is 7 .*opt.vocab_size is 51 but embed.weight has 50"),
    ({"num_layers": 2}, "opt.num_layers is 2 but the text GRU has 1 layers"),
])
def test_options_and_weights_that_disagree_are_named(tmp_path, opt, message):
    path = save_authors_checkpoint(tmp_path / "m.pth.tar", VSRN(VSRNConfig.tiny(), with_caption=False),
                                   opt=opt)
    with pytest.raises(VsrnError, match=message):
        load_checkpoint(path)


def test_coco_name_with_final_batchnorm_disagrees(tmp_path):
    model = VSRN(_config("f30k"), with_caption=False)
    path = save_authors_checkpoint(tmp_path / "m.pth.tar", model, opt={"data_name": "f30k_precomp_v2"})
    with pytest.raises(VsrnError, match="'f30k_precomp_v2' .*COCO variant.*bn"):
        load_checkpoint(path)


def test_weights_missing_a_layer_are_rejected_with_key_names(tmp_path):
    model = VSRN(VSRNConfig.tiny(), with_caption=False)
    img_sd, txt_sd = model.encoder_state_dicts()
    del img_sd["img_rnn.bias_hh_l0"]
    torch.save({"model": [img_sd, txt_sd], "opt": argparse.Namespace(data_name="coco_precomp")},
               tmp_path / "m.pth.tar")
    with pytest.raises(VsrnError, match=r"image-encoder weights do not fit.*missing \[img_rnn.bias_hh_l0\]"):
        load_checkpoint(tmp_path / "m.pth.tar")


# --- vsrn-deploy's own format ---------------------------------------------------------------
def test_own_format_round_trips_exactly(tmp_path):
    cfg = VSRNConfig.tiny(gcn_layers=3, use_abs=True)
    model = randomize_(VSRN(cfg), seed=14)
    optimizer = {"state": {0: {"step": torch.tensor(3.0), "exp_avg": torch.randn(4, 2)}},
                 "param_groups": [{"lr": 2e-4, "betas": (0.9, 0.999), "params": [0, 1]}]}
    train_state = {"epoch": 4, "step": 123, "best_rsum": 321.5, "optimizer": optimizer,
                   "rng": {"torch": torch.get_rng_state()}, "history": [1.0, 2.5], "note": None}
    vocab = Vocabulary([*Vocabulary().words, *(f"w{i}" for i in range(cfg.vocab_size - 4))])
    path = save_checkpoint(tmp_path / "ckpt.pt", model, vocab=vocab, train_state=train_state)
    raw = torch.load(path, weights_only=True)  # the format itself needs no allow-list
    assert raw["format"] == "vsrn-deploy-checkpoint"
    loaded = load_checkpoint(path)
    assert loaded.kind == "vsrn-deploy" and loaded.config == cfg and loaded.vocab == vocab
    assert not loaded.model.training and loaded.model.caption is not None
    original = model.state_dict()
    restored = loaded.model.state_dict()
    assert original.keys() == restored.keys()
    for key in original:
        assert torch.equal(original[key], restored[key]), key
    _assert_same(loaded.train_state, train_state)
    assert len(loaded.sha256) == 64
    assert isinstance(load_model(path), VSRN)
    assert not list(tmp_path.glob(".*tmp*"))  # no temp files left behind


def _assert_same(got, expected, where="train_state"):
    assert type(got) is type(expected), where
    if isinstance(expected, dict):
        assert got.keys() == expected.keys(), where
        for key in expected:
            _assert_same(got[key], expected[key], f"{where}[{key!r}]")
    elif isinstance(expected, list | tuple):
        assert len(got) == len(expected), where
        for i, (a, b) in enumerate(zip(got, expected, strict=True)):
            _assert_same(a, b, f"{where}[{i}]")
    elif isinstance(expected, torch.Tensor):
        assert got.dtype == expected.dtype and torch.equal(got, expected), where
    else:
        assert got == expected, where


def test_own_format_with_vocab_reference(tmp_path):
    cfg = VSRNConfig.tiny()
    vocab = Vocabulary([*Vocabulary().words, *(f"w{i}" for i in range(cfg.vocab_size - 4))])
    vocab_file = vocab.save_json(tmp_path / "vocab.json")
    path = save_checkpoint(tmp_path / "ckpt.pt", VSRN(cfg), vocab_path=vocab_file)
    loaded = load_checkpoint(path)
    assert loaded.vocab == vocab and Path(loaded.vocab_path) == vocab_file.resolve()
    assert torch.load(path, weights_only=True)["vocab_path"] == "vocab.json"  # relative: the folder moves


def test_train_state_must_be_plain(tmp_path):
    with pytest.raises(TypeError, match=r"train_state\['rng'\]\['numpy'\] is a numpy.ndarray"):
        save_checkpoint(tmp_path / "c.pt", VSRN(VSRNConfig.tiny()),
                        train_state={"rng": {"numpy": np.zeros(3)}})
    assert not (tmp_path / "c.pt").exists()


def test_authors_vocab_found_beside_the_checkpoint(tmp_path):
    from vsrn_deploy.data.vocab import save_authors_pickle

    cfg = VSRNConfig.tiny(data_name="mini_precomp")
    (tmp_path / "vocab").mkdir()
    vocab = Vocabulary([*Vocabulary().words, *(f"w{i}" for i in range(cfg.vocab_size - 4))])
    save_authors_pickle(vocab, tmp_path / "vocab" / "mini_precomp_vocab.pkl")
    path = save_authors_checkpoint(tmp_path / "model_best.pth.tar", VSRN(cfg, with_caption=False))
    expected = tmp_path / "vocab" / "mini_precomp_vocab.pkl"
    assert find_authors_vocab("mini_precomp", checkpoint_path=path) == expected
    loaded = load_checkpoint(path)
    assert loaded.vocab == vocab


def test_shared_vocab_dirs_are_at_the_source_checkout():
    """shared/vocab is looked for in and beside the folder that holds the package, however deep
    the lookup module sits inside it."""
    import vsrn_deploy
    from vsrn_deploy.model.checkpoint import vocab_lookup

    root = Path(vsrn_deploy.__file__).resolve().parents[1]
    assert vocab_lookup._SHARED_VOCAB_DIRS == (root / "shared" / "vocab", root.parent / "shared" / "vocab")


# --- hostile, broken and unrelated files ----------------------------------------------------


@pytest.mark.parametrize("payload_cls", [CreatesFile, RunsShell])
@pytest.mark.parametrize("layout", ["zip", "legacy", "raw-pickle"])
def test_hostile_checkpoint_runs_nothing(tmp_path, payload_cls, layout):
    target = tmp_path / "pwned"
    obj = {"epoch": 1, "model": [{}, {}], "opt": payload_cls(target)}
    path = tmp_path / "model_best.pth.tar"
    if layout == "raw-pickle":
        path.write_bytes(pickle.dumps(obj, protocol=2))
    else:
        torch.save(obj, path, _use_new_zipfile_serialization=layout == "zip")
    assert not target.exists()
    with pytest.raises(VsrnError, match="refusing to load"):
        load_checkpoint(path)
    assert not target.exists()


def test_broken_files_give_one_line(tmp_path):
    model = VSRN(VSRNConfig.tiny(), with_caption=False)
    good = save_authors_checkpoint(tmp_path / "good.pth.tar", model)
    legacy = save_authors_checkpoint(tmp_path / "legacy.pth.tar", model, legacy=True)
    cases = {
        "empty.pt": (b"", "empty"),
        "truncated.pt": (good.read_bytes()[: good.stat().st_size // 2], "truncated|corrupt|not a PyTorch"),
        "truncated_legacy.pt": (legacy.read_bytes()[:-100], "truncated|corrupt|not a PyTorch"),
        "text.pt": (b"hello, I am not a checkpoint\n" * 10, "not a PyTorch|truncated|corrupt"),
        "numpy.pt": (b"\x93NUMPY\x01\x00" + b"\x00" * 64, "not a PyTorch|truncated|corrupt"),
    }
    for name, (data, message) in cases.items():
        (tmp_path / name).write_bytes(data)
        with pytest.raises(VsrnError, match=message) as info:
            load_checkpoint(tmp_path / name)
        assert "\n" not in str(info.value), name
    with pytest.raises(VsrnError, match="not found"):
        load_checkpoint(tmp_path / "missing.pt")


def test_unrelated_torch_files_are_named(tmp_path):
    other = torch.nn.Sequential(torch.nn.Linear(3, 4), torch.nn.ReLU(), torch.nn.Linear(4, 2))
    torch.save(other.state_dict(), tmp_path / "other.pt")
    with pytest.raises(VsrnError, match=r"not a VSRN checkpoint.*top-level keys: \['0.weight'"):
        load_checkpoint(tmp_path / "other.pt")
    torch.save({"model": [other.state_dict(), other.state_dict()]}, tmp_path / "other_model.pt")
    with pytest.raises(VsrnError, match="no 2-D 'fc.weight': not a VSRN checkpoint"):
        load_checkpoint(tmp_path / "other_model.pt")
    torch.save(torch.zeros(3), tmp_path / "tensor.pt")
    with pytest.raises(VsrnError, match="holding a Tensor, not a VSRN checkpoint"):
        load_checkpoint(tmp_path / "tensor.pt")


def test_authors_checkpoint_finds_the_shared_vocabulary(tmp_path, shared_vocab_dir):
    """A COCO-sized model picks up shared/vocab/coco_precomp_vocab.pkl of a source checkout."""
    cfg = VSRNConfig.tiny(vocab_size=10006)
    path = save_authors_checkpoint(tmp_path / "model_best.pth.tar", VSRN(cfg, with_caption=False))
    loaded = load_checkpoint(path)
    assert loaded.vocab is not None and len(loaded.vocab) == 10006
    assert loaded.vocab_path.endswith("coco_precomp_vocab.pkl")
    assert loaded.vocab.encode("a dog")[0] == 1


def test_resolve_vocab_one_order_for_every_command(tmp_path):
    from vsrn_deploy.data.vocab import build_vocab
    from vsrn_deploy.model.checkpoint import LoadedCheckpoint, resolve_vocab
    from vsrn_deploy.model.config import VSRNConfig

    vocab = build_vocab(["a dog runs on grass"], threshold=1)
    other = build_vocab(["a cat sits"], threshold=1)
    cfg = VSRNConfig.tiny(vocab_size=len(vocab), data_name="nowhere_precomp")
    bare = LoadedCheckpoint(config=cfg, model=None, vocab=None, vocab_path=None)
    carried = LoadedCheckpoint(config=cfg, model=None, vocab=vocab, vocab_path=None)
    export = tmp_path / "export"
    export.mkdir()
    vocab.save_json(export / "vocab.json")
    explicit = other.save_json(tmp_path / "other.json")
    with pytest.raises(VsrnError, match="not found"):
        resolve_vocab(carried, tmp_path / "missing.json")
    with pytest.raises(VsrnError, match="embedding table"):  # --vocab wins, then is checked
        resolve_vocab(carried, explicit)
    assert resolve_vocab(carried, export_dir=tmp_path)[0] is vocab  # the checkpoint's before the export's
    assert resolve_vocab(bare, export_dir=export) == (vocab, str(export / "vocab.json"))
    assert resolve_vocab(bare, required=False) == (None, None)
    with pytest.raises(VsrnError, match="pass --vocab"):
        resolve_vocab(bare)
    folder = tmp_path / "vocab"
    folder.mkdir()
    other.save_json(folder / "nowhere_precomp_vocab.json")  # another model's: passed over
    vocab.save_json(folder / "renamed_vocab.json")
    found = resolve_vocab(bare, search_dirs=[folder], names=["renamed"])
    assert found[1] == str(folder / "renamed_vocab.json")
