"""VSRN image and text encoders (Li et al., "Visual Semantic Reasoning for Image-Text Matching",
ICCV 2019, arXiv 1909.02701).

Parameter names follow the authors' checkpoints (`fc`, `Rs_GCN_n`, `img_rnn`, `bn`, `embed`, `rnn`)
so their state dicts load unchanged. Every `forward` is export-safe: tensors in, tensors out, no
host synchronisation, no per-sample Python loops, no packed sequences.
"""

from __future__ import annotations

import torch
from torch import nn

from vsrn_deploy.model.config import VSRNConfig


def l2norm(x: torch.Tensor, dim: int, eps: float = 1e-12) -> torch.Tensor:
    """x / ||x|| along `dim`, never dividing by less than `eps`.

    The authors normalise with no epsilon (all-zero input gives NaN); for any input whose norm
    exceeds `eps` the result is identical.
    """
    norm = x.pow(2).sum(dim=dim, keepdim=True).sqrt().clamp_min(eps)
    return x / norm


class RsGCN(nn.Module):
    """One region relationship reasoning layer: a residual, non-local style graph convolution.

    On v of shape (B, D, k): R = theta(v)^T phi(v) / k (no softmax); y = R g(v)^T;
    out = W(y) + v with W = 1x1 conv + BatchNorm (BN initialised to zero: the layer starts as
    the identity).
    """

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.g = nn.Conv1d(channels, channels, kernel_size=1)
        self.theta = nn.Conv1d(channels, channels, kernel_size=1)
        self.phi = nn.Conv1d(channels, channels, kernel_size=1)
        self.W = nn.Sequential(nn.Conv1d(channels, channels, kernel_size=1), nn.BatchNorm1d(channels))
        nn.init.constant_(self.W[1].weight, 0.0)
        nn.init.constant_(self.W[1].bias, 0.0)

    def forward(self, v: torch.Tensor) -> torch.Tensor:
        g_v = self.g(v).transpose(1, 2)  # (B, k, D)
        theta_v = self.theta(v).transpose(1, 2)  # (B, k, D)
        phi_v = self.phi(v)  # (B, D, k)
        affinity = torch.matmul(theta_v, phi_v) / v.shape[-1]  # (B, k, k), divided by k
        y = torch.matmul(affinity, g_v).transpose(1, 2)  # (B, D, k)
        return self.W(y) + v


class ImageEncoder(nn.Module):
    """Region features (B, k, F) -> (image embedding (B, D), region embeddings V* (B, k, D))."""

    def __init__(self, config: VSRNConfig) -> None:
        super().__init__()
        self.config = config
        d = config.embed_size
        self.fc = nn.Linear(config.img_dim, d)
        for i in range(1, config.gcn_layers + 1):
            self.add_module(f"Rs_GCN_{i}", RsGCN(d))
        if config.img_pool == "gru":
            self.img_rnn = nn.GRU(d, d, num_layers=1, batch_first=True)
        if config.final_bn:
            self.bn = nn.BatchNorm1d(d)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """Xavier-uniform fc with zero bias, as the authors initialise it."""
        fan = self.fc.in_features + self.fc.out_features
        bound = (6.0 / fan) ** 0.5
        nn.init.uniform_(self.fc.weight, -bound, bound)
        nn.init.zeros_(self.fc.bias)

    @property
    def gcn_layers(self) -> list[RsGCN]:
        return [getattr(self, f"Rs_GCN_{i}") for i in range(1, self.config.gcn_layers + 1)]

    def forward(self, region_features: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        cfg = self.config
        x = self.fc(region_features)  # (B, k, D)
        if cfg.fc_norm:
            x = l2norm(x, dim=1, eps=cfg.norm_eps)  # over the REGION axis, like the authors
        v = x.transpose(1, 2)  # (B, D, k)
        for layer in self.gcn_layers:
            v = layer(v)
        regions = l2norm(v.transpose(1, 2), dim=1, eps=cfg.norm_eps)  # V*: (B, k, D), region axis
        if cfg.img_pool == "gru":
            _, hidden = self.img_rnn(regions)
            features = hidden[-1]  # (B, D): final state after the last region
        else:
            features = regions.mean(dim=1)
        if cfg.final_bn:
            features = self.bn(features)
        if cfg.img_norm:
            features = l2norm(features, dim=1, eps=cfg.norm_eps)
        if cfg.use_abs:
            features = features.abs()
        return features, regions


class TextEncoder(nn.Module):
    """Token ids (B, T) and lengths (B,) in any order -> caption embedding (B, D).

    The GRU runs over the padded batch; the state at position length-1 depends only on earlier
    tokens, so it equals the authors' packed-sequence result without sorting or packing.
    """

    def __init__(self, config: VSRNConfig) -> None:
        super().__init__()
        self.config = config
        self.embed = nn.Embedding(config.vocab_size, config.word_dim)
        self.rnn = nn.GRU(config.word_dim, config.embed_size, config.text_layers, batch_first=True)
        nn.init.uniform_(self.embed.weight, -0.1, 0.1)

    def forward(self, token_ids: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        out, _ = self.rnn(self.embed(token_ids))  # (B, T, D)
        index = (lengths.to(torch.int64) - 1).clamp_min(0).view(-1, 1, 1).expand(-1, 1, out.shape[-1])
        features = torch.gather(out, 1, index).squeeze(1)  # (B, D)
        features = l2norm(features, dim=1, eps=self.config.norm_eps)
        if self.config.use_abs:
            features = features.abs()
        return features
