"""The fault matrix: generated from the command line itself instead of hand-picked cases.

Three rules, each checked over every command `vsrn-deploy --help` lists:

1. WRITERS: a command that writes a folder or a file, rerun onto its own earlier output (and with
   --overwrite where it has one), leaves every user thing planted in and under its output byte-identical:
   a file, a folder (with a file in it) and symlinks to a file and a folder outside, at depth 1, 2 and 3,
   inside the tool's own sub-folders too (test_vectors/, image_encoder/1/, ...).
2. READERS: a command that reads an artifact refuses each file the artifact's manifest lists, tampered
   five ways (changed bytes, a same-size flip of one byte, truncation, replaced by another file, the other
   tiny model's same-named file), with exit 2 and one `error:` line naming the file. A reader whose
   result does not depend on a file (search by image id reads no graph) may instead succeed, but then
   its output must be exactly the untampered run's.
3. NUMBERS: every int or float option of every classified command (found in the command tree, not
   listed by hand), given huge, negative, zero, NaN and infinite values, ends in exit 0 or 2 (a one-line
   refusal), never a traceback or another code; a value no option can mean (NaN, the infinities, 1e24
   and up) is refused, exit 2, before any work.

`test_every_command_is_classified` makes a new command fail until it is put in COMMANDS or NOT_RUN.
Each artifact is built once per module, when a case first needs it (the `ctx` fixture: a Triton
repository, feature shards, the embed folders and the one Ray session they take are built only for
the cases that read or write them); every case works on its own copy.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import typing
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
import typer
from faultkit import TRAIN_SIZES, assert_refused, cli, snapshot
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from vsrn_deploy.cli.app import app
from vsrn_deploy.cli.options import MAX_SIZE

pytestmark = pytest.mark.faults

ROOT_COMMAND = typer.main.get_command(app)


# --- the classification -------------------------------------------------------------------------

@dataclass(frozen=True)
class Command:
    """How to run one command on the tiny inputs (`ctx`: paths, see the `ctx` fixture).

    args: the argument list; `out` is where a writer writes (a folder, or a file for writes="file").
    writes: "folder", "file" or None. reads: the artifact kinds it reads (MANIFESTS: "export", "index",
    "triton", "embeddings").
    rerun: the documented exit code of a plain rerun onto its own earlier output (train: 2, it wants
    --resume or --overwrite). deterministic: its stdout (and the file it writes) is a function of its
    inputs (a reader that succeeds on a tampered file must print and write exactly what it does on the
    untampered one). clean: the exit code of a run on the untampered artifacts and a text its output
    holds, for a reader whose untampered run stops at a later step on purpose (serve: at the missing
    --server, so no server starts; the repository passed its check). needs: the parts of `ctx` built
    on first use that it takes (see `World`).
    """

    args: Callable[[dict, Path], list]
    writes: str | None = None
    reads: tuple[str, ...] = ()
    rerun: int = 0
    deterministic: bool = False
    clean: tuple[int, str] = (0, "")
    needs: tuple[str, ...] = ()


def _caps(c: dict) -> Path:
    return c["data"] / "test_caps.txt"


def _ims(c: dict) -> Path:
    return c["data"] / "test_ims.npy"


COMMANDS: dict[str, Command] = {
    "export": Command(lambda c, out: ["export", c["ckpt"], "--out", out, "--max-batch", "8"],
                      writes="folder"),
    "index": Command(lambda c, out: ["index", "--out", out, "--images", _ims(c), "--captions", _caps(c),
                                     "--boxes", c["boxes"], "--onnx-dir", c["export"], "--threads", "1",
                                     "--no-progress"], writes="folder", reads=("export",)),
    "triton-repo": Command(lambda c, out: ["triton-repo", "--onnx-dir", c["export"], "--out", out,
                                           "--kind", "cpu"], writes="folder", reads=("export",)),
    "make-data": Command(lambda c, out: ["make-data", "--out", out, "--train", "8", "--dev", "4",
                                         "--test", "4", "--regions", "4", "--feature-dim", "16"],
                         writes="folder"),
    "train": Command(lambda c, out: ["train", "--data", c["data"], "--out", out, "--epochs", "1",
                                     *TRAIN_SIZES], writes="folder", rerun=2),
    "encode": Command(lambda c, out: ["encode", c["ckpt"], "--images", _ims(c), "--captions", _caps(c),
                                      "--out", out, "--device", "cpu"], writes="folder"),
    "evaluate": Command(lambda c, out: ["evaluate", c["ckpt"], "--data", c["data"], "--device", "cpu",
                                        "--out", out], writes="file"),
    "bench": Command(lambda c, out: ["bench", *(["--onnx-dir", c["export"]] if c.get("reading")
                                                else ["--tiny"]),
                                     "--backends", "ort", "--batch", "1", "--iters", "1", "--warmup", "0",
                                     "--encoder", "image", "--out", out,
                                     "--markdown", out.with_suffix(".md")],
                     writes="file", reads=("export",)),
    "validate": Command(lambda c, out: ["validate", "--checkpoint", c["ckpt"], "--onnx-dir", c["export"],
                                        "--backends", "ort", "--synthetic", "10", "--device", "cpu",
                                        "--out", out], writes="file", reads=("export",)),
    "attention": Command(lambda c, out: ["attention", "--images", _ims(c), "--boxes", c["boxes"],
                                         "--image-id", "0", "--out", out, "--onnx-dir", c["export"]],
                         writes="file", reads=("export",), deterministic=True),
    "search": Command(lambda c, out: ["search", "--index", c["index"], "--text", "a red cube", "--k", "2",
                                      "--onnx-dir", c["export"], "--attention", out],
                      writes="folder", reads=("export", "index")),
    # build-engine needs a GPU to build, but checks the export before it looks for TensorRT
    "build-engine": Command(lambda c, out: ["build-engine", "--onnx-dir", c["export"], "--out", out],
                            reads=("export",)),
    # a Ray Data job on the module's one Ray session (2 CPUs): 2 shards, 2 actors
    "embed": Command(lambda c, out: ["embed", "--onnx-dir", c["export"], "--images", c["shards"],
                                     "--out", out, "--workers", "2", "--batch", "4"],
                     writes="folder", reads=("export",), needs=("ray", "shards")),
    # the repository is checked before serve looks for the server: a --server that is not there ends
    # the untampered run (exit 2) before any server starts
    "serve": Command(lambda c, out: ["serve", "--repo", c["triton"], "--http-port", "18000",
                                     "--grpc-port", "18001", "--server", c["root"] / "no-tritonserver"],
                     reads=("triton",), clean=(2, "--server")),
}
# further invocations of a command already listed (another way it reads or writes an artifact)
EXTRA_WAYS: dict[str, Command] = {
    "index --embeddings": Command(lambda c, out: ["index", "--out", out, "--embeddings", c["embeddings"],
                                                  "--captions", _caps(c), "--boxes", c["boxes"],
                                                  "--onnx-dir", c["export"], "--threads", "1",
                                                  "--no-progress"],
                                  writes="folder", reads=("export", "embeddings")),
    "search --image-id": Command(lambda c, out: ["search", "--index", c["index"], "--image-id", "0",
                                                 "--k", "3"], reads=("index",), deterministic=True),
    "search --text": Command(lambda c, out: ["search", "--index", c["index"], "--text", "a red cube",
                                             "--k", "3", "--onnx-dir", c["export"]],
                             reads=("export", "index"), deterministic=True),
}
# commands (or ways of running one) this matrix does not run, each with the reason
NOT_RUN: dict[str, str] = {
    "demo": "runs make-data, train, export, validate and bench in a row (minutes); each is covered here",
    "build-engine (writing)": "building a plan needs TensorRT and a GPU",
    "serve (serving)": "a started tritonserver (tests/system/serving runs one); its repository check is here",
}
# commands that neither read nor write an artifact (none today: a new one goes here or above)
NO_ARTIFACT: set[str] = set()


def test_every_command_is_classified():
    listed = set(ROOT_COMMAND.commands)
    classified = set(COMMANDS) | {name.split()[0] for name in NOT_RUN} | NO_ARTIFACT
    assert listed - classified == set(), "classify the new command in test_matrix.COMMANDS or NOT_RUN"
    assert classified - listed == set(), "a classified command is gone from --help"
    assert all(cmd.writes or cmd.reads for cmd in ALL.values())
    assert {name.split()[0] for name in EXTRA_WAYS} <= set(COMMANDS)


ALL = {**COMMANDS, **EXTRA_WAYS}
# the commands that take the one Ray session (embed, or embed's folder): conftest runs their cases
# last in this module, so that Ray is up only for them
TAKES_RAY = {name for name, cmd in ALL.items() if {"ray", "embeddings"} & {*cmd.needs, *cmd.reads}}


def takes_ray(item) -> bool:
    """Whether a collected case of this module runs a command of TAKES_RAY."""
    params = getattr(getattr(item, "callspec", None), "params", {})
    return bool({params.get("name"), params.get("reader")} & TAKES_RAY)


# --- the tiny world ----------------------------------------------------------------------------

class World(dict):
    """`ctx`: paths of the tiny world; the parts few cases take are built on first use (`needs`, or a
    case reading that artifact kind): "ray" (one local Ray session, 2 CPUs, shut down with the
    module), "shards" (a glob of two .npy shards of the test images), "embeddings" / "other_embeddings"
    (embed's folder from each export), "triton" / "other_triton" (triton-repo of each export)."""

    ray_started = False

    def __missing__(self, key: str):
        root = self["root"]
        if key == "ray":
            import ray

            if not ray.is_initialized():
                ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, configure_logging=False)
                World.ray_started = True
            value: object = True
        elif key == "shards":
            feats = np.load(self["data"] / "test_ims.npy")
            (root / "shards").mkdir()
            half = len(feats) // 2
            np.save(root / "shards" / "part0.npy", feats[:half])
            np.save(root / "shards" / "part1.npy", feats[half:])
            value = str(root / "shards" / "part*.npy")
        elif key in ("embeddings", "other_embeddings", "triton", "other_triton"):
            command = "embed" if key.endswith("embeddings") else "triton-repo"
            export = self["other_export" if key.startswith("other_") else "export"]
            self.ready(COMMANDS[command])
            result = cli(*COMMANDS[command].args({**self, "export": export}, root / key))
            assert result.exit_code == 0, result.output
            value = root / key
        else:
            raise KeyError(key)
        self[key] = value
        return value

    def ready(self, cmd: Command) -> World:
        """Build what `cmd` needs, so that a plain copy of this dict holds it."""
        for key in (*cmd.needs, *cmd.reads):
            self[key]
        return self

    def close(self) -> None:
        if World.ray_started:
            import ray

            ray.shutdown()
            World.ray_started = False


@pytest.fixture(scope="module")
def ctx(world, tmp_path_factory):
    """The suite's tiny model, data and export, plus boxes, the other model's export, and an index of
    each export (built once for the module; cases copy what they change); the rest on first use (see
    `World`)."""
    from vsrn_deploy.export import ExportConfig, export_model

    root = tmp_path_factory.mktemp("matrix")
    n, regions = np.load(world["data"] / "test_ims.npy", mmap_mode="r").shape[:2]
    xy = np.random.default_rng(0).uniform(0, 200, size=(n, regions, 2)).astype(np.float32)
    np.save(root / "boxes.npy", np.concatenate([xy, xy + 40], axis=-1))
    other_export = root / "other_export"
    export_model(world["other_ckpt"], other_export, ExportConfig(precision="fp32", max_batch=8))
    c = {"ckpt": world["ckpt"], "data": world["data"], "export": world["export"], "boxes": root / "boxes.npy",
         "root": root}
    for name, export in (("index", world["export"]), ("other_index", other_export)):
        result = cli(*COMMANDS["index"].args({**c, "export": export}, root / name))
        assert result.exit_code == 0, result.output
    made = World({**c, "other_export": other_export, "index": root / "index",
                  "other_index": root / "other_index"})
    yield made
    made.close()


# --- 1. writers x planted user things ----------------------------------------------------------

def _tree(path: Path) -> dict[str, str]:
    """What a planted thing is: a file's sha256, a folder's snapshot, a symlink's target."""
    if path.is_symlink():
        return {"": f"link -> {os.readlink(path)}"}
    if path.is_dir():
        return {"": "dir", **snapshot(path)}
    return {"": hashlib.sha256(path.read_bytes()).hexdigest()}


def plant(out_root: Path, outside: Path) -> dict[str, tuple[int, str]]:
    """User things in `out_root` and in each of its folders down to depth 2, the tool's own included, so
    that they sit at depth 1, 2 and 3: a file, a folder holding a file, a symlink to a file and one to a
    folder (both outside). A user folder chain (mine/deeper/) carries them to depth 3 where the tool's
    own tree is shallower. Returns {relative path: (depth, kind)}."""
    outside.mkdir(parents=True, exist_ok=True)
    (outside / "target.txt").write_text("outside, must stay")
    (outside / "folder").mkdir(exist_ok=True)
    (outside / "folder" / "inner.txt").write_text("outside folder")
    parents = [p for p in [out_root, *sorted(out_root.rglob("*"))]
               if p.is_dir() and not p.is_symlink() and len(p.relative_to(out_root).parts) <= 2]
    (out_root / "mine" / "deeper").mkdir(parents=True, exist_ok=True)
    parents += [out_root / "mine", out_root / "mine" / "deeper"]
    planted: dict[str, tuple[int, str]] = {}
    for parent in dict.fromkeys(parents):
        depth = len(parent.relative_to(out_root).parts) + 1
        rel = parent.relative_to(out_root)
        (parent / "user-notes.txt").write_bytes(os.urandom(32))
        (parent / "user-folder").mkdir()
        (parent / "user-folder" / "kept.bin").write_bytes(os.urandom(32))
        os.symlink(outside / "target.txt", parent / "user-link-to-file")
        os.symlink(outside / "folder", parent / "user-link-to-folder")
        for name, kind in (("user-notes.txt", "file"), ("user-folder", "folder"),
                           ("user-link-to-file", "symlink"), ("user-link-to-folder", "symlink")):
            planted[str(rel / name)] = (depth, kind)
    planted["mine"] = (1, "folder")
    return planted


def _target(name: str, folder: Path) -> Path:
    """Where the writer writes: the folder itself, or a file in it."""
    if ALL[name].writes == "file":
        return folder / {"attention": "map.png"}.get(name, "report.json")
    return folder


@pytest.fixture(scope="module")
def first_outputs(ctx, tmp_path_factory):
    """Each writer's first output, written once (lazily) and copied by every case."""
    made: dict[str, Path] = {}

    def get(name: str) -> Path:
        if name not in made:
            folder = tmp_path_factory.mktemp(f"first-{name}") / "out"
            # the suite's export and the world's embed folder are these commands' output on these inputs
            built = {"export": "export", "embed": "embeddings"}.get(name)
            if built:
                made[name] = Path(shutil.copytree(ctx[built], folder, symlinks=True))
                return made[name]
            if ALL[name].writes == "file":
                folder.mkdir()
            result = cli(*ALL[name].args(ctx, _target(name, folder)))
            assert result.exit_code == 0, result.output
            made[name] = folder
        return made[name]

    return get


def _has_option(name: str, flag: str) -> bool:
    return any(flag in p.opts for p in ROOT_COMMAND.commands[name.split()[0]].params)


WRITER_CASES = [(name, mode) for name, cmd in ALL.items() if cmd.writes
                for mode in ("rerun", "--overwrite") if mode == "rerun" or _has_option(name, mode)]


@pytest.mark.parametrize(("name", "mode"), WRITER_CASES, ids=[f"{n}-{m.strip('-')}" for n, m in WRITER_CASES])
def test_writer_keeps_every_planted_user_thing(name, mode, ctx, first_outputs, tmp_path):
    cmd = ALL[name]
    folder = tmp_path / "out"
    shutil.copytree(first_outputs(name), folder, symlinks=True)
    planted = plant(folder, tmp_path / "outside")
    for depth in (1, 2, 3):
        kinds = {kind for d, kind in planted.values() if d == depth}
        assert {"file", "folder", "symlink"} <= kinds, (depth, kinds)
    before = {rel: _tree(folder / rel) for rel in planted}
    outside_before = snapshot(tmp_path / "outside")
    everything_before = snapshot(tmp_path)

    args = cmd.args(ctx, _target(name, folder)) + ([mode] if mode != "rerun" else [])
    result = cli(*args)
    expected = cmd.rerun if mode == "rerun" else 0
    if expected == 0:
        assert result.exit_code == 0, result.output
    else:
        assert_refused(result, expected)
        assert snapshot(tmp_path) == everything_before  # a refusal changes nothing at all

    changed = {rel: planted[rel] for rel in planted
               if not (folder / rel).is_symlink() and not (folder / rel).exists()
               or _tree(folder / rel) != before[rel]}
    assert changed == {}, f"{name} {mode} changed planted user things (path: (depth, kind)): {changed}"
    assert snapshot(tmp_path / "outside") == outside_before


# --- 2. readers x tampered listed files ---------------------------------------------------------

MANIFESTS = {"export": "manifest.json", "index": "index.json", "triton": "vsrn_repo.json",
             "embeddings": "embeddings.json"}


def _listed(folder: Path, kind: str) -> list[str]:
    """The files the artifact's manifest lists: its "files" (embed's folder: each shard's "file")."""
    manifest = json.loads((folder / MANIFESTS[kind]).read_text())
    if kind == "embeddings":
        return [entry["file"] for entry in manifest["shards"]]
    return list(manifest["files"])


def _other_listed(folder: Path, kind: str, rel: str) -> bytes:
    """Another listed file of the same artifact, with other bytes (for 'replaced by another file')."""
    names = _listed(folder, kind)
    own = (folder / rel).read_bytes()
    for other in names[names.index(rel) + 1:] + names:
        data = (folder / other).read_bytes()
        if data != own:
            return data
    raise AssertionError(f"every listed file of {folder} equals {rel}")


# kind -> (bytes of the file, the artifact folder, the other model's folder) -> the new bytes (None: n/a)
TAMPER: dict[str, Callable[[bytes, Path, Path, str, str], bytes | None]] = {
    "changed": lambda b, f, o, kind, rel: b + b"\n# changed\n",
    "flip": lambda b, f, o, kind, rel: b[:len(b) // 2] + bytes([b[len(b) // 2] ^ 0x01]) + b[len(b) // 2 + 1:],
    "truncated": lambda b, f, o, kind, rel: b[:len(b) // 2],
    "replaced": lambda b, f, o, kind, rel: _other_listed(f, kind, rel),
    "other-model": lambda b, f, o, kind, rel: (o / rel).read_bytes() if (o / rel).is_file() else None,
}

READERS = {name: cmd for name, cmd in ALL.items() if cmd.reads and name not in ("search",)}


READER_CASES = [(reader, kind) for reader, cmd in READERS.items() for kind in cmd.reads]


def _reader_out(reader: str, folder: Path) -> Path:
    if READERS[reader].writes == "file":
        folder.mkdir()
        return _target(reader, folder)
    return folder


def _result_of(result, out: Path) -> tuple[str, bytes | None]:
    """What a deterministic reader produced: its output (the --out path masked) and the file it wrote."""
    written = out.read_bytes() if out.is_file() else None
    return result.output.replace(str(out), "OUT"), written


@pytest.fixture(scope="module")
def clean_runs(ctx, tmp_path_factory):
    """What a reader produces from the untampered artifacts (run once, on first use): it ends as its
    `clean` says (exit 0; serve: exit 2 at the missing --server, its repository passed). Asked for the
    readers whose tampered runs are compared with it (deterministic ones) or whose untampered run is
    a refusal too (serve): the others' untampered runs are the writer cases and the world's builds."""
    runs: dict[str, tuple[str, bytes | None]] = {}

    def get(reader: str) -> tuple[str, bytes | None]:
        if reader not in runs:
            cmd = READERS[reader]
            out = _reader_out(reader, tmp_path_factory.mktemp("clean") / "out")
            result = cli(*cmd.args(ctx.ready(cmd), out))
            code, says = cmd.clean
            if code == 0:
                assert result.exit_code == 0, result.output
            else:
                assert_refused(result, code, says)
            runs[reader] = _result_of(result, out)
        return runs[reader]

    return get


@pytest.mark.parametrize(("reader", "kind"), READER_CASES, ids=[f"{r}-{k}" for r, k in READER_CASES])
def test_reader_refuses_every_tampered_listed_file(reader, kind, ctx, clean_runs, tmp_path):
    cmd = READERS[reader]
    # the untampered run ends as declared: a refusal below is the tamper's
    clean = clean_runs(reader) if cmd.deterministic or cmd.clean[0] != 0 else ("", None)
    art = Path(shutil.copytree(ctx[kind], tmp_path / kind, symlinks=True))
    other = ctx[f"other_{kind}"]
    case_ctx = {**ctx.ready(cmd), kind: art, "reading": True}
    listed = _listed(art, kind)
    assert listed, f"{kind} manifest lists no files"
    if cmd.clean[0] != 0:  # the untampered run's refusal is another step's, not one of these files
        assert not any(rel in clean[0] for rel in listed), clean[0]
    failures, ran = [], 0
    for rel in listed:
        original = (art / rel).read_bytes()
        for tamper, make in TAMPER.items():
            data = make(original, art, other, kind, rel)
            if data is None or data == original:
                continue  # the other model's file is the same bytes (the shared vocabulary): no tamper
            staged = art / (rel + ".new")
            staged.write_bytes(data)
            os.replace(staged, art / rel)  # a new file in its place, as an editor or cp would leave
            out = _reader_out(reader, tmp_path / f"out-{ran}")
            result = cli(*cmd.args(case_ctx, out))
            ran += 1
            (art / rel).write_bytes(original)
            if (result.exit_code == cmd.clean[0] == 0 and cmd.deterministic
                    and _result_of(result, out) == clean):
                continue  # the reader does not use this file, and its result shows it
            try:
                assert_refused(result, 2, rel)
            except AssertionError as exc:
                failures.append(f"{rel} {tamper}: exit {result.exit_code}: {str(exc)[:300]}")
    assert ran >= 3 * len(listed)
    assert failures == [], "\n".join(failures)


# --- 3. numeric options x hypothesis ------------------------------------------------------------

# Every int or float option of every classified command is a case: found in the command tree, never
# listed here. An option left out needs a reason here: one whose value cannot be judged fast at all
# (none today).
NOT_A_NUMBER_CASE: dict[tuple[str, str], str] = {}
# options where a big valid value is a big job (the user asked for it: a 1024-thread pool, a billion
# images, a 65536-wide model whose weights grow with the square): their strategy leaves out values from
# 65 up to MAX_SIZE, keeping the small ones and the absurd ones (beyond any bound, which must be
# refused at once). An option whose big values are cheap (a limit larger than the data, a version
# number) is not here.
SCALES_WORK = {("train", "--epochs"), ("bench", "--iters"), ("bench", "--warmup"), ("make-data", "--train"),
               ("make-data", "--dev"), ("make-data", "--test"), ("validate", "--synthetic"),
               ("make-data", "--regions"), ("make-data", "--feature-dim"), ("index", "--threads"),
               ("validate", "--threads"), ("bench", "--threads"), ("train", "--workers"),
               ("export", "--max-batch"), ("train", "--embed-size"), ("train", "--word-dim"),
               ("train", "--caption-hidden")}
# seconds per run: fewer examples (a valid bench run: 4-6 s; embed: a Ray Data job)
EXPENSIVE = {"train", "export", "bench", "embed"}


def _number_kind(param) -> str | None:
    """"int" or "float" for an option typed int / float (optional or not), else None."""
    annotation = param.type_descriptor.annotation
    types = set(typing.get_args(annotation)) - {type(None)} or {annotation}
    return "int" if types == {int} else "float" if types == {float} else None


def _flag(param) -> str:
    return next((o for o in param.opts if o.startswith("--")), param.opts[0])


def _numeric_options() -> list[tuple[str, str, str]]:
    """(command or way, flag, "int" / "float") for every int or float option of every classified
    command (search's by image id too: another way in), less NOT_A_NUMBER_CASE."""
    cases = []
    for name in [*COMMANDS, "search --image-id"]:
        for param in ROOT_COMMAND.commands[name.split()[0]].params:
            kind = _number_kind(param)
            if kind is not None and (name.split()[0], _flag(param)) not in NOT_A_NUMBER_CASE:
                cases.append((name, _flag(param), kind))
    return cases


NUMERIC_CASES = _numeric_options()


def test_number_rule_lists_only_real_options():
    """SCALES_WORK and NOT_A_NUMBER_CASE name int or float options that exist (a renamed or removed
    option must not leave a stale entry that quietly exempts nothing), and every int or float option
    of a classified command is a case unless NOT_A_NUMBER_CASE says why not."""
    numeric = {(name, _flag(param)) for name, command in ROOT_COMMAND.commands.items()
               for param in command.params if _number_kind(param)}
    assert SCALES_WORK <= numeric, SCALES_WORK - numeric
    assert set(NOT_A_NUMBER_CASE) <= numeric, set(NOT_A_NUMBER_CASE) - numeric
    classified = {name.split()[0] for name in COMMANDS}
    assert {(name.split()[0], flag) for name, flag, _ in NUMERIC_CASES} == {
        (name, flag) for name, flag in numeric if name in classified} - set(NOT_A_NUMBER_CASE)


HUGE = ["9223372036854775808", "1000000000000000000000000", "2147483648", "1e308", "1e309"]
EDGES = ["0", "-0", "-1", "-2147483649", "nan", "inf", "-inf", "NaN", "1e-320", "0.5"]
# values no option can mean (beyond any count a machine holds, beyond uint64, not finite): refused at
# once, exit 2, whatever the option
ABSURD = {"1000000000000000000000000", "1e308", "1e309", "nan", "inf", "-inf", "NaN"}
# small values a bound may well allow: for an EXPENSIVE command each allowed one is a real run, so these
# come only from the strategy there, not as explicit examples
SMALL = {"0", "-0", "1e-320", "0.5"}


def _explicit(name: str) -> list[str]:
    """The values every case of `name` tries whatever the strategy draws: all of HUGE and EDGES (for an
    EXPENSIVE command, less SMALL), so each option meets NaN, the infinities and the huge ones."""
    expensive = name.split()[0] in EXPENSIVE
    return [v for v in HUGE + EDGES if not (expensive and v in SMALL)]


def _values(name: str, flag: str, kind: str) -> st.SearchStrategy[str]:
    numbers = st.integers(-2**70, 2**70) if kind == "int" else st.floats(allow_nan=True, allow_infinity=True)
    base = st.one_of(st.sampled_from(EDGES + HUGE), numbers.map(str))
    if (name.split()[0], flag) in SCALES_WORK:
        return base.filter(lambda v: not _is_big(v))
    return base


def _is_big(text: str) -> bool:
    try:
        return 64 < float(text) <= MAX_SIZE
    except ValueError:
        return False


@pytest.mark.parametrize(("name", "flag", "kind"), NUMERIC_CASES,
                         ids=[f"{n}{f}" for n, f, _ in NUMERIC_CASES])
def test_numeric_options_end_in_0_or_one_error_line(name, flag, kind, ctx, tmp_path_factory):
    cmd = ALL[name]
    ctx.ready(cmd)
    examples = 3 if name.split()[0] in EXPENSIVE else 10  # drawn, on top of the explicit ones

    def body(value):
        folder = tmp_path_factory.mktemp("num") / "out"
        if cmd.writes == "file":
            folder.mkdir()
        out = _target(name.split()[0], folder) if name in COMMANDS else folder
        result = cli(*cmd.args(ctx, out), flag, value)
        assert result.exit_code in (0, 2), (value, result.output[-2000:], repr(result.exception))
        assert "Traceback" not in result.output
        if value in ABSURD:
            assert result.exit_code == 2, (value, "accepted", result.output[-2000:])
        if result.exit_code == 2:  # progress lines may come first (train reads its data before it can
            # tell the batch is larger); the refusal is one `error:` line, the last
            lines = [line for line in result.output.splitlines() if line.strip()]
            assert [line for line in lines if line.startswith("error:")] == lines[-1:], lines

    check = given(value=_values(name, flag, kind))(body)
    for value in _explicit(name):
        check = example(value=value)(check)
    # derandomize: the same cases every run (a suite that passes by luck is no check)
    check = settings(max_examples=examples, deadline=None, database=None, derandomize=True,
                     suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])(check)
    check()
