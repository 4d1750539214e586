"""The deploy-form modules compute what the training modules compute (before any export)."""

from __future__ import annotations

import pytest
import torch
from export_helpers import tiny_model

from vsrn_deploy.data.synthetic_inputs import captions, text_feed
from vsrn_deploy.data.synthetic_inputs import region_features as synthetic_region_features
from vsrn_deploy.model import VSRN
from vsrn_deploy.model.config import VSRNConfig
from vsrn_deploy.model.deploy import ImageEncoderDeploy, TextEncoderDeploy

VARIANTS = {
    "coco": {},
    "f30k": {"fc_norm": False, "final_bn": True, "data_name": "f30k_precomp"},
    "no-gcn-mean-pool": {"gcn_layers": 0, "img_pool": "mean", "text_layers": 2},
    "abs-no-imgnorm": {"use_abs": True, "img_norm": False, "gcn_layers": 1},
}


@pytest.mark.parametrize("variant", sorted(VARIANTS))
def test_tiny_deploy_equals_training(variant):
    model = tiny_model(1, **VARIANTS[variant])
    cfg = model.config
    x = torch.from_numpy(synthetic_region_features(5, cfg.num_regions, cfg.img_dim, seed=2))
    with torch.no_grad():
        ref_emb, ref_regions = model.img_enc(x)
        emb, regions = ImageEncoderDeploy.from_encoder(model.img_enc)(x)
    torch.testing.assert_close(emb, ref_emb, atol=1e-6, rtol=1e-5)
    torch.testing.assert_close(regions, ref_regions, atol=1e-6, rtol=1e-5)
    ids, lengths = text_feed(captions(7, cfg.vocab_size, max_tokens=9, seed=3)).values()
    ids, lengths = torch.from_numpy(ids), torch.from_numpy(lengths)
    with torch.no_grad():
        ref = model.txt_enc(ids, lengths)
        got = TextEncoderDeploy.from_encoder(model.txt_enc)(ids, lengths)
    torch.testing.assert_close(got, ref, atol=1e-6, rtol=1e-5)


@pytest.mark.parametrize("variant", ["coco", "f30k"])
def test_moderate_size_deploy_equals_training(variant):
    """k = 36 regions as released, wider layers: the unrolled GRU and folded BN at a realistic depth."""
    torch.manual_seed(4)
    cfg = VSRNConfig.tiny(num_regions=36, img_dim=96, embed_size=64, gcn_layers=4, **VARIANTS[variant])
    model = VSRN(cfg, with_caption=False).eval()
    from export_helpers import randomise_batchnorm

    randomise_batchnorm(model, 4)
    x = torch.from_numpy(synthetic_region_features(3, 36, 96, seed=5))
    with torch.no_grad():
        ref = model.img_enc(x)
        got = ImageEncoderDeploy.from_encoder(model.img_enc)(x)
    for a, b in zip(got, ref, strict=True):
        torch.testing.assert_close(a, b, atol=1e-5, rtol=1e-4)


def test_deploy_holds_folded_weights_only():
    model = tiny_model(0)
    deploy = ImageEncoderDeploy.from_encoder(model.img_enc)
    names = dict(deploy.named_buffers())
    d = model.config.embed_size
    assert names["gcn1_qkv_w"].shape == (d, 3 * d)  # theta, phi, g in one matmul
    assert not any(isinstance(m, (torch.nn.BatchNorm1d, torch.nn.GRU)) for m in deploy.modules())
    assert list(deploy.parameters()) == []
    # the 1/k sits in theta's weight
    k = model.config.num_regions
    theta = model.img_enc.Rs_GCN_1.theta.weight[:, :, 0].t() / k
    torch.testing.assert_close(names["gcn1_qkv_w"][:, :d], theta)
