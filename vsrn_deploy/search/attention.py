"""The attention maps of VSRN (Li et al., ICCV 2019, Sec. 4.5): which regions the image embedding uses.

numpy only (no torch): `attention_map` is the paper's rule, stated exactly so that a test can check
it pixel by pixel:

- correlation of region i: c_i = <v*_i, I>, the inner product of the region embedding after the
  GCN layers (the image graph's `region_embeddings` output) with the image embedding
  (`image_embedding`);
- rank r_i = 1..k by descending c (exact ties: the lower region index ranks first);
- score s_i = lam * (k - r_i)^2 (the best region gets lam * (k-1)^2, the worst 0);
- a pixel's value is the sum of s_i over the boxes that contain it; box i = (x1, y1, x2, y2) in
  pixels covers columns floor(x1) .. ceil(x2)-1 and rows floor(y1) .. ceil(y2)-1, clipped to the
  image.

`render_attention` draws the map as a heat map over a photo (or a blank canvas) with the top
regions outlined and returns PNG bytes; it needs Pillow (imported on use, `vsrn-deploy[search]`).
"""

from __future__ import annotations

import io
import math
import os
from pathlib import Path

import numpy as np

from vsrn_deploy.core.errors import VsrnError, import_optional

#: Side of the blank canvas used for boxes given as fractions of the image (all coordinates in [0, 1]).
NORMALISED_CANVAS = 512
#: The largest canvas side, in pixels, a map without a photo is drawn on (its side is the boxes'
#: extent): boxes reaching further are not in pixels of a photo (a 6.9 TiB canvas was asked for once).
MAX_CANVAS = 16384


def check_boxes(boxes: np.ndarray, what: str = "boxes") -> np.ndarray:
    """Boxes as float64: real numbers (not complex, text or objects), all finite.

    Raises:
        VsrnError: naming `what` and what is wrong.
    """
    arr = np.asarray(boxes)
    if arr.dtype.kind not in "fiu":
        raise VsrnError(f"{what} must hold real numbers (x1, y1, x2, y2), got dtype {arr.dtype}")
    arr = arr.astype(np.float64)
    if not np.isfinite(arr).all():
        raise VsrnError(f"{what} hold NaN or Inf")
    return arr


def check_drawing(top: int, lam: float) -> None:
    """`top` >= 0 regions outlined and a finite, positive lambda, or one line saying so."""
    if top < 0:
        raise VsrnError(f"--top must be >= 0 (how many best regions to outline), got {top}")
    if not (math.isfinite(lam) and lam > 0):
        raise VsrnError(f"--lam must be a finite number > 0 (the paper uses 50), got {lam}")


def region_ranks(region_embeddings: np.ndarray, image_embedding: np.ndarray) -> np.ndarray:
    """Rank r_i (1 = most correlated) of each region by c_i = <v*_i, I>; ties: lower index first.

    Args:
        region_embeddings: [k, D].
        image_embedding: [D].
    Returns:
        int64 [k], a permutation of 1..k.
    """
    regions = np.asarray(region_embeddings, dtype=np.float64)
    image = np.asarray(image_embedding, dtype=np.float64)
    corr = regions @ image  # (k,)
    order = np.lexsort((np.arange(corr.size), -corr))  # by -c, then by index
    ranks = np.empty(corr.size, dtype=np.int64)
    ranks[order] = np.arange(1, corr.size + 1)
    return ranks


def box_extent(box: np.ndarray, height: int, width: int) -> tuple[int, int, int, int]:
    """(row0, row1, col0, col1), half-open, of the pixels box (x1, y1, x2, y2) covers, clipped."""
    x1, y1, x2, y2 = (float(v) for v in box)
    col0, col1 = max(0, math.floor(x1)), min(width, math.ceil(x2))
    row0, row1 = max(0, math.floor(y1)), min(height, math.ceil(y2))
    return row0, max(row0, row1), col0, max(col0, col1)


def _check(region_embeddings: np.ndarray, image_embedding: np.ndarray, boxes: np.ndarray,
           height: int, width: int) -> None:
    if region_embeddings.ndim != 2:
        raise VsrnError(f"region_embeddings must be [k, D], got shape {region_embeddings.shape}")
    k, dim = region_embeddings.shape
    if image_embedding.shape != (dim,):
        raise VsrnError(f"image_embedding must be [{dim}] like the regions, got shape "
                        f"{image_embedding.shape}")
    if boxes.shape != (k, 4):
        raise VsrnError(f"boxes must be [{k}, 4] (one (x1, y1, x2, y2) per region), got shape "
                        f"{boxes.shape}: the boxes do not belong to these regions")
    if height < 1 or width < 1:
        raise VsrnError(f"height and width must be >= 1, got {height} x {width}")
    for name, arr in (("region_embeddings", region_embeddings), ("image_embedding", image_embedding),
                      ("boxes", boxes)):
        if not np.isfinite(arr).all():
            raise VsrnError(f"{name} hold NaN or Inf")


def attention_map(region_embeddings: np.ndarray, image_embedding: np.ndarray, boxes: np.ndarray,
                  height: int, width: int, lam: float = 50.0) -> np.ndarray:
    """The paper's attention map of one image (Sec. 4.5), per the rule in the module docstring.

    Args:
        region_embeddings: [k, D] region embeddings V* (the image graph's `region_embeddings` row).
        image_embedding: [D] the image embedding I (`image_embedding` row).
        boxes: [k, 4] (x1, y1, x2, y2) in pixels, region i's box in row i.
        height: rows of the map.
        width: columns of the map.
        lam: the scale lambda of the scores.
    Returns:
        float32 [height, width].
    Raises:
        VsrnError: shapes that do not fit together, or non-finite input.
    """
    regions = np.asarray(region_embeddings)
    image = np.asarray(image_embedding)
    boxes = check_boxes(boxes)
    height, width = int(height), int(width)
    check_drawing(0, float(lam))
    _check(regions, image, boxes, height, width)
    k = regions.shape[0]
    with np.errstate(over="ignore", invalid="ignore"):  # an overflow is refused below, in one line
        scores = lam * (k - region_ranks(regions, image)).astype(np.float64) ** 2  # (k,)
        # 2-D difference array: +s at each box's top-left, -s past its right and bottom edges, then two
        # cumulative sums give every pixel the sum over the boxes covering it
        diff = np.zeros((height + 1, width + 1), dtype=np.float64)
        for box, score in zip(boxes, scores, strict=True):
            r0, r1, c0, c1 = box_extent(box, height, width)
            if r0 >= r1 or c0 >= c1:
                continue
            diff[r0, c0] += score
            diff[r0, c1] -= score
            diff[r1, c0] -= score
            diff[r1, c1] += score
        heat = np.cumsum(np.cumsum(diff, axis=0), axis=1)[:height, :width].astype(np.float32)
    if not np.isfinite(heat).all():  # lambda * (k - r)^2 summed over boxes beyond float32
        raise VsrnError(f"--lam {lam} is too large: the map's values overflow; the paper uses 50")
    return heat


def boxes_in_pixels(boxes: np.ndarray, height: int | None = None,
                    width: int | None = None) -> tuple[np.ndarray, int, int]:
    """Boxes in pixels and the canvas (height, width) to draw them on.

    Boxes whose coordinates all lie in [0, 1] are fractions of the image (the synthetic data writes
    them so): they are scaled to the picture, or to a `NORMALISED_CANVAS` square without one. Pixel
    boxes keep their values; without a picture the canvas is their extent.
    """
    boxes = check_boxes(boxes)
    normalised = boxes.size > 0 and boxes.min() >= 0.0 and boxes.max() <= 1.0
    if height is None or width is None:
        if normalised:
            height = width = NORMALISED_CANVAS
        else:
            height = max(1, math.ceil(float(boxes[:, 3].max(initial=1.0))))
            width = max(1, math.ceil(float(boxes[:, 2].max(initial=1.0))))
            if max(height, width) > MAX_CANVAS:
                raise VsrnError(f"the boxes reach {width} x {height} px; without a photo the map is "
                                f"drawn on the boxes' extent, at most {MAX_CANVAS} px a side: give the "
                                "photo (--picture), or boxes in its pixels or as fractions in [0, 1]")
    if normalised:
        boxes = boxes * np.array([width, height, width, height], dtype=np.float64)
    return boxes, int(height), int(width)


def _heat_colours(values: np.ndarray) -> np.ndarray:
    """[H, W] in [0, 1] -> uint8 [H, W, 3]: black, dark red, orange, yellow, white (a 'hot' map)."""
    stops = np.array([0.0, 0.35, 0.65, 0.85, 1.0])
    colours = np.array([[0, 0, 0], [170, 20, 10], [245, 120, 15], [255, 225, 60], [255, 255, 235]],
                       dtype=np.float64)
    channels = [np.interp(values, stops, colours[:, c]) for c in range(3)]
    return np.stack(channels, axis=-1).round().astype(np.uint8)


def _label(draw: object, xy: tuple[int, int], text: str, colour: tuple[int, int, int]) -> None:
    """Text on a dark box, readable over any heat value."""
    left, top, right, bottom = draw.textbbox(xy, text)  # type: ignore[attr-defined]
    draw.rectangle([left - 2, top - 1, right + 2, bottom + 1], fill=(0, 0, 0))  # type: ignore[attr-defined]
    draw.text(xy, text, fill=colour)  # type: ignore[attr-defined]


def render_attention(region_embeddings: np.ndarray, image_embedding: np.ndarray, boxes: np.ndarray,
                     picture: str | os.PathLike | None = None, *, top: int = 3, lam: float = 50.0,
                     title: str | None = None) -> bytes:
    """PNG bytes of the attention map over `picture` (or a blank canvas), top regions outlined.

    Args:
        region_embeddings: [k, D].
        image_embedding: [D].
        boxes: [k, 4] in pixels of `picture`, or fractions in [0, 1].
        picture: a photo (any format Pillow reads); None: a blank canvas of the boxes' extent.
        top: how many of the best-ranked regions to outline (rank 1 thickest).
        lam: the scale lambda of the scores.
        title: a line of text drawn in the top-left corner.
    Raises:
        VsrnError: Pillow missing, an unreadable picture, or the errors of `attention_map`.
    """
    check_drawing(top, float(lam))
    pil = import_optional("PIL.Image", "search", "drawing attention maps")
    draw_mod = import_optional("PIL.ImageDraw", "search", "drawing attention maps")
    base = None
    if picture is not None:
        try:
            with pil.open(picture) as img:
                base = img.convert("RGB")
        except (OSError, ValueError) as exc:
            raise VsrnError(f"cannot read the picture {picture}: {exc}") from None
    pixel_boxes, height, width = boxes_in_pixels(
        boxes, *((base.height, base.width) if base is not None else (None, None)))
    heat = attention_map(region_embeddings, image_embedding, pixel_boxes, height, width, lam=lam)
    peak = float(heat.max())
    colours = _heat_colours(heat / peak if peak > 0 else heat)
    heat_img = pil.fromarray(colours, mode="RGB")
    if base is None:
        out = heat_img
    else:
        out = pil.blend(base, heat_img, alpha=0.55)
    draw = draw_mod.Draw(out)
    ranks = region_ranks(np.asarray(region_embeddings), np.asarray(image_embedding))
    outline = [(60, 200, 255), (90, 255, 120), (230, 230, 230)]
    for r in range(1, min(top, len(ranks)) + 1):
        i = int(np.flatnonzero(ranks == r)[0])
        r0, r1, c0, c1 = box_extent(pixel_boxes[i], height, width)
        if r0 < r1 and c0 < c1:
            draw.rectangle([c0, r0, c1 - 1, r1 - 1], outline=outline[min(r - 1, len(outline) - 1)],
                           width=max(1, 4 - r))
            _label(draw, (c0 + 3, r0 + 2), f"#{r} region {i}", outline[min(r - 1, len(outline) - 1)])
    if title:
        _label(draw, (4, 4), title, (255, 255, 255))
    png_info = import_optional("PIL.PngImagePlugin", "search", "drawing attention maps").PngInfo()
    png_info.add_text(*_PNG_MARK)  # lets a later run recognise (and replace) its own picture
    buffer = io.BytesIO()
    out.save(buffer, format="PNG", optimize=True, pnginfo=png_info)
    return buffer.getvalue()


_PNG_MARK = ("Software", "vsrn-deploy attention map")


def check_png_target(path: str | os.PathLike) -> Path:
    """Refuse a target that exists and is not an attention map vsrn-deploy wrote (never replace a
    user's file); returns the path."""
    path = Path(path)
    if path.is_dir():
        raise VsrnError(f"{path} is a folder; give a .png file name")
    if path.suffix.lower() != ".png":
        raise VsrnError(f"attention maps are PNG files: name it {path.with_suffix('.png').name}, "
                        f"not {path.name}")
    if path.exists() or path.is_symlink():
        try:
            with open(path, "rb") as handle:
                head = handle.read(4096)
        except OSError:
            head = b""
        mark = b"\0".join(part.encode() for part in _PNG_MARK)
        if not head.startswith(b"\x89PNG") or mark not in head:
            raise VsrnError(f"{path} exists and vsrn-deploy did not write it; move it away or choose "
                            "another name")
    return path


def save_attention_png(path: str | os.PathLike, png: bytes) -> Path:
    """Write PNG bytes atomically; an existing file is replaced only if it is an earlier attention
    map (`check_png_target`)."""
    from vsrn_deploy.io.files import atomic_write_bytes

    return atomic_write_bytes(check_png_target(path), png)
