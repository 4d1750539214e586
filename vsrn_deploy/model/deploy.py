"""Deploy form of the VSRN encoders: the same functions as the training modules, rewritten for
inference engines.

Image encoder (`ImageEncoderDeploy`):
- BatchNorm folded into the preceding 1x1 convolution of each GCN layer (`W = conv + BN`), and
  that convolution folded into g: W mixes channels and the affinity mixes regions, so
  W(R g(v)) = R (W g(v)) and each layer needs three D x D projections instead of four;
- each GCN layer's theta / phi / g projections in ONE matmul ([D, 3D] weights), with the 1/k of the
  affinity folded into theta's weight and bias;
- the region GRU unrolled into plain matmuls and gates; the input projection of all k regions is one
  matmul before the recurrence, and the recurrent biases of the r and z gates are folded into it
  (only the n gate's recurrent bias sits inside the reset product);
- the Flickr30K final BatchNorm (it follows the GRU state, a non-linear function) as a per-channel
  affine (Mul, Add).
All tensors stay in the (B, k, D) layout, so the graph needs no transposes except the affinity's.

Text encoder (`TextEncoderDeploy`): embedding -> GRU with per-row sequence lengths -> the state at
position length-1 -> l2norm. Its loop over time steps mirrors the ONNX GRU node with
`sequence_lens` (a row's state stops changing after its last token), which is what the text graph
holds.

Both modules are built from trained weights by `from_encoder` and hold only buffers, so the ONNX
graph builders (`vsrn_deploy.export.graphs`) read exactly the tensors these modules compute with.
"""

from __future__ import annotations

import torch
from torch import nn

from vsrn_deploy.model.config import VSRNConfig
from vsrn_deploy.model.encoders import ImageEncoder, TextEncoder


def _safe_l2norm(x: torch.Tensor, dim: int, eps: float) -> torch.Tensor:
    """x / max(||x||, eps) along `dim` (the training l2norm, written out as the graph does it)."""
    norm = torch.sqrt((x * x).sum(dim=dim, keepdim=True)).clamp_min(eps)
    return x / norm


def fold_batchnorm(
    weight: torch.Tensor, bias: torch.Tensor, bn: nn.BatchNorm1d
) -> tuple[torch.Tensor, torch.Tensor]:
    """Fold an eval-mode BatchNorm that follows `y = x @ weight.T + bias` into the linear map.

    Args:
        weight: (out, in) weight of the linear map.
        bias: (out,) bias.
        bn: the BatchNorm1d over the `out` channels (its running statistics are used).
    Returns:
        (weight', bias') with x @ weight'.T + bias' == bn(x @ weight.T + bias).
    """
    scale = bn.weight / torch.sqrt(bn.running_var + bn.eps)  # (out,)
    return weight * scale[:, None], (bias - bn.running_mean) * scale + bn.bias


def batchnorm_affine(bn: nn.BatchNorm1d) -> tuple[torch.Tensor, torch.Tensor]:
    """Eval-mode BatchNorm1d as y = x * scale + shift. Returns (scale, shift), each (C,)."""
    scale = bn.weight / torch.sqrt(bn.running_var + bn.eps)
    return scale, bn.bias - bn.running_mean * scale


class ImageEncoderDeploy(nn.Module):
    """Region features (B, k, F) -> (image_embedding (B, D), region_embeddings (B, k, D)).

    Equal to `ImageEncoder.forward` in eval mode (BatchNorm running statistics) up to float
    rounding. `num_regions` (k) is fixed: the folded 1/k and the unrolled GRU depend on it.
    """

    def __init__(self, config: VSRNConfig) -> None:
        super().__init__()
        self.config = config
        self.num_regions = config.num_regions
        self.gcn_layers = config.gcn_layers

    @classmethod
    @torch.no_grad()
    def from_encoder(cls, img_enc: ImageEncoder) -> ImageEncoderDeploy:
        """Build the deploy form from a (trained) training-form image encoder.

        Args:
            img_enc: the training module; its weights are copied (float32), not shared.
        Returns:
            The deploy module in eval mode.
        """
        cfg = img_enc.config
        self = cls(cfg)
        d, k = cfg.embed_size, cfg.num_regions
        f32 = torch.float32
        self.register_buffer("fc_w", img_enc.fc.weight.detach().to(f32).t().contiguous())  # (F, D)
        self.register_buffer("fc_b", img_enc.fc.bias.detach().to(f32).clone())  # (D,)
        for i, layer in enumerate(img_enc.gcn_layers, start=1):
            theta_w = layer.theta.weight[:, :, 0] / k  # the affinity's 1/k, folded
            theta_b = layer.theta.bias / k
            out_w, out_b = fold_batchnorm(layer.W[0].weight[:, :, 0], layer.W[0].bias, layer.W[1])
            # W acts on channels and the affinity on regions, so they commute:
            # W(R g(v)) = R (W_lin g(v)) + b_W. Folding W_lin into g saves one D x D matmul per
            # layer (a quarter of the GCN's FLOPs); W's bias stays after the aggregation.
            g_w = out_w.double() @ layer.g.weight[:, :, 0].double()  # (D, D), in float64 once
            g_b = out_w.double() @ layer.g.bias.double()
            qkv_w = torch.cat([theta_w, layer.phi.weight[:, :, 0], g_w.to(f32)], dim=0)  # (3D, D)
            qkv_b = torch.cat([theta_b, layer.phi.bias, g_b.to(f32)], dim=0)  # (3D,)
            self.register_buffer(f"gcn{i}_qkv_w", qkv_w.to(f32).t().contiguous())  # (D, 3D)
            self.register_buffer(f"gcn{i}_qkv_b", qkv_b.to(f32).contiguous())
            self.register_buffer(f"gcn{i}_out_b", out_b.to(f32).contiguous())  # (D,)
        if cfg.img_pool == "gru":
            rnn = img_enc.img_rnn
            w_ih, w_hh = rnn.weight_ih_l0.to(f32), rnn.weight_hh_l0.to(f32)  # (3D, D), gates r, z, n
            b_ih, b_hh = rnn.bias_ih_l0.to(f32), rnn.bias_hh_l0.to(f32)
            # r and z see b_ih + b_hh linearly: fold both into the input projection
            self.register_buffer("gru_wi_rz", w_ih[: 2 * d].t().contiguous())  # (D, 2D)
            self.register_buffer("gru_bi_rz", (b_ih[: 2 * d] + b_hh[: 2 * d]).contiguous())
            self.register_buffer("gru_wi_n", w_ih[2 * d :].t().contiguous())  # (D, D)
            self.register_buffer("gru_bi_n", b_ih[2 * d :].contiguous())
            self.register_buffer("gru_wh_rz", w_hh[: 2 * d].t().contiguous())  # (D, 2D)
            self.register_buffer("gru_wh_n", w_hh[2 * d :].t().contiguous())  # (D, D)
            self.register_buffer("gru_bh_n", b_hh[2 * d :].contiguous())  # inside r * (.)
        if cfg.final_bn:
            scale, shift = batchnorm_affine(img_enc.bn)
            self.register_buffer("bn_scale", scale.detach().to(f32).contiguous())
            self.register_buffer("bn_shift", shift.detach().to(f32).contiguous())
        return self.eval()

    def forward(self, region_features: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        cfg = self.config
        d, eps = cfg.embed_size, cfg.norm_eps
        x = region_features @ self.fc_w + self.fc_b  # (B, k, D)
        if cfg.fc_norm:
            x = _safe_l2norm(x, 1, eps)  # region axis, as the authors
        v = x
        for i in range(1, self.gcn_layers + 1):
            qkv = v @ getattr(self, f"gcn{i}_qkv_w") + getattr(self, f"gcn{i}_qkv_b")  # (B, k, 3D)
            theta, phi, g = qkv[..., :d], qkv[..., d : 2 * d], qkv[..., 2 * d :]
            affinity = theta @ phi.transpose(1, 2)  # (B, k, k), 1/k already in theta
            y = affinity @ g  # (B, k, D): g already carries W's linear map
            v = y + getattr(self, f"gcn{i}_out_b") + v
        regions = _safe_l2norm(v, 1, eps)  # (B, k, D), region axis
        if cfg.img_pool == "gru":
            x_rz = regions @ self.gru_wi_rz + self.gru_bi_rz  # (B, k, 2D): all regions at once
            x_n = regions @ self.gru_wi_n + self.gru_bi_n  # (B, k, D)
            # step 0 from h = 0: the recurrent matmuls vanish
            rz = torch.sigmoid(x_rz[:, 0])
            r, z = rz[:, :d], rz[:, d:]
            n = torch.tanh(x_n[:, 0] + r * self.gru_bh_n)
            h = n - z * n
            for t in range(1, self.num_regions):  # unrolled over the k regions
                rz = torch.sigmoid(x_rz[:, t] + h @ self.gru_wh_rz)
                r, z = rz[:, :d], rz[:, d:]
                n = torch.tanh(x_n[:, t] + r * (h @ self.gru_wh_n + self.gru_bh_n))
                h = n + z * (h - n)  # == (1 - z) * n + z * h
            features = h  # (B, D)
        else:
            features = regions.sum(dim=1) * (1.0 / self.num_regions)  # (B, D)
        if cfg.final_bn:
            features = features * self.bn_scale + self.bn_shift
        if cfg.img_norm:
            features = _safe_l2norm(features, 1, eps)
        if cfg.use_abs:
            features = features.abs()
        return features, regions


class TextEncoderDeploy(nn.Module):
    """Token ids (B, T) int64 and lengths (B,) in any order -> text_embedding (B, D).

    Mirrors the ONNX GRU node with `sequence_lens`: row b's state stops changing after step
    lengths[b]-1, so the final state is the state at position length-1. Lengths below 1 count as 1
    (the training module clamps the gather index the same way).
    """

    def __init__(self, config: VSRNConfig) -> None:
        super().__init__()
        self.config = config

    @classmethod
    @torch.no_grad()
    def from_encoder(cls, txt_enc: TextEncoder) -> TextEncoderDeploy:
        """Build the deploy form from a (trained) training-form text encoder.

        Args:
            txt_enc: the training module; its weights are copied (float32).
        Returns:
            The deploy module in eval mode.
        """
        cfg = txt_enc.config
        self = cls(cfg)
        self.register_buffer("embed", txt_enc.embed.weight.detach().float().clone())  # (V, W)
        for layer in range(cfg.text_layers):
            for name in ("weight_ih", "weight_hh", "bias_ih", "bias_hh"):
                tensor = getattr(txt_enc.rnn, f"{name}_l{layer}").detach().float().clone()
                self.register_buffer(f"rnn_{name}_l{layer}", tensor)  # torch gate order r, z, n
        return self.eval()

    def forward(self, token_ids: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        cfg = self.config
        d = cfg.embed_size
        x = self.embed[token_ids]  # (B, T, W)
        lengths = lengths.to(torch.int64).clamp_min(1)
        steps = x.shape[1]
        for layer in range(cfg.text_layers):
            w_ih = getattr(self, f"rnn_weight_ih_l{layer}")
            w_hh = getattr(self, f"rnn_weight_hh_l{layer}")
            b_ih = getattr(self, f"rnn_bias_ih_l{layer}")
            b_hh = getattr(self, f"rnn_bias_hh_l{layer}")
            gi = x @ w_ih.t() + b_ih  # (B, T, 3D)
            h = x.new_zeros(x.shape[0], d)
            outputs = []
            for t in range(steps):  # a loop over time steps, not over samples
                gh = h @ w_hh.t() + b_hh  # (B, 3D)
                r = torch.sigmoid(gi[:, t, :d] + gh[:, :d])
                z = torch.sigmoid(gi[:, t, d : 2 * d] + gh[:, d : 2 * d])
                n = torch.tanh(gi[:, t, 2 * d :] + r * gh[:, 2 * d :])
                new_h = (1 - z) * n + z * h
                valid = (t < lengths).unsqueeze(1)  # (B, 1)
                h = torch.where(valid, new_h, h)
                outputs.append(torch.where(valid, new_h, torch.zeros_like(new_h)))
            x = torch.stack(outputs, dim=1)  # (B, T, D): next layer's input, zero past the end
        features = _safe_l2norm(h, 1, cfg.norm_eps)
        if cfg.use_abs:
            features = features.abs()
        return features
