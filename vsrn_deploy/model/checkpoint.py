"""Checkpoints: vsrn-deploy's own format and the authors' `model_best.pth.tar`, loaded safely.

vsrn-deploy's format is a dict (loadable with ``torch.load(weights_only=True)``)::

    {"format": "vsrn-deploy-checkpoint", "format_version": 1,
     "config": asdict(VSRNConfig), "with_caption": bool, "state_dict": VSRN.state_dict(),
     "vocab": {"words": [...]} | None, "vocab_path": str | None,
     "train_state": {epoch, step, best_rsum, optimizer, scheduler, rng, ...}, "versions": {...}}

The authors' format (their train.py) is ``{"epoch", "model": [image_sd, text_sd], "best_rsum",
"opt": argparse.Namespace, "Eiters"}``; the released files were written by PyTorch 0.4 under
Python 2 on a GPU (legacy non-zip serialisation, byte strings, CUDA-tagged storages). Every file is
read with ``torch.load(weights_only=True)``, allowing `argparse.Namespace` and nothing else beyond
torch's own weights-only set, so a hostile pickle fails before any of its code runs. The config is
derived from `opt` and checked against the weights' shapes. Their files carry no caption generator,
so their models are built with ``with_caption=False``.
"""

from __future__ import annotations

import argparse
import os
import pickle
import struct
import warnings
import zipfile
from collections import OrderedDict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from vsrn_deploy.core.errors import VsrnError
from vsrn_deploy.data.vocab import Vocabulary, load_vocab
from vsrn_deploy.io.files import atomic_writer, sha256_file
from vsrn_deploy.io.safe_pickle import decode_py2_str
from vsrn_deploy.model import VSRN
from vsrn_deploy.model.config import F30K_DATA_NAME, VSRNConfig

__all__ = ["FORMAT_NAME", "FORMAT_VERSION", "LoadedCheckpoint", "save_checkpoint", "load_checkpoint",
           "load_model", "save_authors_checkpoint", "authors_opt", "config_from_authors",
           "find_authors_vocab", "resolve_vocab"]

FORMAT_NAME = "vsrn-deploy-checkpoint"
FORMAT_VERSION = 1
# a source checkout keeps the authors' vocabularies in shared/vocab, inside it or beside it
_REPO = Path(__file__).resolve().parents[2]
_SHARED_VOCAB_DIRS = (_REPO / "shared" / "vocab", _REPO.parent / "shared" / "vocab")


@dataclass
class LoadedCheckpoint:
    """A loaded checkpoint of either kind.

    Attributes:
        config: the model config.
        model: the VSRN, in eval mode (authors' files: no caption generator).
        vocab: the vocabulary when the file carries it or it was found beside it, else None.
        vocab_path: where the vocabulary came from / is referenced, if anywhere.
        train_state: epoch, step, best_rsum, ... (authors' files: also `authors_opt`).
        kind: "vsrn-deploy" or "authors".
        sha256: hex digest of the file.
        path: the file.
    """

    config: VSRNConfig
    model: VSRN
    vocab: Vocabulary | None
    vocab_path: str | None
    train_state: dict[str, Any] = field(default_factory=dict)
    kind: str = "vsrn-deploy"
    sha256: str = ""
    path: str = ""


# --- safe reading -----------------------------------------------------------------------------
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
                        f"{path}/model_best.pt")
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


# --- state dicts ------------------------------------------------------------------------------
def _clean_state_dict(sd: Any, what: str, source: str) -> dict[str, torch.Tensor]:
    if not isinstance(sd, Mapping):
        raise VsrnError(f"{source}: the {what} weights are a {type(sd).__name__}, not a state dict")
    out = {}
    for key, value in sd.items():
        key = decode_py2_str(key) if isinstance(key, str | bytes) else key
        if not isinstance(key, str) or not isinstance(value, torch.Tensor):
            raise VsrnError(f"{source}: the {what} state dict holds {key!r}: {type(value).__name__}, "
                            "expected tensors under string keys")
        out[key.removeprefix("module.")] = value  # DataParallel prefixes
    return out


def _load_strict(module: torch.nn.Module, sd: dict[str, torch.Tensor], what: str, source: str) -> None:
    """load_state_dict(strict=True) with one readable line for missing/extra/mis-shaped keys."""
    expected = module.state_dict()
    sd = dict(sd)
    for key in expected:
        # PyTorch 0.4.0 wrote BatchNorm without num_batches_tracked; it only matters for training
        if key.endswith("num_batches_tracked") and key not in sd:
            sd[key] = torch.zeros((), dtype=torch.long)
    missing = [k for k in expected if k not in sd]
    unexpected = [k for k in sd if k not in expected]
    wrong = [f"{k} {tuple(sd[k].shape)} (expected {tuple(v.shape)})" for k, v in expected.items()
             if k in sd and sd[k].shape != v.shape]
    problems = []
    if missing:
        problems.append(f"missing {_short(missing)}")
    if unexpected:
        problems.append(f"unexpected {_short(unexpected)}")
    if wrong:
        problems.append(f"wrong shape {_short(wrong)}")
    if problems:
        raise VsrnError(f"{source}: the {what} weights do not fit the model: " + "; ".join(problems))
    module.load_state_dict(sd, strict=True)


def _short(items: list[str], limit: int = 6) -> str:
    shown = ", ".join(items[:limit])
    return f"[{shown}{', ...' if len(items) > limit else ''}] ({len(items)} keys)"


# --- the authors' checkpoints -----------------------------------------------------------------
def _opt_to_dict(opt: Any, source: str) -> dict[str, Any] | None:
    if opt is None:
        return None
    if isinstance(opt, argparse.Namespace):
        opt = vars(opt)
    if not isinstance(opt, Mapping):
        raise VsrnError(f"{source}: 'opt' is a {type(opt).__name__}, expected argparse.Namespace")

    def fix(value: Any) -> Any:
        if type(value).__module__ == "numpy" and hasattr(value, "item"):
            return value.item()  # NumPy scalars -> plain Python numbers
        if isinstance(value, bytes):
            return decode_py2_str(value)
        if isinstance(value, str):
            # latin1-decoded Python 2 bytes: recover UTF-8 text where it was UTF-8
            try:
                return value.encode("latin-1").decode("utf-8")
            except (UnicodeEncodeError, UnicodeDecodeError):
                return value
        if isinstance(value, list | tuple):
            return type(value)(fix(v) for v in value)
        return value

    return {fix(k): fix(v) for k, v in opt.items()}


def _count(prefix_fmt: str, keys: Iterable[str], start: int) -> int:
    keys = set(keys)
    n = 0
    while prefix_fmt.format(start + n) in keys:
        n += 1
    return n


def config_from_authors(opt: Mapping[str, Any] | None, img_sd: Mapping[str, torch.Tensor],
                        txt_sd: Mapping[str, torch.Tensor], source: str = "checkpoint") -> VSRNConfig:
    """Derive the VSRNConfig from the authors' `opt` and check it against the weights' shapes.

    Sizes (vocabulary, dims, GCN and GRU layers) come from the shapes; the variant comes from
    ``opt.data_name`` (exactly 'f30k_precomp' is the Flickr30K formulation) and must agree with the
    presence of the final BatchNorm (`bn.*`). Without `opt`, the variant follows `bn.*`.

    Args:
        opt: the checkpoint's options as a dict, or None.
        img_sd: image-encoder state dict.
        txt_sd: text-encoder state dict.
        source: the file, for messages.
    Returns:
        The config.
    Raises:
        VsrnError: the weights are not VSRN's, or `opt` and the weights disagree (all listed).
    """
    for sd, key, what in ((img_sd, "fc.weight", "image"), (txt_sd, "embed.weight", "text")):
        if key not in sd or sd[key].dim() != 2:
            raise VsrnError(f"{source}: the {what}-encoder weights have no 2-D '{key}': "
                            f"not a VSRN checkpoint (keys: {_short(sorted(sd))})")
    embed_size, img_dim = (int(s) for s in img_sd["fc.weight"].shape)
    vocab_size, word_dim = (int(s) for s in txt_sd["embed.weight"].shape)
    gcn_layers = _count("Rs_GCN_{}.g.weight", img_sd, 1)
    text_layers = _count("rnn.weight_ih_l{}", txt_sd, 0)
    if text_layers == 0:
        raise VsrnError(f"{source}: the text-encoder weights have no GRU (rnn.weight_ih_l0)")
    has_bn = "bn.weight" in img_sd
    has_rnn = "img_rnn.weight_ih_l0" in img_sd
    opt = dict(opt or {})
    problems = []
    data_name = opt.get("data_name")
    if data_name is not None:
        is_f30k = data_name == F30K_DATA_NAME
        if is_f30k and not has_bn:
            problems.append(f"opt.data_name is {data_name!r} (Flickr30K variant, final BatchNorm) "
                            "but the image weights have no bn.*")
        if not is_f30k and has_bn:
            problems.append(f"opt.data_name is {data_name!r} (COCO variant, no final BatchNorm) "
                            "but the image weights have bn.* (a Flickr30K model)")
    else:
        is_f30k = has_bn
        data_name = F30K_DATA_NAME if has_bn else "coco_precomp"
    checks = (("embed_size", embed_size, "fc.weight has {} rows"),
              ("img_dim", img_dim, "fc.weight has {} columns"),
              ("word_dim", word_dim, "embed.weight has {} columns"),
              ("vocab_size", vocab_size, "embed.weight has {} rows"),
              ("num_layers", text_layers, "the text GRU has {} layers"))
    for key, actual, words in checks:
        if opt.get(key) is not None and opt[key] != actual:
            problems.append(f"opt.{key} is {opt[key]!r} but {words.format(actual)}")
    measure = opt.get("measure", "cosine")
    if measure != "cosine":
        problems.append(f"opt.measure is {measure!r}; only 'cosine' is supported")
    if problems:
        raise VsrnError(f"{source}: the options and the weights disagree: " + "; ".join(problems))
    extra = {}
    if isinstance(opt.get("max_len"), int):
        extra["caption_max_len"] = opt["max_len"]
    return VSRNConfig(
        vocab_size=vocab_size, img_dim=img_dim, embed_size=embed_size, word_dim=word_dim,
        gcn_layers=gcn_layers, text_layers=text_layers, fc_norm=not is_f30k, final_bn=is_f30k,
        img_pool="gru" if has_rnn else "mean", img_norm=not bool(opt.get("no_imgnorm", False)),
        use_abs=bool(opt.get("use_abs", False)), data_name=str(data_name), **extra)


def find_authors_vocab(data_name: str, *, checkpoint_path: str | os.PathLike[str] | None = None,
                       vocab_path: str | None = None,
                       search_dirs: Iterable[str | os.PathLike[str]] = ()) -> Path | None:
    """Look for `<data_name>_vocab.pkl` (or `.json`) where the authors' files usually are.

    Order: `search_dirs`; `vocab_path` (their `opt.vocab_path`, relative paths tried against the
    checkpoint's folder and the working directory); the checkpoint's folder and its `vocab/`; and
    `shared/vocab` inside or beside a source checkout.

    Args:
        data_name: e.g. 'coco_precomp'.
        checkpoint_path: the checkpoint file.
        vocab_path: the folder named in the checkpoint's options.
        search_dirs: extra folders to try first.
    Returns:
        The first existing file, or None.
    """
    dirs: list[Path] = [Path(d) for d in search_dirs]
    ckpt_dir = Path(checkpoint_path).resolve().parent if checkpoint_path else None
    if vocab_path:
        vp = Path(vocab_path)
        if vp.is_file():
            return vp
        if not vp.is_absolute() and ckpt_dir is not None:
            dirs.append(ckpt_dir / vp)
        dirs.append(vp)
    if ckpt_dir is not None:
        dirs += [ckpt_dir, ckpt_dir / "vocab"]
    dirs += _SHARED_VOCAB_DIRS
    for folder in dirs:
        for suffix in ("_vocab.pkl", "_vocab.json"):
            candidate = folder / f"{data_name}{suffix}"
            if candidate.is_file():
                return candidate
    return None


def resolve_vocab(loaded: LoadedCheckpoint | None, explicit: str | os.PathLike[str] | None = None, *,
                  export_dir: str | os.PathLike[str] | None = None,
                  search_dirs: Iterable[str | os.PathLike[str]] = (), names: Iterable[str] = (),
                  vocab_size: int | None = None,
                  required: bool = True) -> tuple[Vocabulary | None, str | None]:
    """The vocabulary that goes with a model: the one lookup every command uses.

    Order: `explicit` (--vocab; it must exist); the checkpoint's own (vsrn-deploy checkpoints carry
    it; for the authors' files, the one found beside them at load); `<export_dir>/vocab.json`;
    `<name>_vocab.pkl|.json` where the authors keep it (`find_authors_vocab`, `search_dirs` first,
    for the model's data_name and each of `names`; one of another size is passed over).

    Args:
        loaded: the loaded checkpoint (None: only `explicit` and `export_dir` are tried).
        explicit: a vocabulary file the user named.
        export_dir: an export folder whose vocab.json may serve.
        search_dirs: extra folders for the authors' file names (e.g. `<data>/../vocab`).
        names: extra data names to look for (a dataset named differently from the model's).
        vocab_size: the model's embedding rows (default: the checkpoint's); a vocabulary of another
            size belongs to another model and is refused.
        required: raise when none is found (else return (None, None)).

    Returns:
        (vocabulary, where it came from).

    Raises:
        VsrnError: `explicit` missing; none found (when required); a size mismatch.
    """
    vocab: Vocabulary | None = None
    source: str | None = None
    rows = vocab_size if vocab_size is not None or loaded is None else loaded.config.vocab_size
    if explicit is not None:
        if not Path(explicit).is_file():
            raise VsrnError(f"vocabulary file {explicit} not found (no such file)")
        vocab, source = load_vocab(explicit), str(explicit)
    elif loaded is not None and loaded.vocab is not None:
        vocab, source = loaded.vocab, loaded.vocab_path or "(inside the checkpoint)"
    elif export_dir is not None and (Path(export_dir) / "vocab.json").is_file():
        source = str(Path(export_dir) / "vocab.json")
        vocab = load_vocab(source)
    elif loaded is not None:
        opt = (loaded.train_state or {}).get("authors_opt") or {}
        for name in dict.fromkeys((loaded.config.data_name, *names)):
            found = find_authors_vocab(name, checkpoint_path=loaded.path or None, search_dirs=search_dirs,
                                       vocab_path=opt.get("vocab_path") or loaded.vocab_path)
            candidate = load_vocab(found) if found is not None else None
            if candidate is not None and (rows is None or len(candidate) == rows):  # else another model's
                vocab, source = candidate, str(found)
                break
    if vocab is None:
        if required:
            where = f" {loaded.path}" if loaded is not None and loaded.path else ""
            data_name = loaded.config.data_name if loaded is not None else "<data_name>"
            raise VsrnError(f"no vocabulary for the checkpoint{where}: it carries none and no "
                            f"{data_name}_vocab.pkl/.json was found where the authors keep it; "
                            "pass --vocab PATH")
        return None, None
    if rows is not None and len(vocab) != rows:
        raise VsrnError(f"vocabulary {source} has {len(vocab)} words but the model's embedding table has "
                        f"{rows} rows: it belongs to another model; pass the right one with --vocab")
    return vocab, source


def _load_authors(obj: dict, path: Path, map_location: Any) -> LoadedCheckpoint:
    source = str(path)
    weights = obj["model"]
    if not isinstance(weights, list | tuple) or len(weights) < 2:
        raise VsrnError(f"{source}: 'model' must be [image state_dict, text state_dict] "
                        f"(found {type(weights).__name__})")
    img_sd = _clean_state_dict(weights[0], "image-encoder", source)
    txt_sd = _clean_state_dict(weights[1], "text-encoder", source)
    opt = _opt_to_dict(obj.get("opt"), source)
    config = config_from_authors(opt, img_sd, txt_sd, source)
    model = VSRN(config, with_caption=False)  # their files carry no caption generator
    _load_strict(model.img_enc, img_sd, "image-encoder", source)
    _load_strict(model.txt_enc, txt_sd, "text-encoder", source)
    model = _to_device(model, map_location).eval()
    vocab, vocab_file = None, find_authors_vocab(config.data_name, checkpoint_path=path,
                                                 vocab_path=(opt or {}).get("vocab_path"))
    if vocab_file is not None:
        try:
            candidate = load_vocab(vocab_file)
        except VsrnError:
            candidate = None
        if candidate is not None and len(candidate) == config.vocab_size:
            vocab = candidate
        else:
            vocab_file = None
    best = obj.get("best_rsum")
    train_state = {"epoch": obj.get("epoch"), "step": obj.get("Eiters"),
                   "best_rsum": float(best) if isinstance(best, int | float) else best,
                   "authors_opt": opt}
    return LoadedCheckpoint(config=config, model=model, vocab=vocab,
                            vocab_path=str(vocab_file) if vocab_file else None,
                            train_state=train_state, kind="authors", sha256=sha256_file(path),
                            path=source)


def _to_device(model: VSRN, map_location: Any) -> VSRN:
    if map_location is None or callable(map_location) or isinstance(map_location, dict):
        return model
    device = torch.device(map_location)
    return model if device.type == "cpu" else model.to(device)


# --- vsrn-deploy's own format -----------------------------------------------------------------
_PLAIN = (str, int, float, bool, type(None), torch.Tensor, torch.Size, torch.dtype, torch.device)


def _check_plain(value: Any, where: str) -> None:
    """train_state must load with weights_only=True: plain containers, numbers, strings, tensors."""
    if isinstance(value, Mapping):
        for k, v in value.items():
            if not isinstance(k, str | int):
                raise TypeError(f"{where} has a key of type {type(k).__name__}; use str or int keys")
            _check_plain(v, f"{where}[{k!r}]")
    elif isinstance(value, list | tuple):
        for i, v in enumerate(value):
            _check_plain(v, f"{where}[{i}]")
    elif not isinstance(value, _PLAIN):
        raise TypeError(f"{where} is a {type(value).__module__}.{type(value).__name__}; a checkpoint "
                        "stores only dicts, lists, tuples, numbers, strings and tensors "
                        "(convert numpy arrays with torch.from_numpy)")


def save_checkpoint(path: str | os.PathLike[str], model: VSRN, *, vocab: Vocabulary | None = None,
                    vocab_path: str | os.PathLike[str] | None = None,
                    train_state: Mapping[str, Any] | None = None) -> Path:
    """Write a vsrn-deploy checkpoint atomically (temp file in the same folder, then rename).

    Args:
        path: destination, e.g. `runs/x/model_best.pt`.
        model: the VSRN (caption generator included when it has one).
        vocab: store the vocabulary inline (its word list).
        vocab_path: or store a reference to a vocabulary file (relative to the checkpoint's folder
            if it is inside it, else as given).
        train_state: epoch, step, best_rsum, optimizer/scheduler state dicts, rng states...: plain
            containers, numbers, strings and tensors only.
    Returns:
        The path written.
    """
    path = Path(path)
    state = dict(train_state or {})
    _check_plain(state, "train_state")
    ref = None
    if vocab_path is not None:
        vp = Path(vocab_path)
        try:
            ref = str(vp.resolve().relative_to(path.resolve().parent))
        except ValueError:
            ref = str(vp)
    payload = {
        "format": FORMAT_NAME,
        "format_version": FORMAT_VERSION,
        "config": model.config.to_dict(),
        "with_caption": model.caption is not None,
        "state_dict": {k: v.detach().cpu() for k, v in model.state_dict().items()},
        "vocab": {"words": vocab.words} if vocab is not None else None,
        "vocab_path": ref,
        "train_state": state,
        "versions": {"torch": str(torch.__version__), "vsrn_deploy": _version()},
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_writer(path) as fh:
        torch.save(payload, fh)
    return path


def _version() -> str:
    from vsrn_deploy import __version__

    return __version__


def _load_own(obj: dict, path: Path, map_location: Any) -> LoadedCheckpoint:
    source = str(path)
    version = obj.get("format_version")
    if not isinstance(version, int) or version > FORMAT_VERSION:
        raise VsrnError(f"{source}: checkpoint format version {version!r} is newer than this "
                        f"vsrn-deploy understands ({FORMAT_VERSION}); upgrade vsrn-deploy")
    if not isinstance(obj.get("config"), Mapping):
        raise VsrnError(f"{source}: checkpoint has no config")
    config = VSRNConfig.from_dict(dict(obj["config"]))
    model = VSRN(config, with_caption=bool(obj.get("with_caption", True)))
    sd = _clean_state_dict(obj.get("state_dict"), "model", source)
    _load_strict(model, sd, "model", source)
    model = _to_device(model, map_location).eval()
    vocab = None
    inline = obj.get("vocab")
    if isinstance(inline, Mapping) and isinstance(inline.get("words"), list):
        vocab = Vocabulary.from_words(inline["words"])
    vocab_path = obj.get("vocab_path")
    if vocab is None and vocab_path:
        resolved = Path(vocab_path)
        if not resolved.is_absolute():
            resolved = path.resolve().parent / resolved
        if resolved.is_file():
            vocab = load_vocab(resolved)
            vocab_path = str(resolved)
    if vocab is not None and len(vocab) != config.vocab_size:
        raise VsrnError(f"{source}: its vocabulary has {len(vocab)} words but the model expects "
                        f"{config.vocab_size}")
    return LoadedCheckpoint(config=config, model=model, vocab=vocab, vocab_path=vocab_path,
                            train_state=dict(obj.get("train_state") or {}), kind="vsrn-deploy",
                            sha256=sha256_file(path), path=source)


def load_checkpoint(path: str | os.PathLike[str], map_location: Any = "cpu") -> LoadedCheckpoint:
    """Load a vsrn-deploy checkpoint or one of the authors' files, never running code from it.

    Args:
        path: the file.
        map_location: where tensors go ("cpu" works for CUDA-tagged files on any machine).
    Returns:
        A LoadedCheckpoint with an eval-mode model.
    Raises:
        VsrnError: missing, empty, truncated, hostile or unrelated file, or inconsistent contents.
    """
    path = Path(path)
    obj = _torch_load(path, map_location)
    if isinstance(obj, Mapping) and obj.get("format") == FORMAT_NAME:
        return _load_own(dict(obj), path, map_location)
    if isinstance(obj, Mapping) and "model" in obj:
        return _load_authors(dict(obj), path, map_location)
    if isinstance(obj, Mapping):
        keys = [str(k) for k in list(obj)[:8]]
        raise VsrnError(f"{path} is a PyTorch file but not a VSRN checkpoint: expected a vsrn-deploy "
                        f"checkpoint or the authors' dict with 'model' and 'opt' (top-level keys: "
                        f"{keys}{' ...' if len(obj) > 8 else ''})")
    raise VsrnError(f"{path} is a PyTorch file holding a {type(obj).__name__}, not a VSRN checkpoint")


def load_model(path: str | os.PathLike[str], map_location: Any = "cpu") -> VSRN:
    """The eval-mode VSRN of a checkpoint of either kind (see `load_checkpoint`)."""
    return load_checkpoint(path, map_location=map_location).model


# --- writing the authors' layout (tests, demos) -----------------------------------------------
def authors_opt(config: VSRNConfig, **overrides: Any) -> dict[str, Any]:
    """Training options like the authors' train.py would record for `config`."""
    opt = {
        "data_path": "./data/", "data_name": config.data_name, "vocab_path": "./vocab/",
        "margin": 0.2, "num_epochs": 30, "batch_size": 128, "word_dim": config.word_dim,
        "embed_size": config.embed_size, "grad_clip": 2.0, "crop_size": 224,
        "num_layers": config.text_layers, "learning_rate": 0.0002,
        "lr_update": 10 if config.data_name == F30K_DATA_NAME else 15, "workers": 10, "log_step": 10,
        "val_step": 500, "logger_name": "runs/runX", "resume": "", "max_violation": True,
        "img_dim": config.img_dim, "finetune": False, "cnn_type": "vgg19", "use_restval": False,
        "measure": "cosine", "use_abs": config.use_abs, "no_imgnorm": not config.img_norm,
        "reset_train": False, "max_len": config.caption_max_len, "vocab_size": config.vocab_size,
    }
    opt.update(overrides)
    return opt


class _AuthorsStylePickler(pickle._Pickler):
    """Pure-Python pickler that can mimic PyTorch 0.4 under Python 2 on a GPU.

    `py2_strings`: every str/bytes becomes a Python 2 `str` (BINSTRING), as Python 2 wrote them.
    `location`: storage location tag written into each persistent id (e.g. 'cuda:0').
    """

    py2_strings = False
    location: str | None = None
    dispatch = pickle._Pickler.dispatch.copy()

    def _save_py2_str(self, obj: str | bytes) -> None:
        if not self.py2_strings:
            (pickle._Pickler.save_str if isinstance(obj, str) else pickle._Pickler.save_bytes)(self, obj)
            return
        data = obj.encode("utf-8") if isinstance(obj, str) else obj
        if len(data) < 256:
            self.write(pickle.SHORT_BINSTRING + bytes([len(data)]) + data)
        else:
            self.write(pickle.BINSTRING + struct.pack("<i", len(data)) + data)
        self.memoize(obj)

    dispatch[str] = _save_py2_str
    dispatch[bytes] = _save_py2_str

    def save_pers(self, pid: Any) -> None:
        # torch's storage ids are ('storage', type, key, location, numel[, view]) in both formats
        if self.location is not None and isinstance(pid, tuple) and pid and pid[0] == "storage":
            pid = (*pid[:3], self.location, *pid[4:])
        super().save_pers(pid)


def _pickle_module(py2_strings: bool, location: str | None) -> Any:
    """A stand-in for the `pickle` module that torch.save uses (Pickler + dump)."""
    pickler_cls = type("Pickler", (_AuthorsStylePickler,), {"py2_strings": py2_strings,
                                                            "location": location})

    class _Module:
        Pickler = pickler_cls

        @staticmethod
        def dump(obj: Any, fh: Any, protocol: int = 2) -> None:
            pickler_cls(fh, protocol=protocol).dump(obj)

    return _Module


def save_authors_checkpoint(path: str | os.PathLike[str], model: VSRN, *,
                            opt: Mapping[str, Any] | None = None, legacy: bool = False,
                            cuda_tagged: bool = False, epoch: int = 29, best_rsum: float = 0.0,
                            eiters: int = 0) -> Path:
    """Write `model` in the authors' checkpoint layout (for tests and demos).

    Args:
        path: destination (their name: `model_best.pth.tar`).
        model: the VSRN; only its image and text encoders are written, like theirs.
        opt: options to record (merged over `authors_opt(model.config)`); stored as a Namespace.
        legacy: the legacy non-zip serialisation with Python 2 byte strings everywhere, as PyTorch
            0.4 under Python 2 wrote the released files.
        cuda_tagged: tag every storage as 'cuda:0' (loading then needs `map_location` on a
            machine without a GPU), as their GPU-trained files are.
        epoch, best_rsum, eiters: the other entries of their dict.
    Returns:
        The path written.
    """
    path = Path(path)
    opt_dict = authors_opt(model.config)
    opt_dict.update(opt or {})
    img_sd, txt_sd = model.encoder_state_dicts()
    obj = {
        "epoch": epoch,
        "model": [OrderedDict((k, v.detach().cpu()) for k, v in img_sd.items()),
                  OrderedDict((k, v.detach().cpu()) for k, v in txt_sd.items())],
        "best_rsum": best_rsum,
        "opt": argparse.Namespace(**opt_dict),
        "Eiters": eiters,
    }
    module = _pickle_module(py2_strings=legacy, location="cuda:0" if cuda_tagged else None)
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_writer(path) as fh:
        torch.save(obj, fh, pickle_module=module, pickle_protocol=2,
                   _use_new_zipfile_serialization=not legacy)
    return path

