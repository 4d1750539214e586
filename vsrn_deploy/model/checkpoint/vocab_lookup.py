"""Finding the vocabulary that goes with a model: the authors' `<data_name>_vocab.pkl|.json` where
they keep it (`find_authors_vocab`), and the one lookup every command uses (`resolve_vocab`)."""

from __future__ import annotations

import os
from collections.abc import Iterable
from pathlib import Path

from vsrn_deploy.core.errors import VsrnError
from vsrn_deploy.data.vocab import Vocabulary, load_vocab
from vsrn_deploy.model.checkpoint.loaded import LoadedCheckpoint

__all__ = ["find_authors_vocab", "resolve_vocab"]

# a source checkout keeps the authors' vocabularies in shared/vocab, inside it or beside it
_REPO = Path(__file__).resolve().parents[3]
_SHARED_VOCAB_DIRS = (_REPO / "shared" / "vocab", _REPO.parent / "shared" / "vocab")


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
