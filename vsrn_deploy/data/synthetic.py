"""A synthetic dataset in the SCAN precomp layout, for demos, tests and ablations without the real data.

What an image holds: two objects, each a (noun, colour, side) triple, e.g. a red dog on the left
and a blue car on the right. What its regions hold, like bottom-up-attention features
(non-negative, sparse, real-looking magnitudes):

- a few *noun regions* per object: the noun's prototype plus a left/right position code;
- a few *colour regions* per object: the colour's prototype (a part of the object, like an
  attribute box);
- every region of an object also carries that object's *instance code*, a random sparse vector
  drawn fresh for every object of every image (like the shared appearance of overlapping boxes);
- background regions: unmentioned "stuff" prototypes (grass, sky, ...);
- all of it passed through ReLU with noise, and the regions shuffled (the "given" order carries no
  meaning, like detector confidence).

Captions (5 per image) use real words of the authors' COCO vocabulary: "a red dog to the left of a
blue car", "a blue car with a red dog on its left", ...

Why this needs relations between regions: images come in groups of four that share both nouns and
both colours and differ only in which colour belongs to which noun and which noun is on which side.
The sum (or mean) of the regions is the same for all four, so a mean-pooled encoder cannot tell them
apart; the side is inside a noun region (a sequence model can bind it), but the colour of a noun is
only resolvable by matching the instance codes of two different regions, which is what the
region-relationship GCN's pairwise affinities compute. So the paper's ablation order
(mean-pool < GRU < GCN + GRU) has a chance to show (benchmarks/ablation.py measures it).

Everything is deterministic given the seed.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

import numpy as np

from vsrn_deploy.core.errors import VsrnError
from vsrn_deploy.io.files import atomic_write_json, sha256_file

GENERATOR = "vsrn_deploy.data.synthetic"  # synthetic.json names it: the folder is ours to rewrite
NOUNS = ("dog", "cat", "horse", "bird", "sheep", "car", "bus", "truck", "boat", "bicycle",
         "bench", "umbrella")
COLOURS = ("red", "blue", "green", "yellow", "white", "black", "brown", "orange")
STUFF = ("grass", "sky", "road", "wall", "water", "tree", "building", "sand")  # background regions
#: Caption templates over object 1 (left, L) and object 2 (right, R); 5 are used per image.
TEMPLATES = (
    "{L} to the left of {R}",
    "{R} to the right of {L}",
    "there is {L} on the left and {R} on the right",
    "{R} with {L} on its left",
    "a picture of {L} next to {R} on the right",
)
#: Every word the captions use (checked against the authors' vocabulary when it is available).
WORDS = sorted({w for t in TEMPLATES for w in t.replace("{L}", "").replace("{R}", "").split()}
               | set(NOUNS) | set(COLOURS) | {"a", "an"})

#: The most bytes one make-data run writes (features, boxes, groups, captions): 1 TiB, about 30x the
#: paper's COCO precomp features (123,287 images x 36 x 2048 float32 = 36 GB); larger sizes are a
#: typo, not a dataset (make-data --regions 2147483647 once asked for 19 PiB).
MAX_DATASET_BYTES = 2**40
CAPTION_BYTES = 64  # at most a caption's UTF-8 bytes with its newline (the longest template: ~55)
DENSITY = 0.08  # fraction of non-zero dims of a prototype
SCALE = 2.5  # mean magnitude of a non-zero prototype entry (exponential)


def _authors_vocab_path() -> Path | None:
    """The authors' COCO vocabulary in ../shared/vocab beside the checkout, when present."""
    here = Path(__file__).resolve()
    candidates = [here.parents[3] / "shared" / "vocab" / "coco_precomp_vocab.pkl",
                  Path.cwd().parent / "shared" / "vocab" / "coco_precomp_vocab.pkl",
                  Path.cwd() / "shared" / "vocab" / "coco_precomp_vocab.pkl"]
    return next((p for p in candidates if p.is_file()), None)


def check_words_in_authors_vocab(path: str | Path | None = None) -> list[str]:
    """Words of the synthetic captions missing from the authors' COCO vocabulary ([] = all real).

    Args:
        path: the authors' ``coco_precomp_vocab.pkl``; found beside the checkout when None.
    Returns:
        The missing words, or [] (also when no authors' vocabulary is available: the embedded
        word list is then used as it is).
    """
    path = Path(path) if path else _authors_vocab_path()
    if path is None:
        return []
    from vsrn_deploy.data.vocab import load_vocab

    vocab = load_vocab(str(path))
    return [w for w in WORDS if w not in vocab.word2idx]


def _article(colour: str) -> str:
    return "an" if colour[0] in "aeiou" else "a"


def _sparse_prototypes(rng: np.random.Generator, n: int, dim: int) -> np.ndarray:
    """n non-negative sparse vectors (about DENSITY non-zero, exponential magnitudes)."""
    mask = rng.random((n, dim)) < DENSITY
    return (mask * rng.exponential(SCALE, (n, dim))).astype(np.float32)


class _World:
    """The concept prototypes shared by every split (drawn once from the seed)."""

    def __init__(self, rng: np.random.Generator, dim: int) -> None:
        self.dim = dim
        self.nouns = _sparse_prototypes(rng, len(NOUNS), dim)
        self.colours = _sparse_prototypes(rng, len(COLOURS), dim)
        self.sides = _sparse_prototypes(rng, 2, dim)  # left, right
        self.stuff = _sparse_prototypes(rng, len(STUFF), dim)


def _layout(num_regions: int) -> tuple[int, int]:
    """(noun regions, colour regions) per object for k regions (2 objects)."""
    nouns = max(1, num_regions // 8)
    colours = max(1, num_regions // 12)
    return nouns, colours


def _image(world: _World, rng: np.random.Generator, objects: list[tuple[int, int, int]],
           num_regions: int) -> tuple[np.ndarray, np.ndarray]:
    """Region features [k, F] and boxes [k, 4] of one image with `objects` = [(noun, colour, side)]."""
    dim = world.dim
    per_noun, per_colour = _layout(num_regions)
    rows: list[np.ndarray] = []
    boxes: list[tuple[float, float, float, float]] = []
    for noun, colour, side in objects:
        instance = _sparse_prototypes(rng, 1, dim)[0]
        x0 = 0.05 if side == 0 else 0.55
        for _ in range(per_noun):  # object boxes: large, jittered
            rows.append(world.nouns[noun] + 0.8 * world.sides[side] + instance)
            dx, dy = rng.uniform(0, 0.05, 2)
            boxes.append((x0 + dx, 0.2 + dy, x0 + 0.38 + dx, 0.85 + dy))
        for _ in range(per_colour):  # part boxes: medium
            rows.append(world.colours[colour] + instance)
            dx, dy = rng.uniform(0, 0.15, 2)
            boxes.append((x0 + dx, 0.3 + dy, x0 + 0.2 + dx, 0.55 + dy))
    while len(rows) < num_regions:  # background stuff: small boxes anywhere
        rows.append(world.stuff[rng.integers(len(STUFF))].copy())
        x, y = rng.uniform(0, 0.85, 2)
        w, h = rng.uniform(0.03, 0.15, 2)
        boxes.append((x, y, x + w, y + h))
    feats = np.stack(rows)  # (k, F)
    feats *= rng.uniform(0.7, 1.3, (num_regions, 1)).astype(np.float32)  # detector-like scale jitter
    feats += rng.normal(-0.6, 0.6, feats.shape).astype(np.float32)  # ReLU keeps most noise at 0
    np.maximum(feats, 0, out=feats)
    order = rng.permutation(num_regions)  # the given order carries no meaning
    return feats[order], np.asarray(boxes, dtype=np.float32)[order]


def _describe(objects: list[tuple[int, int, int]], rng: np.random.Generator) -> list[str]:
    """Five captions of an image (one per template, in a random order)."""
    by_side = {side: (noun, colour) for noun, colour, side in objects}
    phrases = {}
    for key, side in (("L", 0), ("R", 1)):
        noun, colour = by_side[side]
        phrases[key] = f"{_article(COLOURS[colour])} {COLOURS[colour]} {NOUNS[noun]}"
    captions = [t.format(**phrases) for t in TEMPLATES]
    return [captions[i] for i in rng.permutation(len(captions))]


def _group_objects(rng: np.random.Generator) -> list[list[tuple[int, int, int]]]:
    """Four images sharing two nouns and two colours, differing in colour binding and sides."""
    n1, n2 = rng.choice(len(NOUNS), 2, replace=False)
    c1, c2 = rng.choice(len(COLOURS), 2, replace=False)
    return [[(n1, c1, 0), (n2, c2, 1)], [(n1, c2, 0), (n2, c1, 1)],
            [(n1, c1, 1), (n2, c2, 0)], [(n1, c2, 1), (n2, c1, 0)]]


def _write_split(folder: Path, split: str, n_images: int, world: _World, rng: np.random.Generator,
                 num_regions: int, boxes: bool) -> list[str]:
    objects: list[list[tuple[int, int, int]]] = []
    while len(objects) < n_images:
        objects.extend(_group_objects(rng))
    keep = rng.permutation(len(objects))[:n_images]
    objects = [objects[i] for i in keep]
    # group id of each image (its 3 look-alike siblings share it), for group batching
    np.save(folder / f"{split}_groups.npy", (keep // 4).astype(np.int64))
    feats = np.lib.format.open_memmap(folder / f"{split}_ims.npy", mode="w+", dtype=np.float32,
                                      shape=(n_images, num_regions, world.dim))
    all_boxes = np.zeros((n_images, num_regions, 4), dtype=np.float32)
    captions: list[str] = []
    for i, objs in enumerate(objects):
        feats[i], all_boxes[i] = _image(world, rng, objs, num_regions)
        captions.extend(_describe(objs, rng))
    feats.flush()
    del feats
    if boxes:
        np.save(folder / f"{split}_boxes.npy", all_boxes)
    (folder / f"{split}_caps.txt").write_text("\n".join(captions) + "\n", encoding="utf-8")
    return captions


def generate_dataset(out_dir: str | Path, *, data_name: str = "synth_precomp", n_train: int = 1000,
                     n_dev: int = 100, n_test: int = 100, num_regions: int = 36,
                     feature_dim: int = 2048, seed: int = 0, boxes: bool = True,
                     overwrite: bool = False, vocab_threshold: int = 4) -> Path:
    """Write a synthetic precomp dataset and its vocabulary.

    Writes ``<out_dir>/<data_name>/{train,dev,test}_ims.npy`` (float32 [n, k, F]),
    ``{split}_caps.txt`` (5 captions per image), ``{split}_boxes.npy`` (when `boxes`),
    ``{split}_groups.npy`` (int64 [n]: the group of 4 look-alike images each image belongs to) and
    ``<out_dir>/vocab/<data_name>_vocab.json`` (built from the training captions with
    `vsrn_deploy.data.vocab.build_vocab`). The data folder appears complete or not at all.

    Args:
        out_dir: parent folder (the authors' ``--data_path``).
        data_name: dataset folder name (the authors' ``--data_name``).
        n_train: training images (captions: 5x).
        n_dev: dev images.
        n_test: test images.
        num_regions: regions per image, k (>= 4).
        feature_dim: feature size F (>= 16).
        seed: everything is a function of the seed.
        boxes: also write region boxes (x1, y1, x2, y2 in [0, 1]) for ``--region-order box``.
        overwrite: replace what is in the way although make-data did not write it (a vocabulary file
            it did not write); make-data's own earlier dataset (its synthetic.json) is rewritten
            without it: the files it listed are replaced, others in the folder are kept.
        vocab_threshold: minimum count of a training word to enter the vocabulary.
    Returns:
        The dataset folder ``<out_dir>/<data_name>``.
    """
    for name, value, low in (("n_train", n_train, 1), ("n_dev", n_dev, 1), ("n_test", n_test, 1),
                             ("num_regions", num_regions, 4), ("feature_dim", feature_dim, 16)):
        if value < low:
            raise VsrnError(f"{name} must be >= {low} (got {value})")
    check_dataset_size(n_train, n_dev, n_test, num_regions, feature_dim, boxes, out_dir)
    from vsrn_deploy.artifacts.outputs import check_out_path, new_folder_guard

    if (not data_name or data_name in (".", "..") or "/" in data_name or "\\" in data_name
            or "\0" in data_name or data_name.startswith(".")):
        raise VsrnError(f"--name {data_name!r} must be a plain folder name (no path separators, not '.' "
                        "or '..', not hidden), e.g. synth_precomp")
    check_out_path(out_dir, want="folder")
    out = Path(out_dir)
    target = check_out_path(out / data_name, want="folder", flag="--name")
    if target.exists():
        if not _is_synthetic(target):
            raise VsrnError(f"{target} exists and was not written by vsrn-deploy make-data (no "
                            "synthetic.json of this generator); choose another --name or --out")
        # make-data's own earlier dataset: rewritten in place, only the files it lists (user files stay)
    vocab_path = out / "vocab" / f"{data_name}_vocab.json"
    present = vocab_path.exists() or vocab_path.is_symlink()
    if present and not overwrite and not _own_vocab(target, vocab_path):
        # a vocabulary file carries no marker: it is ours only if the dataset's synthetic.json records
        # its sha256 (the one this make-data wrote, unchanged since); anything else takes --overwrite
        raise VsrnError(f"{vocab_path} exists and is not the vocabulary an earlier make-data wrote for "
                        f"{target} (or it changed since); make-data would replace it with the new dataset's "
                        "vocabulary: move it away, choose another --name, or pass --overwrite")
    with new_folder_guard(out):
        return _generate_into(out, target, data_name, n_train, n_dev, n_test, num_regions, feature_dim, seed,
                              boxes, vocab_threshold)


_KIND = "synthetic data"
_MANIFEST = "synthetic.json"
_SPLITS = ("train", "dev", "test")


def dataset_bytes(n_train: int, n_dev: int, n_test: int, num_regions: int, feature_dim: int,
                  boxes: bool = True) -> int:
    """At most the bytes `generate_dataset` writes for these sizes (features, boxes, groups, captions)."""
    per_image = num_regions * feature_dim * 4 + (num_regions * 16 if boxes else 0) + 8 + 5 * CAPTION_BYTES
    return (n_train + n_dev + n_test) * per_image


def _human(size: float) -> str:
    for unit in ("bytes", "KiB", "MiB", "GiB", "TiB", "PiB", "EiB"):
        if size < 1024 or unit == "EiB":
            return f"{size:.0f} {unit}" if unit == "bytes" else f"{size:.1f} {unit}"
        size /= 1024
    raise AssertionError  # not reached


def check_dataset_size(n_train: int, n_dev: int, n_test: int, num_regions: int, feature_dim: int,
                       boxes: bool = True, out_dir: str | Path | None = None) -> int:
    """The bytes these sizes write; refused over `MAX_DATASET_BYTES`, or over the free space of the disk
    `out_dir` is on (the nearest existing folder above it), before anything is written.

    Raises:
        VsrnError: one line with the sizes, the bytes, the limit (or the free space) and what to pass.
    """
    need = dataset_bytes(n_train, n_dev, n_test, num_regions, feature_dim, boxes)
    sizes = (f"--train {n_train} --dev {n_dev} --test {n_test} --regions {num_regions} "
             f"--feature-dim {feature_dim}")
    fix = ("pass smaller sizes (the paper's COCO features are --regions 36 --feature-dim 2048; a demo: "
           "--train 2000 --regions 12 --feature-dim 256)")
    if need > MAX_DATASET_BYTES:
        raise VsrnError(f"{sizes} is too large: make-data would write {_human(need)}, over its limit of "
                        f"{_human(MAX_DATASET_BYTES)}; {fix}")
    if out_dir is not None:
        where = Path(os.path.abspath(out_dir))
        while not where.exists() and where != where.parent:
            where = where.parent
        try:
            free = shutil.disk_usage(where).free
        except OSError:
            return need  # the path's own check names what is wrong with it
        if need > free:
            raise VsrnError(f"{sizes} is too large for the disk of {where}: make-data would write "
                            f"{_human(need)}, {_human(free)} is free; free space, choose another --out, or "
                            f"{fix}")
    return need


def _own_vocab(target: Path, vocab_path: Path) -> bool:
    """Whether `vocab_path` is the vocabulary the earlier make-data of `target` wrote, unchanged (its
    synthetic.json records the file's sha256)."""
    from vsrn_deploy.artifacts.outputs import read_owned_manifest

    info = read_owned_manifest(target, _MANIFEST, _KIND, recognise=_recognise)
    recorded = (info or {}).get("vocab")
    if not isinstance(recorded, dict) or vocab_path.is_symlink() or not vocab_path.is_file():
        return False
    return (recorded.get("file") == f"../vocab/{vocab_path.name}"
            and sha256_file(vocab_path) == recorded.get("sha256"))


def _generator_files(boxes: bool = True) -> list[str]:
    """The files make-data writes in the dataset folder (its manifest last)."""
    kinds = ("ims.npy", "caps.txt", "groups.npy", *(("boxes.npy",) if boxes else ()))
    return [f"{split}_{kind}" for split in _SPLITS for kind in kinds] + [_MANIFEST]


def _owned_files(info: dict) -> list[str]:
    """What an earlier make-data wrote: its manifest's "files", or (older manifests) every name it writes."""
    listed = info.get("files")
    return [str(n) for n in listed] if isinstance(listed, list) else _generator_files(boxes=True)


def _recognise(info: dict) -> bool:
    return info.get("generator") == GENERATOR


def _is_synthetic(folder: Path) -> bool:
    """Whether `folder` is a dataset this generator wrote (its synthetic.json names the generator)."""
    from vsrn_deploy.artifacts.outputs import read_owned_manifest

    return read_owned_manifest(folder, _MANIFEST, _KIND, recognise=_recognise) is not None


def _generate_into(out: Path, target: Path, data_name: str, n_train: int, n_dev: int, n_test: int,
                   num_regions: int, feature_dim: int, seed: int, boxes: bool, vocab_threshold: int) -> Path:
    from vsrn_deploy.artifacts.outputs import OutputFolder, marker
    from vsrn_deploy.data.vocab import build_vocab

    rng = np.random.default_rng(seed)
    world = _World(rng, feature_dim)
    names = _generator_files(boxes)
    # the one writer: an existing dataset folder (--overwrite) is written into, and only the files an
    # earlier make-data wrote are replaced; anything else the user keeps there stays
    with OutputFolder(target, kind=_KIND, manifest_name=_MANIFEST, entries=names, overwrite=True,
                      owned_files=_owned_files, recognise=_recognise) as writer:
        tmp = writer.staging
        assert tmp is not None
        train_caps = []
        for split, n in (("train", n_train), ("dev", n_dev), ("test", n_test)):
            split_rng = np.random.default_rng((seed, ("train", "dev", "test").index(split) + 1))
            caps = _write_split(tmp, split, n, world, split_rng, num_regions, boxes)
            if split == "train":
                train_caps = caps
        vocab = build_vocab(train_caps, threshold=vocab_threshold)
        vocab_dir = out / "vocab"
        vocab_path = vocab_dir / f"{data_name}_vocab.json"
        made_vocab_dir = not vocab_dir.exists()
        vocab_dir.mkdir(exist_ok=True)
        # the vocabulary is written beside its place first, so synthetic.json can record its sha256 (a
        # rerun then knows the file as its own), and renamed into place after the folder's commit
        fd, name = tempfile.mkstemp(prefix=f".{vocab_path.name}.", suffix=".tmp", dir=vocab_dir)
        os.close(fd)
        vocab_tmp = Path(name)
        try:
            vocab.save_json(vocab_tmp)
            atomic_write_json(tmp / _MANIFEST, {
                **marker(_KIND), "generator": GENERATOR, "seed": seed, "num_regions": num_regions,
                "feature_dim": feature_dim, "images": {"train": n_train, "dev": n_dev, "test": n_test},
                "captions_per_image": 5, "files": names,
                "vocab": {"file": f"../vocab/{vocab_path.name}", "sha256": sha256_file(vocab_tmp)}})
            writer.commit(names)
            os.replace(vocab_tmp, vocab_path)
        except BaseException:
            vocab_tmp.unlink(missing_ok=True)
            if made_vocab_dir:
                shutil.rmtree(vocab_dir, ignore_errors=True)
            raise
    return target


def default_vocab_path(data_folder: str | Path) -> Path:
    """Where `generate_dataset` puts the vocabulary of the dataset in `data_folder`."""
    folder = Path(data_folder)
    return folder.parent / "vocab" / f"{folder.name}_vocab.json"
