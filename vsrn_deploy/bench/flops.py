"""Analytic FLOP and weight-byte counts of the VSRN encoders, for the roofline columns.

Counts are matrix-multiply FLOPs (2 per multiply-add) of one item, in the formulation every backend
executes: elementwise work (l2norm, GRU gates, biases, BatchNorm) is below 0.1% of the total at the
paper's sizes and is left out, as roofline tools do. At the paper's sizes (k=36 regions, F=D=2048):

    fc                    2 k F D                         =  0.302 GFLOP
    4 x Rs_GCN            4 x (4 x 2 k D^2 + 2 x 2 k^2 D)  =  4.874 GFLOP  (g, theta, phi, W; R, R g)
    img_rnn (GRU)         2 k D 3D (input) + 2 k D 3D (recurrent) = 1.812 GFLOP
    image encoder total                                    =  6.988 GFLOP

The text encoder does 2 x 3D (W + D) FLOPs per token (GRU input and recurrent projections; the
embedding is a gather): 28.9 MFLOP per token at W=300, D=2048.
"""

from __future__ import annotations

from vsrn_deploy.model.config import VSRNConfig


def _gru_flops(input_size: int, hidden: int, steps: int) -> int:
    """Matmul FLOPs of a one-layer GRU over `steps` steps (input + recurrent projections)."""
    return steps * 2 * 3 * hidden * (input_size + hidden)


FORMS = ("authors", "deploy")


def _gcn_projections(form: str) -> int:
    """D x D projections per GCN layer: theta, phi, g and W; the deploy form folds W into g."""
    if form not in FORMS:
        raise ValueError(f"form must be one of {FORMS}, got {form!r}")
    return 4 if form == "authors" else 3


def image_encoder_flops(cfg: VSRNConfig, form: str = "authors") -> int:
    """Matmul FLOPs of the image encoder for one image.

    Args:
        cfg: the model configuration.
        form: "authors" (the training formulation: the model's nominal FLOPs) or "deploy" (what
            the exported graphs execute: W folded into g, no recurrent matmul at the first step).

    Returns:
        FLOPs per image (2 per multiply-add).
    """
    k, f, d = cfg.num_regions, cfg.img_dim, cfg.embed_size
    fc = 2 * k * f * d
    # per layer: theta, phi, g (and W) projections (1x1 convs), then theta^T phi and R g^T
    gcn = cfg.gcn_layers * (_gcn_projections(form) * 2 * k * d * d + 2 * (2 * k * k * d))
    pool = _gru_flops(d, d, k) if cfg.img_pool == "gru" else 0
    if form == "deploy" and cfg.img_pool == "gru":
        pool -= 2 * d * 3 * d  # h0 = 0: the first step has no recurrent matmul
    return fc + gcn + pool


def text_encoder_flops(cfg: VSRNConfig, tokens: float) -> float:
    """Matmul FLOPs of the text encoder for one caption of `tokens` tokens.

    Every backend runs the GRU over the padded batch, so pass the padded width to count the work
    executed (or the mean caption length to count the useful work).

    Args:
        cfg: the model configuration.
        tokens: tokens per caption (may be a mean, hence float).

    Returns:
        FLOPs per caption.
    """
    flops = 0.0
    in_size = cfg.word_dim
    for _ in range(cfg.text_layers):
        flops += tokens * 2 * 3 * cfg.embed_size * (in_size + cfg.embed_size)
        in_size = cfg.embed_size
    return flops


def image_encoder_weight_params(cfg: VSRNConfig, form: str = "authors") -> int:
    """Number of matmul weight parameters of the image encoder (biases and BatchNorm excluded)."""
    d = cfg.embed_size
    n = cfg.img_dim * d + cfg.gcn_layers * _gcn_projections(form) * d * d
    if cfg.img_pool == "gru":
        n += 2 * 3 * d * d
    return n


def image_encoder_streamed_weight_bytes(cfg: VSRNConfig, bytes_per_param: int, form: str = "authors") -> int:
    """Bytes of weights one batch-1 image reads from memory.

    Every weight is read once, except the GRU's recurrent matrix (3D x D, 50 MB in FP32 at the
    paper's size), which is larger than the last-level cache of common CPUs and is read again at
    each of the k steps.

    Args:
        cfg: the model configuration.
        bytes_per_param: 4 for FP32, 2 for FP16.
        form: "authors" or "deploy" (see `image_encoder_flops`).

    Returns:
        Bytes read per image at batch 1.
    """
    n = image_encoder_weight_params(cfg, form)
    if cfg.img_pool == "gru":
        n += (cfg.num_regions - 1) * 3 * cfg.embed_size * cfg.embed_size
    return n * bytes_per_param


def text_encoder_streamed_weight_bytes(cfg: VSRNConfig, tokens: int, bytes_per_param: int) -> int:
    """Bytes of GRU weights one batch-1 caption of `tokens` tokens reads (recurrent matrix per step)."""
    d = cfg.embed_size
    n = 3 * d * cfg.word_dim + tokens * 3 * d * d
    return n * bytes_per_param
