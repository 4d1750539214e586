"""The losses against naive loops written straight from their definitions."""

from __future__ import annotations

import pytest
import torch
from authors_reference import randomize_

from vsrn_deploy.model import VSRN, contrastive_loss, masked_nll_loss
from vsrn_deploy.model.config import VSRNConfig


def _naive_contrastive(images, captions, margin, max_violation):
    n = images.shape[0]
    s = [[float(images[i] @ captions[j]) for j in range(n)] for i in range(n)]
    total = 0.0
    for i in range(n):  # image i as the anchor: negatives are captions j != i
        costs = [max(0.0, margin + s[i][j] - s[i][i]) for j in range(n) if j != i]
        total += max(costs, default=0.0) if max_violation else sum(costs)
    for j in range(n):  # caption j as the anchor: negatives are images i != j
        costs = [max(0.0, margin + s[i][j] - s[j][j]) for i in range(n) if i != j]
        total += max(costs, default=0.0) if max_violation else sum(costs)
    return total


@pytest.mark.parametrize("max_violation", [True, False])
def test_contrastive_loss_matches_naive_loops(max_violation):
    torch.manual_seed(0)
    images = torch.nn.functional.normalize(torch.randn(7, 5, dtype=torch.float64), dim=1)
    captions = torch.nn.functional.normalize(torch.randn(7, 5, dtype=torch.float64), dim=1)
    loss = contrastive_loss(images, captions, margin=0.2, max_violation=max_violation)
    expected = _naive_contrastive(images, captions, 0.2, max_violation)
    assert expected > 0
    assert loss.item() == pytest.approx(expected, rel=1e-12, abs=1e-12)


def test_contrastive_loss_is_zero_when_pairs_are_separated_by_the_margin():
    eye = torch.eye(4)
    assert contrastive_loss(eye, eye, margin=0.2).item() == 0.0
    # a margin above the gap (1.0) makes every negative count
    assert contrastive_loss(eye, eye, margin=1.5).item() == pytest.approx(8 * 0.5)


def test_masked_nll_matches_naive_loops():
    torch.manual_seed(1)
    b, t, v = 3, 5, 7
    logprobs = torch.log_softmax(torch.randn(b, t, v, dtype=torch.float64), dim=2)
    targets = torch.randint(0, v, (b, t))
    lengths = [5, 2, 4]
    mask = torch.tensor([[1 if s < n else 0 for s in range(t)] for n in lengths])
    expected = 0.0
    for i in range(b):
        for s in range(lengths[i]):
            expected -= float(logprobs[i, s, targets[i, s]])
    expected /= b
    assert masked_nll_loss(logprobs, targets, mask).item() == pytest.approx(expected, rel=1e-12)


def test_total_loss_is_matching_plus_generation_and_backpropagates():
    cfg = VSRNConfig.tiny()
    torch.manual_seed(2)
    model = randomize_(VSRN(cfg), seed=3).train()
    feats = torch.randn(4, cfg.num_regions, cfg.img_dim)
    ids = torch.randint(4, cfg.vocab_size, (4, 7))
    ids[:, 0] = 1
    lengths = torch.tensor([7, 3, 5, 6])
    for row, n in enumerate(lengths.tolist()):
        ids[row, n - 1] = 2
        ids[row, n:] = 0
    out = model.loss(feats, ids, lengths)
    assert out["generation"].item() > 0 and out["matching"].item() >= 0
    torch.testing.assert_close(out["loss"], out["matching"] + out["generation"])
    out["loss"].backward()
    assert model.caption.out.weight.grad is not None and model.img_enc.fc.weight.grad.abs().sum() > 0
