"""The encoders against explicit formulas and an independent NumPy port of the authors' forward."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from authors_reference import as_numpy, image_forward, randomize_, text_forward

from vsrn_deploy.model import VSRN, RsGCN, l2norm
from vsrn_deploy.model.config import VSRNConfig

ATOL = 1e-5


def _variant(name: str, **overrides) -> VSRNConfig:
    if name == "f30k":
        return VSRNConfig.tiny(fc_norm=False, final_bn=True, data_name="f30k_precomp", **overrides)
    return VSRNConfig.tiny(**overrides)


def _captions(vocab_size: int, lengths: list[int], seed: int = 0) -> list[list[int]]:
    rng = np.random.default_rng(seed)
    return [[1, *rng.integers(3, vocab_size, size=n - 2).tolist(), 2] for n in lengths]


def _pad(captions: list[list[int]], extra: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    width = max(len(c) for c in captions) + extra
    ids = torch.zeros(len(captions), width, dtype=torch.int64)
    for row, c in enumerate(captions):
        ids[row, : len(c)] = torch.tensor(c)
    return ids, torch.tensor([len(c) for c in captions])


def test_gcn_layer_matches_its_formula():
    torch.manual_seed(0)
    d, k, b = 8, 5, 3
    layer = randomize_(RsGCN(d), seed=1).eval().double()
    v = torch.randn(b, d, k, dtype=torch.float64)
    sd = {n: t.detach() for n, t in layer.state_dict().items()}

    def conv(prefix, x):  # explicit 1x1 convolution: W x + b per region
        return sd[f"{prefix}.weight"][:, :, 0] @ x + sd[f"{prefix}.bias"][:, None]

    expected = []
    for x in v:  # one sample at a time, x: [D, k]
        theta, phi, g = conv("theta", x), conv("phi", x), conv("g", x)
        r = theta.T @ phi / k  # [k, k]: affinity between regions, no softmax
        y = (r @ g.T).T  # [D, k]
        w_y = conv("W.0", y)
        bn = (w_y - sd["W.1.running_mean"][:, None]) / torch.sqrt(sd["W.1.running_var"][:, None] + 1e-5)
        w_y = bn * sd["W.1.weight"][:, None] + sd["W.1.bias"][:, None]
        expected.append(w_y + x)
    torch.testing.assert_close(layer(v), torch.stack(expected), rtol=1e-10, atol=1e-10)


def test_fresh_gcn_layer_is_identity():
    layer = RsGCN(6).eval()
    v = torch.randn(2, 6, 4)
    torch.testing.assert_close(layer(v), v)


def test_image_gru_matches_step_by_step_equations():
    cfg = VSRNConfig.tiny(img_norm=False)  # the embedding is then the GRU's final state itself
    model = randomize_(VSRN(cfg, with_caption=False), seed=2).eval()
    feats = torch.randn(3, cfg.num_regions, cfg.img_dim)
    with torch.no_grad():
        emb, regions = model.img_enc(feats)
    p = {n: t.detach() for n, t in model.img_enc.img_rnn.named_parameters()}
    d = cfg.embed_size
    for b in range(feats.shape[0]):
        h = torch.zeros(d)
        for x in regions[b]:  # the regions in detector order
            gi = p["weight_ih_l0"] @ x + p["bias_ih_l0"]
            gh = p["weight_hh_l0"] @ h + p["bias_hh_l0"]
            r = torch.sigmoid(gi[:d] + gh[:d])
            z = torch.sigmoid(gi[d:2 * d] + gh[d:2 * d])
            n = torch.tanh(gi[2 * d:] + r * gh[2 * d:])
            h = (1 - z) * n + z * h
        torch.testing.assert_close(emb[b], h, rtol=1e-5, atol=1e-6)


def test_regions_are_normalised_over_the_region_axis():
    cfg = VSRNConfig.tiny()
    model = randomize_(VSRN(cfg, with_caption=False), seed=3).eval()
    with torch.no_grad():
        _, regions = model.img_enc(torch.randn(2, cfg.num_regions, cfg.img_dim))
    # the authors' quirk: each channel has unit norm across the k regions
    torch.testing.assert_close(regions.norm(dim=1), torch.ones(2, cfg.embed_size))
    assert not torch.allclose(regions.norm(dim=2), torch.ones(2, cfg.num_regions))


@pytest.mark.parametrize("variant", ["coco", "f30k"])
def test_variant_matches_numpy_reference_of_the_authors_forward(variant):
    cfg = _variant(variant)
    model = randomize_(VSRN(cfg, with_caption=False), seed=4).eval()
    feats = torch.randn(4, cfg.num_regions, cfg.img_dim)
    captions = _captions(cfg.vocab_size, [5, 9, 3, 7, 7], seed=1)  # unsorted lengths
    ids, lengths = _pad(captions, extra=2)
    with torch.no_grad():
        emb, regions = model.encode_images_with_regions(feats)
        txt = model.encode_texts(ids, lengths)
    ref_emb, ref_regions = image_forward(as_numpy(model.img_enc.state_dict()), feats.numpy(),
                                         cfg.data_name)
    ref_txt = text_forward(as_numpy(model.txt_enc.state_dict()), captions)
    np.testing.assert_allclose(emb.numpy(), ref_emb, atol=ATOL, rtol=0)
    np.testing.assert_allclose(regions.numpy(), ref_regions, atol=ATOL, rtol=0)
    np.testing.assert_allclose(txt.numpy(), ref_txt, atol=ATOL, rtol=0)


def test_the_two_variants_really_differ():
    coco, f30k = _variant("coco"), _variant("f30k")
    m1 = randomize_(VSRN(coco, with_caption=False), seed=5).eval()
    m2 = VSRN(f30k, with_caption=False).eval()
    sd = m2.img_enc.state_dict()
    sd.update(m1.img_enc.state_dict())
    randomize_(m2.img_enc.bn, seed=6)
    m2.img_enc.load_state_dict({**sd, **{f"bn.{k}": v for k, v in m2.img_enc.bn.state_dict().items()}})
    feats = torch.randn(2, coco.num_regions, coco.img_dim)
    with torch.no_grad():
        assert not torch.allclose(m1.encode_images(feats), m2.encode_images(feats), atol=1e-3)


def test_mixed_length_batch_in_any_order_equals_one_row_at_a_time():
    cfg = VSRNConfig.tiny(text_layers=2)
    model = randomize_(VSRN(cfg, with_caption=False), seed=7).eval()
    captions = _captions(cfg.vocab_size, [4, 11, 2, 8, 6, 11, 3], seed=2)
    ids, lengths = _pad(captions, extra=3)
    ids[ids == 0] = 5  # padding content must not matter either
    with torch.no_grad():
        batch = model.encode_texts(ids, lengths)
        rows = torch.cat([model.encode_texts(*_pad([c])) for c in captions])
        perm = torch.tensor([3, 0, 6, 2, 5, 1, 4])
        permuted = model.encode_texts(ids[perm], lengths[perm])
    torch.testing.assert_close(batch, rows, rtol=0, atol=1e-6)
    torch.testing.assert_close(permuted, batch[perm], rtol=0, atol=1e-6)
    ref = text_forward(as_numpy(model.txt_enc.state_dict()), captions, layers=2)
    np.testing.assert_allclose(batch.numpy(), ref, atol=ATOL, rtol=0)


@pytest.mark.parametrize("variant", ["coco", "f30k"])
def test_all_zero_inputs_give_no_nan(variant):
    cfg = _variant(variant)
    model = randomize_(VSRN(cfg, with_caption=False), seed=8).eval()
    with torch.no_grad():
        for p in model.img_enc.parameters():
            p.zero_()
        model.txt_enc.embed.weight.zero_()
        model.txt_enc.rnn.bias_hh_l0.zero_()
        model.txt_enc.rnn.bias_ih_l0.zero_()
        emb, regions = model.img_enc(torch.zeros(2, cfg.num_regions, cfg.img_dim))
        txt = model.encode_texts(torch.tensor([[1, 4, 2]]), torch.tensor([3]))
    for out in (emb, regions, txt):
        assert torch.isfinite(out).all()


def test_epsilon_leaves_normal_results_unchanged():
    x = torch.randn(4, 6, 5, dtype=torch.float64)
    exact = x / x.pow(2).sum(dim=1, keepdim=True).sqrt()
    torch.testing.assert_close(l2norm(x, dim=1), exact, rtol=0, atol=0)
    assert torch.equal(l2norm(torch.zeros(2, 3), dim=1), torch.zeros(2, 3))


def test_mean_pooling_switch_and_zero_gcn_layers():
    cfg = VSRNConfig.tiny(img_pool="mean", gcn_layers=0)
    model = randomize_(VSRN(cfg, with_caption=False), seed=9).eval()
    assert not hasattr(model.img_enc, "img_rnn") and not hasattr(model.img_enc, "Rs_GCN_1")
    feats = torch.randn(3, cfg.num_regions, cfg.img_dim)
    with torch.no_grad():
        emb, regions = model.img_enc(feats)
        x = model.img_enc.fc(feats)
    x = x / x.norm(dim=1, keepdim=True)
    x = x / x.norm(dim=1, keepdim=True)  # fc norm, then V* norm (both over regions)
    pooled = x.mean(dim=1)
    torch.testing.assert_close(regions, x)
    torch.testing.assert_close(emb, pooled / pooled.norm(dim=1, keepdim=True))
