"""The full VSRN model: both encoders plus the caption generator used for the L_G loss."""

from __future__ import annotations

import torch
from torch import nn

from vsrn_deploy.model.caption import CaptionGenerator
from vsrn_deploy.model.config import VSRNConfig
from vsrn_deploy.model.encoders import ImageEncoder, TextEncoder
from vsrn_deploy.model.loss import contrastive_loss, masked_nll_loss


class VSRN(nn.Module):
    """Image encoder, text encoder and caption generator, with `encode_images` / `encode_texts`."""

    def __init__(self, config: VSRNConfig, with_caption: bool = True) -> None:
        super().__init__()
        self.config = config
        self.img_enc = ImageEncoder(config)
        self.txt_enc = TextEncoder(config)
        self.caption = CaptionGenerator(config) if with_caption else None

    def encode_images(self, region_features: torch.Tensor) -> torch.Tensor:
        """(B, k, F) float region features -> (B, D) l2-normalised image embeddings."""
        return self.img_enc(region_features)[0]

    def encode_images_with_regions(self, region_features: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(B, k, F) -> ((B, D) image embeddings, (B, k, D) region embeddings V*)."""
        return self.img_enc(region_features)

    def encode_texts(self, token_ids: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        """(B, T) int64 ids, (B,) lengths in any order -> (B, D) l2-normalised caption embeddings."""
        return self.txt_enc(token_ids, lengths)

    def forward(self, region_features: torch.Tensor, token_ids: torch.Tensor,
                lengths: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        images, regions = self.img_enc(region_features)
        return images, self.txt_enc(token_ids, lengths), regions

    def loss(self, region_features: torch.Tensor, token_ids: torch.Tensor, lengths: torch.Tensor,
             margin: float = 0.2, max_violation: bool = True,
             generation_loss: bool = True) -> dict[str, torch.Tensor]:
        """L = L_M (+ L_G). Returns {'loss', 'matching', 'generation'}."""
        images, captions, regions = self(region_features, token_ids, lengths)
        matching = contrastive_loss(images, captions, margin=margin, max_violation=max_violation)
        generation = torch.zeros((), device=matching.device)
        if generation_loss and self.caption is not None:
            logprobs = self.caption(regions, token_ids)
            steps = torch.arange(token_ids.shape[1], device=token_ids.device).view(1, -1)
            mask = (steps < lengths.view(-1, 1))[:, 1:]
            generation = masked_nll_loss(logprobs, token_ids[:, 1:], mask)
        return {"loss": matching + generation, "matching": matching, "generation": generation}

    def encoder_state_dicts(self) -> tuple[dict, dict]:
        """The authors' checkpoint layout: [image-encoder state_dict, text-encoder state_dict]."""
        return self.img_enc.state_dict(), self.txt_enc.state_dict()
