"""encode_split on a tiny model and a small generated precomp split."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from vsrn_deploy.core.errors import VsrnError
from vsrn_deploy.data.batching import CaptionDataset
from vsrn_deploy.data.precomp import PrecompSplit
from vsrn_deploy.data.synthetic import default_vocab_path, generate_dataset
from vsrn_deploy.data.vocab import Vocabulary, load_vocab
from vsrn_deploy.evaluation import recall as evaluation
from vsrn_deploy.model import VSRN
from vsrn_deploy.model.config import VSRNConfig
from vsrn_deploy.model.encode import encode_split


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    root = tmp_path_factory.mktemp("enc")
    folder = generate_dataset(root, n_train=20, n_dev=5, n_test=8, num_regions=4, feature_dim=16, seed=3)
    vocab = load_vocab(default_vocab_path(folder))
    torch.manual_seed(0)
    model = VSRN(VSRNConfig.tiny(vocab_size=len(vocab), img_dim=16, num_regions=4), with_caption=False)
    return folder, vocab, model.eval()


class _CountingModel(torch.nn.Module):
    """Counts how many images go through the image encoder."""

    def __init__(self, model):
        super().__init__()
        self.model = model
        self.config = model.config
        self.images_seen = 0

    def encode_images(self, x):
        self.images_seen += x.shape[0]
        return self.model.encode_images(x)

    def encode_texts(self, ids, lengths):
        return self.model.encode_texts(ids, lengths)


def test_authors_layout_and_values(data):
    folder, vocab, model = data
    split = PrecompSplit(folder, "test")
    counting = _CountingModel(model)
    counting.train()
    ims, caps = encode_split(counting, CaptionDataset(split, vocab), batch_size=3)
    assert counting.images_seen == 8  # each image once, not once per caption
    assert counting.training  # the training flag is restored
    assert ims.shape == caps.shape == (40, model.config.embed_size)
    assert ims.dtype == caps.dtype == np.float32
    np.testing.assert_array_equal(ims.reshape(8, 5, -1), np.repeat(ims[::5, None], 5, axis=1))
    with torch.no_grad():
        ref_img = model.encode_images(torch.from_numpy(np.array(split.features))).numpy()
        ids = torch.tensor([vocab.encode(split.captions[6])])
        ref_cap = model.encode_texts(ids, torch.tensor([ids.shape[1]])).numpy()[0]
    np.testing.assert_allclose(ims[::5], ref_img, atol=1e-6)
    np.testing.assert_allclose(caps[6], ref_cap, atol=1e-6)  # batch padding does not change a row


def test_one_row_per_image_gives_the_same_recalls(data):
    folder, vocab, model = data
    split = PrecompSplit(folder, "test")
    rep = encode_split(model, split, vocab=vocab, batch_size=16)
    uniq = encode_split(model, split, vocab=vocab, batch_size=40, repeat=False)
    assert uniq[0].shape == (8, model.config.embed_size)
    np.testing.assert_allclose(uniq[1], rep[1], atol=1e-6)
    assert evaluation.recall_report(*rep)["rsum"] == pytest.approx(
        evaluation.recall_report(*uniq)["rsum"])


def test_bad_inputs(data, tmp_path):
    folder, vocab, model = data
    split = PrecompSplit(folder, "test")
    with pytest.raises(VsrnError, match="needs a vocabulary"):
        encode_split(model, split)
    small = Vocabulary(vocab.words[:-1])
    with pytest.raises(VsrnError, match="rows"):
        encode_split(model, split, vocab=small)
    feats = np.asarray(split.features).copy()
    feats[3, 1, 2] = np.nan  # the reader checks only image 0 when it opens a file
    np.save(tmp_path / "test_ims.npy", feats)
    (tmp_path / "test_caps.txt").write_text("\n".join(split.captions) + "\n")
    with pytest.raises(VsrnError, match=r"image\(s\) \[3\]"):
        encode_split(model, PrecompSplit(tmp_path, "test"), vocab=vocab)
