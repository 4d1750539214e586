"""`vsrn-deploy index / search / attention`: output formats and every bad input (exit 2, one line)."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
from typer.testing import CliRunner

from vsrn_deploy.cli.app import app
from vsrn_deploy.core.errors import VsrnError

pytestmark = pytest.mark.faults


def run(*args):
    return CliRunner().invoke(app, [str(a) for a in args])


def one_error_line(result, *needles):
    assert result.exit_code == 2, result.output
    lines = [line for line in result.output.splitlines() if line.strip()]
    errors = [line for line in lines if line.startswith("error: ")]
    assert len(errors) == 1 and "Traceback" not in result.output, result.output
    for needle in needles:
        assert needle in errors[0], errors[0]


def index_args(exp, out, **over):
    args = {"--onnx-dir": exp["export"], "--images": exp["images"], "--boxes": exp["boxes"],
            "--captions": exp["captions"], "--out": out}
    args.update(over)
    flat = [x for key, value in args.items() if value is not None for x in (key, value)]
    return ["index", *flat, "--no-progress"]


def test_json_lists_images_best_first(built_index):
    result = run("search", "--index", built_index, "--text", "a red dog to the left of a blue car",
                 "--k", 5, "--json")
    assert result.exit_code == 0, result.output
    hits = json.loads(result.output)
    assert [sorted(h) for h in hits] == [["image", "score"]] * 5
    scores = [h["score"] for h in hits]
    assert scores == sorted(scores, reverse=True)
    captions = json.loads(run("search", "--index", built_index, "--image-id", 3, "--k", 4, "--json").output)
    assert [sorted(h) for h in captions] == [["caption", "score"]] * 4


def test_images_file_query_gives_one_list_per_image(built_index, search_export, tmp_path):
    feats = np.load(search_export["images"])[[2, 9]]
    np.save(tmp_path / "q.npy", feats)
    result = run("search", "--index", built_index, "--images", tmp_path / "q.npy", "--k", 3, "--json")
    assert result.exit_code == 0, result.output
    per_image = json.loads(result.output)
    by_id = json.loads(run("search", "--index", built_index, "--image-id", 9, "--k", 3, "--json").output)
    assert len(per_image) == 2 and per_image[1] == by_id


def test_attention_pngs_per_hit_and_for_one_image(built_index, search_export, tmp_path):
    from PIL import Image

    result = run("search", "--index", built_index, "--text", "a red dog", "--k", 3, "--attention",
                 tmp_path / "att")
    assert result.exit_code == 0, result.output
    pngs = sorted((tmp_path / "att").glob("*.png"))
    assert len(pngs) == 3 and all(Image.open(p).size == (512, 512) for p in pngs)
    out = tmp_path / "one.png"
    result = run("attention", "--onnx-dir", search_export["export"], "--images", search_export["images"],
                 "--boxes", search_export["boxes"], "--image-id", 4, "--out", out)
    assert result.exit_code == 0, result.output
    with Index_open(built_index) as index:
        assert out.read_bytes() == index.attention_png(4, title="image 4")


def test_attention_pngs_never_replace_a_users_file(built_index, search_export, tmp_path):
    att = tmp_path / "att"
    result = run("search", "--index", built_index, "--text", "a red dog", "--k", 2, "--attention", att)
    assert result.exit_code == 0, result.output
    first = sorted(att.glob("*.png"))
    # a second run replaces its own pictures ...
    assert run("search", "--index", built_index, "--text", "a red dog", "--k", 2, "--attention",
               att).exit_code == 0
    # ... but a user's file of the same name stops it before anything is written
    first[1].write_bytes(b"\x89PNG my own picture")
    before = {p.name: p.read_bytes() for p in att.iterdir()}
    one_error_line(run("search", "--index", built_index, "--text", "a red dog", "--k", 2, "--attention",
                       att), "vsrn-deploy did not write it")
    assert {p.name: p.read_bytes() for p in att.iterdir()} == before
    photo = tmp_path / "photo.png"
    photo.write_bytes(b"not mine to replace")
    exp = search_export
    one_error_line(run("attention", "--onnx-dir", exp["export"], "--images", exp["images"], "--boxes",
                       exp["boxes"], "--image-id", 4, "--out", photo), "vsrn-deploy did not write it")
    assert photo.read_bytes() == b"not mine to replace"


def Index_open(path):  # noqa: N802 - reads like the API it calls
    from vsrn_deploy.search import Index

    return Index.open(path)


@pytest.mark.parametrize("query,needle", [("zzzz qqqq", "no word of"), ("   ", "query is empty"),
                                          ("", "query is empty")])
def test_bad_queries(built_index, query, needle):
    one_error_line(run("search", "--index", built_index, "--text", query), needle)


@pytest.mark.parametrize("k", [0, 41, -1])
def test_k_out_of_range(built_index, k):
    one_error_line(run("search", "--index", built_index, "--text", "a dog", "--k", k),
                   "--k must be between 1 and 40")


def test_one_query_kind_at_a_time(built_index):
    one_error_line(run("search", "--index", built_index, "--text", "a dog", "--image-id", 1),
                   "exactly one query")
    one_error_line(run("search", "--index", built_index, "--image-id", 40), "image ids must lie in [0, 39]")


def test_another_export_is_refused(built_index, search_export, tmp_path):
    other = tmp_path / "other"
    shutil.copytree(search_export["export"], other)
    manifest = json.loads((other / "manifest.json").read_text())
    manifest["created"] = "another export"
    (other / "manifest.json").write_text(json.dumps(manifest))
    one_error_line(run("search", "--index", built_index, "--text", "a dog", "--onnx-dir", other),
                   "built from another export")


@pytest.mark.parametrize("name", ["images.faiss", "image_embeddings.npy", "captions.faiss"])
def test_truncated_index_file(built_index, tmp_path, name):
    copy = tmp_path / "index"
    shutil.copytree(built_index, copy)
    data = (copy / name).read_bytes()
    (copy / name).write_bytes(data[: len(data) // 2])
    one_error_line(run("search", "--index", copy, "--text", "a dog"), name, "truncated")


def test_faiss_file_of_right_size_but_garbage(built_index, tmp_path):
    copy = tmp_path / "index"
    shutil.copytree(built_index, copy)
    size = (copy / "images.faiss").stat().st_size
    (copy / "images.faiss").write_bytes(b"\0" * size)
    one_error_line(run("search", "--index", copy, "--text", "a dog"), "images.faiss")
    assert run("search", "--index", copy, "--text", "a dog", "--json").exit_code == 2


def test_boxes_count_must_match_regions(search_export, tmp_path):
    boxes = np.load(search_export["boxes"])[:, :5]
    np.save(tmp_path / "b.npy", boxes)
    one_error_line(run(*index_args(search_export, tmp_path / "idx", **{"--boxes": tmp_path / "b.npy"})),
                   "box count must equal the region count")
    assert not (tmp_path / "idx").exists()


def test_nan_features_name_the_image_and_leave_nothing(search_export, tmp_path):
    feats = np.load(search_export["images"])
    feats[23, 4, 7] = np.nan
    np.save(tmp_path / "f.npy", feats)
    one_error_line(run(*index_args(search_export, tmp_path / "idx", **{"--images": tmp_path / "f.npy"})),
                   "image 23")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["f.npy"]  # no index, no staging folder


def test_foreign_folder_is_never_replaced(search_export, tmp_path):
    out = tmp_path / "mine"
    out.mkdir()
    (out / "notes.txt").write_text("keep me")
    one_error_line(run(*index_args(search_export, out)), "did not write")
    assert (out / "notes.txt").read_text() == "keep me"


def test_rebuild_replaces_an_index_it_wrote(search_export, tmp_path):
    out = tmp_path / "idx"
    assert run(*index_args(search_export, out, **{"--captions": None})).exit_code == 0
    assert not (out / "captions.faiss").exists()
    assert run(*index_args(search_export, out)).exit_code == 0
    assert (out / "captions.faiss").exists()
    one_error_line(run("search", "--index", out, "--text", "a dog", "--k", 3, "--json", "--attention",
                       tmp_path / "a", "--images", search_export["images"]), "exactly one query")


def test_no_captions_no_image_to_caption_search(search_export, tmp_path):
    out = tmp_path / "idx"
    assert run(*index_args(search_export, out, **{"--captions": None, "--boxes": None})).exit_code == 0
    one_error_line(run("search", "--index", out, "--image-id", 0), "holds no captions")
    one_error_line(run("search", "--index", out, "--text", "a dog", "--attention", tmp_path / "a"),
                   "no boxes")


def test_bad_feature_files(search_export, tmp_path):
    (tmp_path / "t.npy").write_bytes(search_export["images"].read_bytes()[:300])
    one_error_line(run(*index_args(search_export, tmp_path / "i", **{"--images": tmp_path / "t.npy"})),
                   "t.npy")
    np.save(tmp_path / "w.npy", np.zeros((3, 8, 5), dtype=np.float32))
    one_error_line(run(*index_args(search_export, tmp_path / "i", **{"--images": tmp_path / "w.npy"})),
                   "8 x 24")
    one_error_line(run(*index_args(search_export, tmp_path / "i", **{"--kind": "lsh"})), "--kind")
    # a backend that needs torch is not among --backend's choices: a usage error naming the torch-free ones
    one_error_line(run(*index_args(search_export, tmp_path / "i", **{"--backend": "torch"})),
                   "'torch' is not one of", "'ort-int8'")
    one_error_line(run(*index_args(search_export, tmp_path / "i", **{"--onnx-dir": tmp_path})),
                   "manifest.json")
    # not a .npy, an object array, a folder: one line each, and never numpy's "allow_pickle" advice
    (tmp_path / "text.npy").write_text("region features, honestly\n")
    np.save(tmp_path / "objects.npy", np.array([{"a": 1}], dtype=object), allow_pickle=True)
    for name, says in (("text.npy", "lacks the NumPy header"), ("objects.npy", "never unpickles"),
                       ("", "is a folder")):
        result = run(*index_args(search_export, tmp_path / "i", **{"--images": tmp_path / name}))
        one_error_line(result, says)
        assert "allow_pickle" not in result.output


def test_progress_bar_goes_to_stderr_only(search_export, tmp_path, capfd):
    from vsrn_deploy.search import IndexConfig, build_index

    build_index(IndexConfig(onnx_dir=str(search_export["export"]), images=str(search_export["images"]),
                            out=str(tmp_path / "idx"), batch=8, progress=True))
    captured = capfd.readouterr()
    assert captured.out == "" and "images:" in captured.err and "/40" in captured.err


def test_attention_needs_indexed_images(built_index, search_export, tmp_path):
    result = run("search", "--index", built_index, "--images", search_export["images"],
                 "--attention", tmp_path / "a")
    one_error_line(result, "--attention draws indexed images")
    assert not (tmp_path / "a").exists()


def test_index_never_replaces_an_input_inside_its_out(search_export, tmp_path):
    out = tmp_path / "index"
    assert run(*index_args(search_export, out)).exit_code == 0
    feats = out / "features.npy"  # the user keeps the features inside the earlier index folder
    shutil.copy(search_export["images"], feats)
    before = feats.read_bytes()
    # the rebuild replaces only the index's own files: the features beside them are read and kept
    assert run(*index_args(search_export, out, **{"--images": feats})).exit_code == 0
    assert feats.read_bytes() == before and (out / "index.json").is_file()
    captions = out / "captions.txt"  # an input that IS one of the index's files is refused
    text = captions.read_bytes()
    one_error_line(run(*index_args(search_export, out, **{"--captions": captions})),
                   "would replace the input")
    assert captions.read_bytes() == text


def _attention(exp, out, *extra, boxes=None):
    return run("attention", "--onnx-dir", exp["export"], "--images", exp["images"], "--boxes",
               boxes or exp["boxes"], "--image-id", 4, "--out", out, *extra)


@pytest.mark.parametrize("scale,needle", [(np.inf, "NaN or Inf"), (1e6, "at most 16384 px"),
                                          (1e30, "at most 16384 px")])
def test_attention_boxes_beyond_any_canvas_are_refused(search_export, tmp_path, scale, needle):
    """Infinite boxes ended in OverflowError, boxes x 1e6 asked for a 6.86 TiB canvas (MemoryError)."""
    boxes = np.load(search_export["boxes"]).astype(np.float64) * 1000.0  # pixel boxes
    boxes[4, 0, 2] = scale
    np.save(tmp_path / "b.npy", boxes)
    one_error_line(_attention(search_export, tmp_path / "m.png", boxes=tmp_path / "b.npy"), needle)
    assert not (tmp_path / "m.png").exists()
    # index refuses the same boxes up front, so a later search --attention cannot crash on them
    one_error_line(run(*index_args(search_export, tmp_path / "idx", **{"--boxes": tmp_path / "b.npy"})),
                   "the boxes of image 4")
    assert not (tmp_path / "idx").exists()


def test_complex_boxes_are_refused(search_export, tmp_path):
    boxes = np.load(search_export["boxes"]).astype(np.complex64)
    np.save(tmp_path / "b.npy", boxes)
    one_error_line(_attention(search_export, tmp_path / "m.png", boxes=tmp_path / "b.npy"), "real numbers")


@pytest.mark.parametrize("extra,needle", [(("--top", -1), "'--top': must lie in [0, "),
                                          (("--lam", "nan"), "'--lam': must lie in (0, 1000000]"),
                                          (("--lam", "inf"), "'--lam': must lie in (0, 1000000]"),
                                          (("--lam", 0), "'--lam': must lie in (0, 1000000]"),
                                          (("--lam", "1e308"), "'--lam': must lie in (0, 1000000]")])
def test_attention_drawing_settings(search_export, tmp_path, extra, needle):
    one_error_line(_attention(search_export, tmp_path / "m.png", *extra), needle)
    assert not (tmp_path / "m.png").exists()


def test_attention_writes_png_names_only(search_export, tmp_path):
    one_error_line(_attention(search_export, tmp_path / "m.jpg"), "name it m.png")
    assert not (tmp_path / "m.jpg").exists()


def test_huge_image_id_is_a_bad_query_not_an_overflow(built_index):
    one_error_line(run("search", "--index", built_index, "--image-id", 99999999999999999999),
                   "image ids must lie in [0, 39]")


def test_failed_attention_search_leaves_no_new_folder(built_index, tmp_path):
    from vsrn_deploy.search import Index

    att = tmp_path / "new" / "att"
    with Index.open(built_index) as index:
        with pytest.raises(VsrnError, match="must lie in"):
            index.write_attention_maps(att, [1, 400], ["a", "b"])
        assert not (tmp_path / "new").exists()

        def broken(image, title=None):  # the second picture fails after the first was written
            if image == 2:
                raise VsrnError("drawing failed")
            return original(image, title=title)

        original = index.attention_png
        index.attention_png = broken
        with pytest.raises(VsrnError, match="drawing failed"):
            index.write_attention_maps(att, [1, 2], ["a", "b"])
        assert not (tmp_path / "new").exists()


def test_caption_text_survives_line_separators_inside_a_caption(search_export, tmp_path):
    """search --image-id printed another caption's text when a caption held \\x0c, \\x1e, U+0085,
    U+2028 or a lone \\r: the index splits on \\n, the display split on every line separator."""
    lines = (tmp_path / "c.txt")
    captions = [line for line in open(search_export["captions"], encoding="utf-8").read().split("\n") if line]
    odd = ["\x0c", "\x1e", "\u0085", "\u2028", "\r"]
    for i, sep in enumerate(odd):
        captions[i] = captions[i].replace(" ", f" {sep}", 1)
    lines.write_text("\n".join(captions) + "\n", encoding="utf-8")
    out = tmp_path / "idx"
    assert run(*index_args(search_export, out, **{"--captions": lines})).exit_code == 0
    from vsrn_deploy.search import Index

    with Index.open(out) as index:
        assert [index.caption(i) for i in range(len(captions))] == captions


def test_attention_refuses_a_features_file_changed_since_indexing(search_export, tmp_path):
    """The index names its features file and checked only its shape: other data of the same shape drew
    another image's map without a word."""
    feats = tmp_path / "feats.npy"
    shutil.copyfile(search_export["images"], feats)
    out = tmp_path / "idx"
    assert run(*index_args(search_export, out, **{"--images": feats})).exit_code == 0
    assert run("search", "--index", out, "--image-id", 3, "--attention", tmp_path / "ok").exit_code == 0
    np.save(feats, np.load(feats)[::-1].copy())  # same shape, rows reversed
    one_error_line(run("search", "--index", out, "--image-id", 3, "--attention", tmp_path / "att"),
                   "no longer encodes to the indexed image")
    assert not (tmp_path / "att").exists()
