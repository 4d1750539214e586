"""Losses: the VSE++ hardest-negative triplet loss L_M and the masked NLL for L_G."""

from __future__ import annotations

import torch


def contrastive_loss(images: torch.Tensor, captions: torch.Tensor, margin: float = 0.2,
                     max_violation: bool = True) -> torch.Tensor:
    """Hinge triplet loss on cosine scores, summed over the batch in both directions.

    Args:
        images: (B, D) l2-normalised image embeddings; row i matches caption row i.
        captions: (B, D) l2-normalised caption embeddings.
        margin: the hinge margin (paper: 0.2).
        max_violation: hardest negative only (VSE++, the paper's setting) instead of the sum.
    Returns:
        A scalar tensor.
    """
    scores = images @ captions.t()  # (B, B)
    diagonal = scores.diagonal().view(-1, 1)
    cost_caption = (margin + scores - diagonal).clamp_min(0)  # image i vs caption j
    cost_image = (margin + scores - diagonal.t()).clamp_min(0)  # caption j vs image i
    eye = torch.eye(scores.shape[0], dtype=torch.bool, device=scores.device)
    cost_caption = cost_caption.masked_fill(eye, 0)
    cost_image = cost_image.masked_fill(eye, 0)
    if max_violation:
        return cost_caption.max(dim=1).values.sum() + cost_image.max(dim=0).values.sum()
    return cost_caption.sum() + cost_image.sum()


def masked_nll_loss(logprobs: torch.Tensor, targets: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Masked negative log-likelihood, summed then divided by the batch size.

    Args:
        logprobs: (B, T, V) log-probabilities.
        targets: (B, T) target ids.
        mask: (B, T) 1 where the target counts.
    """
    picked = logprobs.gather(2, targets.unsqueeze(2)).squeeze(2)  # (B, T)
    return -(picked * mask.to(picked.dtype)).sum() / logprobs.shape[0]
