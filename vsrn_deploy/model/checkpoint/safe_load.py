"""Reading a checkpoint file without running code from it.

Every file is read with ``torch.load(weights_only=True)``, allowing `argparse.Namespace` (the
authors' `opt`) and NumPy scalars beyond torch's own weights-only set, so a hostile pickle fails
before any of its code runs. Each failure becomes one `VsrnError` line: missing, empty, truncated,
refused (a global outside the allow-list), or CUDA-tagged with no GPU here.
"""

from __future__ import annotations

import argparse
import pickle
import struct
import warnings
import zipfile
from pathlib import Path
from typing import Any

import torch

from vsrn_deploy.core.contract import BEST_CHECKPOINT_NAME
from vsrn_deploy.core.errors import VsrnError


def _safe_globals() -> list[Any]:
    """Globals allowed beyond torch's weights-only set.

    The authors' `opt` Namespace, and NumPy scalars (a `best_rsum` computed with NumPy pickles as
    `numpy.core.multiarray.scalar(dtype, raw bytes)`): data constructors that run no user code.
    """
    import numpy as np

    allowed: list[Any] = [argparse.Namespace, np.dtype]
    scalar = (np._core if hasattr(np, "_core") else np.core).multiarray.scalar
    allowed += [(scalar, "numpy.core.multiarray.scalar"), (scalar, "numpy._core.multiarray.scalar")]
    allowed += sorted({type(np.dtype(code)) for code in "?bBhHiIlLqQefdg"}, key=str)
    return allowed


# phrases of torch's weights-only unpickler when a file asks for something outside the allow-list
_REFUSED = ("GLOBAL", "global", "reduce", "new object", "BUILD", "build", "persistent")


def _torch_load(path: Path, map_location: Any) -> Any:
    if path.is_dir():
        raise VsrnError(f"checkpoint {path} is a folder; give the checkpoint file, e.g. "
                        f"{path}/{BEST_CHECKPOINT_NAME}")
    if not path.is_file():
        raise VsrnError(f"checkpoint not found: {path}")
    size = path.stat().st_size
    if size == 0:
        raise VsrnError(f"checkpoint {path} is empty (0 bytes)")
    try:
        with torch.serialization.safe_globals(_safe_globals()), warnings.catch_warnings():
            # torch warns that `encoding` is ignored under weights_only, but its restricted
            # unpickler does use it. latin1 turns Python 2 byte strings into str without ever
            # failing; ASCII is unchanged.
            warnings.filterwarnings("ignore", message="pickle_load_args only works")
            # a plain pickle of another protocol: the unpickler's verdict below is what matters
            warnings.filterwarnings("ignore", message="Detected pickle protocol")
            return torch.load(path, map_location=map_location, weights_only=True, encoding="latin1")
    except pickle.UnpicklingError as exc:
        lines = [line.strip() for line in str(exc).strip().splitlines() if line.strip()]
        hostile = next((line for line in lines if any(word in line for word in _REFUSED)), None)
        if hostile is None:
            # torch wraps the fault in advice (including to retry with weights_only=False, which
            # would run the file's code); keep only the line that names the fault
            advice = ("Weights only load failed", "Check the documentation", "Please file an issue")
            detail = next((line for line in lines if not line.startswith(advice)), "")
            raise VsrnError(f"cannot read {path}: not a PyTorch checkpoint, or corrupt "
                            f"({detail[:200]})") from None
        raise VsrnError(f"refusing to load {path}: it is not a plain weights file and may run code "
                        f"when unpickled ({hostile[:300]})") from None
    except (EOFError, struct.error, zipfile.BadZipFile) as exc:
        raise VsrnError(f"cannot read {path}: the file is truncated or corrupt "
                        f"({type(exc).__name__}: {str(exc)[:200]})") from None
    except RecursionError:
        raise VsrnError(f"cannot read {path}: it is nested too deeply to be a checkpoint") from None
    except RuntimeError as exc:
        msg = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        msg = msg.split(". ")[0]  # torch appends paragraphs of advice
        if "CUDA" in msg or "cuda" in msg:
            raise VsrnError(f"cannot load {path} onto {map_location!r}: no usable CUDA GPU here; "
                            "use --device cpu (map_location='cpu' in Python)") from None
        raise VsrnError(f"cannot read {path}: not a PyTorch checkpoint, or truncated ({msg[:300]})") \
            from None
    except (ValueError, TypeError, KeyError, AttributeError, OSError, UnicodeDecodeError) as exc:
        raise VsrnError(f"cannot read {path}: not a PyTorch checkpoint, or corrupt "
                        f"({type(exc).__name__}: {str(exc)[:200]})") from None
