"""The analytic FLOP counts against torch's FLOP counter and the paper-size derivation."""

from __future__ import annotations

import pytest
import torch
from torch.utils.flop_counter import FlopCounterMode

from vsrn_deploy.bench import flops
from vsrn_deploy.model import VSRN
from vsrn_deploy.model.config import VSRNConfig
from vsrn_deploy.model.deploy import ImageEncoderDeploy, TextEncoderDeploy


def _counted(fn, *args) -> int:
    with torch.no_grad(), FlopCounterMode(display=False) as counter:
        fn(*args)
    return counter.get_total_flops()


@pytest.mark.parametrize("overrides", [{}, {"gcn_layers": 0}, {"img_pool": "mean"}, {"num_regions": 3}])
def test_image_flops_equal_torch_counter_on_the_eager_encoder(overrides):
    cfg = VSRNConfig.tiny(**overrides)
    model = VSRN(cfg, with_caption=False).eval()
    batch = 3
    counted = _counted(model.img_enc, torch.randn(batch, cfg.num_regions, cfg.img_dim))
    assert counted == batch * flops.image_encoder_flops(cfg)


def test_image_flops_of_the_deploy_form_equal_torch_counter():
    cfg = VSRNConfig.tiny()
    deploy = ImageEncoderDeploy.from_encoder(VSRN(cfg, with_caption=False).img_enc)
    counted = _counted(deploy, torch.randn(2, cfg.num_regions, cfg.img_dim))
    assert counted == 2 * flops.image_encoder_flops(cfg, "deploy")
    k, d = cfg.num_regions, cfg.embed_size
    step0_recurrent = 2 * d * 3 * d  # h0 = 0: the deploy form skips this matmul
    folded_w = cfg.gcn_layers * 2 * k * d * d  # W folded into g: one projection less per layer
    expected = flops.image_encoder_flops(cfg) - step0_recurrent - folded_w
    assert flops.image_encoder_flops(cfg, "deploy") == expected


@pytest.mark.parametrize("layers", [1, 2])
def test_text_flops_equal_torch_counter(layers):
    cfg = VSRNConfig.tiny(text_layers=layers)
    model = VSRN(cfg, with_caption=False).eval()
    ids = torch.randint(4, cfg.vocab_size, (4, 9))
    lengths = torch.tensor([9, 5, 3, 7])
    assert _counted(model.txt_enc, ids, lengths) == 4 * flops.text_encoder_flops(cfg, 9)
    if layers == 1:
        deploy = TextEncoderDeploy.from_encoder(model.txt_enc)
        assert _counted(deploy, ids, lengths) == 4 * flops.text_encoder_flops(cfg, 9)


def test_paper_sizes_by_hand():
    cfg = VSRNConfig()
    k, d = 36, 2048
    proj = 2 * k * d * d  # one (k x D) @ (D x D) projection
    by_hand = proj * (1 + 4 * 4 + 2 * 3) + 4 * 2 * (2 * k * k * d)  # fc, GCN W/theta/phi/g, GRU; R, Rg
    assert flops.image_encoder_flops(cfg) == by_hand
    assert flops.image_encoder_flops(cfg) / 1e9 == pytest.approx(6.99, abs=0.005)
    assert flops.text_encoder_flops(cfg, 1) == 2 * 3 * d * (300 + d)
    # weights: fc + 16 GCN projections + 6 GRU blocks of D x D, FP32
    assert flops.image_encoder_weight_params(cfg) == 23 * d * d
    assert flops.image_encoder_streamed_weight_bytes(cfg, 2) == (23 + 35 * 3) * d * d * 2
