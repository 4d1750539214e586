"""An independent NumPy (float64) implementation of the authors' VSRN encoders, for tests.

Written from the description of the authors' code (see shared/reference/vsrn-original.md), not from
vsrn_deploy.model: it works on the raw state dicts (the checkpoint keys) with explicit matrix math.
Deliberately faithful to their quirks: `l2norm` always over axis 1 with no epsilon (the region axis
on [B, k, D] tensors), the GCN affinity divided by the number of regions, the GRU gate order r, z, n,
and the text encoder's per-caption processing (their packed sequences process each caption alone up
to its length, which is what this does, one caption at a time).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np

BN_EPS = 1e-5


def as_numpy(state_dict: Mapping) -> dict[str, np.ndarray]:
    """torch state dict -> float64 numpy arrays (integer buffers are kept as they are)."""
    out = {}
    for key, value in state_dict.items():
        arr = value.detach().cpu().numpy()
        out[key] = arr.astype(np.float64) if arr.dtype.kind == "f" else arr
    return out


def l2norm(x: np.ndarray) -> np.ndarray:
    """The authors' l2norm: over axis 1, no epsilon."""
    return x / np.sqrt((x ** 2).sum(axis=1, keepdims=True))


def sigmoid(x: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-x))


def conv1x1(sd: Mapping[str, np.ndarray], prefix: str, v: np.ndarray) -> np.ndarray:
    """Conv1d with kernel 1 on v [B, C, k]: W [O, C, 1] -> out[b, o, j] = sum_c W[o, c] v[b, c, j] + b[o]."""
    weight = sd[f"{prefix}.weight"][:, :, 0]
    return np.einsum("oc,bcj->boj", weight, v) + sd[f"{prefix}.bias"][None, :, None]


def batchnorm_eval(sd: Mapping[str, np.ndarray], prefix: str, x: np.ndarray) -> np.ndarray:
    """BatchNorm1d in eval mode on x [B, C] or [B, C, k] (channels on axis 1)."""
    shape = (1, -1) + (1,) * (x.ndim - 2)
    mean = sd[f"{prefix}.running_mean"].reshape(shape)
    var = sd[f"{prefix}.running_var"].reshape(shape)
    gamma = sd[f"{prefix}.weight"].reshape(shape)
    beta = sd[f"{prefix}.bias"].reshape(shape)
    return (x - mean) / np.sqrt(var + BN_EPS) * gamma + beta


def rs_gcn(sd: Mapping[str, np.ndarray], n: int, v: np.ndarray) -> np.ndarray:
    """Rs_GCN_n on v [B, D, k]."""
    p = f"Rs_GCN_{n}"
    g_v = conv1x1(sd, f"{p}.g", v).transpose(0, 2, 1)  # [B, k, D]
    theta_v = conv1x1(sd, f"{p}.theta", v).transpose(0, 2, 1)  # [B, k, D]
    phi_v = conv1x1(sd, f"{p}.phi", v)  # [B, D, k]
    r = theta_v @ phi_v  # [B, k, k]
    r = r / r.shape[-1]
    y = (r @ g_v).transpose(0, 2, 1)  # [B, D, k]
    w_y = batchnorm_eval(sd, f"{p}.W.1", conv1x1(sd, f"{p}.W.0", y))
    return w_y + v


def gru_step(x: np.ndarray, h: np.ndarray, w_ih: np.ndarray, w_hh: np.ndarray, b_ih: np.ndarray,
             b_hh: np.ndarray) -> np.ndarray:
    """One GRU step for a single sample: x [I], h [H] -> h' [H]; gates stacked r, z, n."""
    hidden = h.shape[0]
    gi = w_ih @ x + b_ih
    gh = w_hh @ h + b_hh
    r = sigmoid(gi[:hidden] + gh[:hidden])
    z = sigmoid(gi[hidden:2 * hidden] + gh[hidden:2 * hidden])
    n = np.tanh(gi[2 * hidden:] + r * gh[2 * hidden:])
    return (1.0 - z) * n + z * h


def gru_sequence(sd: Mapping[str, np.ndarray], prefix: str, xs: np.ndarray, layers: int = 1) -> np.ndarray:
    """Run a (stacked) GRU over one sequence xs [T, I] from a zero state; returns outputs [T, H]."""
    outputs = xs
    for layer in range(layers):
        w_ih = sd[f"{prefix}.weight_ih_l{layer}"]
        w_hh = sd[f"{prefix}.weight_hh_l{layer}"]
        b_ih = sd[f"{prefix}.bias_ih_l{layer}"]
        b_hh = sd[f"{prefix}.bias_hh_l{layer}"]
        h = np.zeros(w_hh.shape[1])
        steps = []
        for x in outputs:
            h = gru_step(x, h, w_ih, w_hh, b_ih, b_hh)
            steps.append(h)
        outputs = np.stack(steps)
    return outputs


def image_forward(sd: Mapping[str, np.ndarray], features: np.ndarray, data_name: str,
                  no_imgnorm: bool = False, use_abs: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """The authors' image encoder: features [B, k, F] -> (embedding [B, D], V* [B, k, D])."""
    x = np.einsum("bkf,df->bkd", features.astype(np.float64), sd["fc.weight"]) + sd["fc.bias"]
    if data_name != "f30k_precomp":
        x = l2norm(x)  # over the REGION axis
    v = x.transpose(0, 2, 1)  # [B, D, k]
    n = 1
    while f"Rs_GCN_{n}.g.weight" in sd:
        v = rs_gcn(sd, n, v)
        n += 1
    regions = l2norm(v.transpose(0, 2, 1))  # [B, k, D], region axis again
    emb = np.stack([gru_sequence(sd, "img_rnn", regions[b])[-1] for b in range(regions.shape[0])])
    if data_name == "f30k_precomp":
        emb = batchnorm_eval(sd, "bn", emb)
    if not no_imgnorm:
        emb = l2norm(emb)
    if use_abs:
        emb = np.abs(emb)
    return emb, regions


def text_forward(sd: Mapping[str, np.ndarray], captions: Sequence[Sequence[int]], layers: int = 1,
                 use_abs: bool = False) -> np.ndarray:
    """The authors' text encoder on a list of id sequences (each its own length) -> [B, D]."""
    rows = []
    for ids in captions:
        words = sd["embed.weight"][np.asarray(ids, dtype=np.int64)]  # [len, W]
        rows.append(gru_sequence(sd, "rnn", words, layers)[-1])
    emb = l2norm(np.stack(rows))
    return np.abs(emb) if use_abs else emb


# --- test helpers (torch): give every parameter and BatchNorm buffer a non-trivial value ----------
def randomize_(module, seed: int = 0, scale: float = 0.5):
    """Fill `module`'s parameters and BN buffers with seeded random values, in place.

    Weights get N(0, scale^2 / fan_in) so the GCN's cubic terms stay moderate; BatchNorm gets
    gamma in [0.5, 1.5], small beta/mean and variance in [0.5, 2] (the authors' zero-initialised BN
    would make every GCN layer the identity and hide porting bugs).
    """
    import torch

    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, tensor in module.state_dict(keep_vars=True).items():
            if not tensor.is_floating_point():
                continue
            leaf = name.rsplit(".", 1)[-1]
            shape = tensor.shape
            is_bn = name.endswith(("running_mean", "running_var")) or (
                tensor.dim() == 1 and f"{name.rsplit('.', 1)[0]}.running_mean" in module.state_dict())
            if leaf == "running_var":
                value = torch.rand(shape, generator=gen) * 1.5 + 0.5
            elif leaf == "running_mean" or (is_bn and leaf == "bias"):
                value = torch.randn(shape, generator=gen) * 0.1
            elif is_bn and leaf == "weight":
                value = torch.rand(shape, generator=gen) + 0.5
            elif tensor.dim() >= 2:
                fan_in = shape[1] * (shape[2] if tensor.dim() > 2 else 1)
                value = torch.randn(shape, generator=gen) * scale / fan_in ** 0.5
            else:
                value = torch.randn(shape, generator=gen) * 0.1
            tensor.copy_(value)
    return module
