"""PyTorch VSRN: encoders, caption generator, losses."""

from vsrn_deploy.model.encoders import ImageEncoder, RsGCN, TextEncoder, l2norm
from vsrn_deploy.model.loss import contrastive_loss, masked_nll_loss
from vsrn_deploy.model.vsrn import VSRN

__all__ = ["VSRN", "ImageEncoder", "TextEncoder", "RsGCN", "l2norm", "contrastive_loss",
           "masked_nll_loss"]
