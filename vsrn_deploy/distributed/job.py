"""`run_embed`: the `vsrn-deploy embed` job on Ray Data.

Steps, the same on a laptop and a cluster:

1. the export's manifest (sizes, its sha256) and the input shards' headers are read on the driver; a
   wrong shape or dtype is named before Ray starts, and so is a file of the export changed since
   export (every file its manifest lists is checked against its sha256);
2. Ray: an existing session in this process is used as it is; with `ray_address` the job joins that
   cluster; otherwise Ray starts on this machine (`ray.init(num_cpus=actors * threads)`, actors =
   min(workers, shards)) and is shut down at the end; an actor no node of a local session can hold
   (more --threads than its CPUs, a GPU backend without a GPU) is refused, not waited for forever;
3. every shard is read once: NaN/Inf, the source's sha256, and the sha256 of an earlier output; a bad
   shard is named before any encoding. On a cluster a Ray Data `map` pass does it (one task per
   shard, next to the data); on a session whose only node is this machine, the driver does (no
   worker start-up for it, `_all_here`);
4. shards whose output is missing or unverified (its sha256 or its source's differs from
   embeddings.json) are encoded by an actor pool of `workers` actors (`threads` intra-op threads
   each; one GPU each for a backend that runs engines): each actor opens the export's image graph
   once (`ExportEncoders`, torch-free) and writes one parquet shard per input shard, `--batch`
   images per encoder call, to a temporary name renamed into place;
5. embeddings.json is rewritten (atomically) after each finished shard, so an interrupted job keeps
   what it finished; at the end every id 0..n-1 must appear once (row counts and id ranges of the
   written files against the inputs').

Inputs and --out must be visible at the same paths on every node (a shared file system).
"""

from __future__ import annotations

import contextlib
import logging
import os
import re
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from vsrn_deploy.artifacts import embeddings as emb_manifest
from vsrn_deploy.core import backends
from vsrn_deploy.core.errors import VsrnError, import_optional
from vsrn_deploy.distributed.shards import (
    Shard,
    check_scans,
    find_shards,
    open_shards,
    output_name,
    scan_shard,
    temp_leftovers,
)
from vsrn_deploy.io.files import atomic_write_json, sha256_file

_log = logging.getLogger(__name__)


@dataclass(frozen=True)
class EmbedConfig:
    """What `vsrn-deploy embed` runs.

    Attributes:
        onnx_dir: the export folder.
        images: a glob of region-feature .npy shards [n, regions, feature_dim].
        out: the embeddings folder (parquet shards + embeddings.json).
        ray_address: a Ray cluster to join (None: Ray on this machine, or this process's session).
        workers: encoder actors.
        threads: intra-op threads (and Ray CPUs) per actor.
        batch: images per encoder call.
        backend: a torch-free backend of the table.
        engine_dir: TensorRT plans (backends that run engines).
        progress: Ray Data's progress bars on stderr.
    """

    onnx_dir: str
    images: str
    out: str
    ray_address: str | None = None
    workers: int = 2
    threads: int = 1
    batch: int = 64
    backend: str = backends.defaults("index")[0]
    engine_dir: str = "engines"
    progress: bool = False


def _needs_gpu(backend: str) -> bool:
    return backends.get(backend).needs is backends.Needs.ENGINES


class ShardEncoder:
    """A Ray Data actor: opens the export's image encoder once, then encodes whole shards.

    Called with a batch of shard rows (index, path, rows, first_id, out); writes each shard's parquet
    file and returns its sha256, bytes and rows (or the error that stopped it, as text).
    """

    def __init__(self, onnx_dir: str, backend: str, engine_dir: str, threads: int, batch: int) -> None:
        from vsrn_deploy.search.encoders import ExportEncoders

        self.encoders = ExportEncoders(onnx_dir, backend, engine_dir, threads)
        self.batch = batch

    def __call__(self, rows: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        result: dict[str, list[Any]] = {"index": [], "sha256": [], "bytes": [], "rows": [], "error": []}
        for i in range(len(rows["index"])):
            result["index"].append(int(rows["index"][i]))
            try:
                sha, size, count = self._encode_shard(str(rows["path"][i]), int(rows["first_id"][i]),
                                                      str(rows["out"][i]))
                result["sha256"].append(sha)
                result["bytes"].append(size)
                result["rows"].append(count)
                result["error"].append("")
            except Exception as exc:  # reported by the driver as one line
                result["sha256"].append("")
                result["bytes"].append(0)
                result["rows"].append(0)
                result["error"].append(f"{type(exc).__name__}: {exc}" if not isinstance(exc, VsrnError)
                                       else str(exc))
        return {"index": np.asarray(result["index"], dtype=np.int64),
                "sha256": np.asarray(result["sha256"], dtype=object),
                "bytes": np.asarray(result["bytes"], dtype=np.int64),
                "rows": np.asarray(result["rows"], dtype=np.int64),
                "error": np.asarray(result["error"], dtype=object)}

    def _encode_shard(self, path: str, first_id: int, out: str) -> tuple[str, int, int]:
        import tempfile

        import pyarrow as pa

        from vsrn_deploy.distributed.shards import open_features

        feats = open_features(path, self.encoders.num_regions, self.encoders.feature_dim)
        pq = emb_manifest.pyarrow_parquet()
        schema = pa.schema([("id", pa.int64()), ("embedding", pa.list_(pa.float32()))])
        target = Path(out)
        fd, tmp_name = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
        os.close(fd)
        tmp = Path(tmp_name)
        try:
            with pq.ParquetWriter(tmp, schema) as writer:
                for start, block in feats.batches(self.batch):
                    emb = np.ascontiguousarray(self.encoders.encode_images(block)[0], dtype=np.float32)
                    ids = pa.array(np.arange(first_id + start, first_id + start + len(emb), dtype=np.int64))
                    offsets = pa.array(np.arange(0, emb.size + 1, emb.shape[1], dtype=np.int32))
                    values = pa.ListArray.from_arrays(offsets, pa.array(emb.reshape(-1)))
                    writer.write_table(pa.Table.from_arrays([ids, values], schema=schema))
            with open(tmp, "rb") as handle:
                os.fsync(handle.fileno())
            os.chmod(tmp, 0o644)
            os.replace(tmp, target)
        except BaseException:
            with contextlib.suppress(OSError):
                tmp.unlink()
            raise
        return sha256_file(target), target.stat().st_size, len(feats)


# --- the driver --------------------------------------------------------------------------------------

def _check_config(cfg: EmbedConfig) -> None:
    from vsrn_deploy.search.encoders import INDEX_BACKENDS

    for flag, value in (("--workers", cfg.workers), ("--threads", cfg.threads), ("--batch", cfg.batch)):
        if value < 1:
            raise VsrnError(f"{flag} must be >= 1, got {value}")
    if cfg.backend not in INDEX_BACKENDS:
        raise VsrnError(f"--backend must be one of {', '.join(INDEX_BACKENDS)} (torch-free), "
                        f"got {cfg.backend!r}")


def _open_out(out: Path, shards: list[Shard], cfg: EmbedConfig, export_sha256: str) -> dict[str, Any] | None:
    """Refuse an --out that is not an earlier embed output of the same job; return its manifest."""
    from vsrn_deploy.artifacts.outputs import check_out_path, refuse_overlap

    check_out_path(out, want="folder")
    refuse_overlap(out, input_dirs=[cfg.onnx_dir, cfg.engine_dir if _needs_gpu(cfg.backend) else None],
                   input_files=[s.path for s in shards], entries=[])
    for s in shards:
        if Path(s.path).resolve().parent == out.resolve():
            raise VsrnError(f"--out {out} holds the input shard {s.path}; choose another --out")
    if not out.is_dir() or not any(out.iterdir()):
        return None
    previous = emb_manifest.read_manifest(out)
    if previous is None:
        raise VsrnError(f"--out {out} is a non-empty folder that vsrn-deploy embed did not write; choose "
                        "another --out (or remove it yourself)")
    recorded = [(e.get("source"), e.get("rows")) for e in previous.get("shards", [])]
    if (previous.get("export") or {}).get("manifest_sha256") != export_sha256:
        raise VsrnError(f"--out {out} holds embeddings of another export; choose another --out (or remove "
                        "it yourself)")
    if previous.get("backend") != cfg.backend:
        raise VsrnError(f"--out {out} holds embeddings made with backend {previous.get('backend')}, not "
                        f"{cfg.backend}; choose another --out or the same --backend")
    if recorded != [(s.path, s.rows) for s in shards]:
        raise VsrnError(f"--out {out} holds embeddings of other input shards (the files --images matches, "
                        "or their row counts, changed: ids would shift); choose another --out")
    return previous


@contextlib.contextmanager
def _ray_session(cfg: EmbedConfig, actors: int):
    """Ray for the job: this process's session, the cluster at `cfg.ray_address`, or a local Ray of
    `actors` x `cfg.threads` CPUs (the actors the job can use, not --workers: the pool never holds
    more actors than shards), shut down at the end; see `_check_room` for what is refused."""
    ray = import_optional("ray", "distributed", "vsrn-deploy embed (a Ray Data job)")
    import_optional("ray.data", "distributed", "vsrn-deploy embed (a Ray Data job)")
    started = False
    quiet = logging.getLogger("ray.data")  # its per-dataset INFO lines, unless progress is asked for
    level = quiet.level
    if not cfg.progress:
        quiet.setLevel(logging.ERROR)
    if not ray.is_initialized():
        try:
            if cfg.ray_address:
                ray.init(address=cfg.ray_address, log_to_driver=False, configure_logging=False)
            else:
                ray.init(num_cpus=actors * cfg.threads, include_dashboard=False, log_to_driver=False,
                         configure_logging=False)
        except (ConnectionError, TimeoutError, RuntimeError, ValueError) as exc:
            first = (str(exc).strip().splitlines() or [type(exc).__name__])[0][:200]
            where = f"the Ray cluster at {cfg.ray_address}" if cfg.ray_address else "a local Ray"
            raise VsrnError(f"cannot start or reach {where} ({first}); check --ray-address (ray status "
                            "on the head node prints it) or leave it out to run on this machine") from None
        started = True
    try:
        if started and not cfg.ray_address:  # (a cluster given by address may autoscale: not checked)
            _check_room(ray, cfg)
        yield ray
    finally:
        quiet.setLevel(level)
        if started:
            ray.shutdown()


def _check_room(ray: Any, cfg: EmbedConfig) -> None:
    """Refuse an actor no node of the session can hold (--threads CPUs, a GPU for engines): Ray would
    wait for one forever, not fail."""
    nodes = [n.get("Resources") or {} for n in ray.nodes() if n.get("Alive")]
    cpus = max((float(r.get("CPU", 0)) for r in nodes), default=0.0)
    if cfg.threads > cpus:
        raise VsrnError(f"--threads {cfg.threads} asks for {cfg.threads} CPUs per encoder actor, but the "
                        f"largest node of this Ray session has {cpus:g}; pass --threads {max(int(cpus), 1)} "
                        "or fewer")
    if _needs_gpu(cfg.backend) and not any(float(r.get("GPU", 0)) >= 1 for r in nodes):
        raise VsrnError(f"--backend {cfg.backend} runs each encoder actor on a GPU, and this Ray session "
                        "has none; choose a CPU backend or a session with GPUs")


def _all_here(ray: Any, cfg: EmbedConfig) -> bool:
    """True when the session's only node is this machine (a local Ray, started by the job or by the
    caller): the content check then reads the shards in this process, at disk speed, instead of in a
    Ray Data pass whose first tasks pay for starting and importing into worker processes (about 3 s
    measured here, against 0.13 s to check 118 MB in the driver). A cluster given by address, or a
    Ray client connection, keeps the pass on the cluster, next to the data."""
    if cfg.ray_address:
        return False
    try:
        if ray.util.client.ray.is_connected():
            return False
        nodes = [n for n in ray.nodes() if n.get("Alive")]
        return len(nodes) == 1 and nodes[0].get("NodeID") == ray.get_runtime_context().get_node_id()
    except Exception:  # an older or remote session that cannot tell: the pass on the cluster is right
        return False


def _scan_here(item: dict[str, Any]) -> dict[str, Any]:
    try:
        return scan_shard(item)
    except OSError as exc:  # gone or unreadable since its header was read
        raise VsrnError(f"cannot read feature shard {item['path']} ({type(exc).__name__}: "
                        f"{exc.strerror or exc}); check it, then run embed again") from None


@contextlib.contextmanager
def _job_errors(cfg: EmbedConfig):
    """A task or actor that failed on the cluster (a shard path a node cannot read, the export missing
    there, a worker that died) is one line naming the cause, not Ray's traceback."""
    try:
        yield
    except VsrnError:
        raise
    except Exception as exc:
        lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
        raised = [line for line in lines if re.match(r"^[\w.]*(Error|Exception): ", line)
                  and not line.startswith("ray.")]  # the user code's error, not Ray's wrapper of it
        cause = raised[0] if raised else (lines[-1] if lines else type(exc).__name__)
        cause = re.sub(r"\x1b\[[0-9;]*m", "", cause)
        where = f"the Ray cluster at {cfg.ray_address}" if cfg.ray_address else "the local Ray"
        raise VsrnError(f"the embed job failed on {where} ({cause[:300]}); on a cluster the export, the "
                        "shards and --out must be at the same paths on every node; finished shards are "
                        "kept, run again to resume") from None


def run_embed(cfg: EmbedConfig) -> dict[str, Any]:
    """Embed every image of the shards `cfg.images` matches into `cfg.out` (see the module docstring).

    Returns:
        The manifest written to embeddings.json.
    Raises:
        VsrnError: bad input (a shard's shape, dtype or values, the export, --out), Ray unreachable,
            or a shard that failed to encode (named).
    """
    from vsrn_deploy.artifacts.export import verify_listed_files
    from vsrn_deploy.artifacts.outputs import output_lock
    from vsrn_deploy.search.encoders import ExportEncoders

    _check_config(cfg)
    clock = time.perf_counter()
    export = ExportEncoders(cfg.onnx_dir, cfg.backend, cfg.engine_dir, cfg.threads)  # manifest only
    shards = open_shards(find_shards(cfg.images), export.num_regions, export.feature_dim)
    out = Path(os.path.abspath(cfg.out))
    previous = _open_out(out, shards, cfg, export.manifest_sha256)
    # the export checked whole here, on the driver, before Ray starts: a changed graph is one line
    # naming it, not a failure inside every actor (each actor checks the graph it opens again)
    verify_listed_files(export.onnx_dir, export.manifest)
    session = sys.modules.get("ray")
    if session is not None and session.is_initialized():  # this process's session, before --out is made
        _check_room(session, cfg)
    out.mkdir(parents=True, exist_ok=True)
    with output_lock(out):
        for leftover in temp_leftovers(out):  # an interrupted run's partial files (ours by name)
            leftover.unlink()
        old = {e["file"]: e for e in (previous or {}).get("shards", [])}
        entries = [{"source": s.path, "source_sha256": None, "rows": s.rows, "first_id": s.first_id,
                    "file": output_name(s.index), "sha256": None, "bytes": None} for s in shards]
        manifest = emb_manifest.new_manifest(
            export={"path": str(Path(cfg.onnx_dir).resolve()), "manifest_sha256": export.manifest_sha256},
            backend=cfg.backend, embed_dim=export.embed_dim, regions=export.num_regions,
            feature_dim=export.feature_dim, count=sum(s.rows for s in shards), complete=False,
            shards=entries,
            run={"workers": cfg.workers, "threads": cfg.threads, "batch": cfg.batch,
                 "ray_address": cfg.ray_address, "seconds": None},
            created=time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()))

        with _ray_session(cfg, min(cfg.workers, len(shards))) as ray:
            ray.data.DataContext.get_current().enable_progress_bars = cfg.progress
            items = [{"index": s.index, "path": s.path, "out": str(out / output_name(s.index)),
                      "regions": export.num_regions, "feature_dim": export.feature_dim} for s in shards]
            if _all_here(ray, cfg):  # the shards are on this machine's disk: read them here
                scans = {int(item["index"]): _scan_here(item) for item in items}
            else:
                with _job_errors(cfg):
                    scanned = (ray.data.from_items(items, override_num_blocks=len(items))
                               .map(scan_shard, num_cpus=1))
                    scans = {int(r["index"]): r for r in scanned.take_all()}
            check_scans(shards, scans)
            pending: list[Shard] = []
            for s, entry in zip(shards, entries, strict=True):
                scan = scans[s.index]
                entry["source_sha256"] = scan["source_sha256"]
                was = old.get(entry["file"])
                if (was and was.get("sha256") and was.get("source_sha256") == scan["source_sha256"]
                        and scan["out_sha256"] == was["sha256"]):
                    entry["sha256"], entry["bytes"] = was["sha256"], was.get("bytes")
                else:
                    pending.append(s)
            # every output name is listed before it is written: a rerun replaces only files it lists
            atomic_write_json(out / emb_manifest.MANIFEST, manifest)
            _log.info(f"embed: {len(shards)} shards, {manifest['count']} images; {len(pending)} to encode, "
                      f"{len(shards) - len(pending)} already done")
            if pending:
                with _job_errors(cfg):
                    _encode(ray, cfg, pending, out, entries, manifest)
        _final_check(out, shards, entries)
        manifest["complete"] = True
        manifest["run"]["seconds"] = round(time.perf_counter() - clock, 3)
        manifest["run"]["encoded_shards"] = [s.index for s in pending]
        atomic_write_json(out / emb_manifest.MANIFEST, manifest)
    _log.info(f"embedded {manifest['count']} images ({len(pending)} shards encoded) in "
              f"{manifest['run']['seconds']:.1f} s -> {out}")
    return manifest


def _encode(ray: Any, cfg: EmbedConfig, pending: list[Shard], out: Path, entries: list[dict[str, Any]],
            manifest: dict[str, Any]) -> None:
    items = [{"index": s.index, "path": s.path, "first_id": s.first_id,
              "out": str(out / output_name(s.index))} for s in pending]
    size = min(cfg.workers, len(items))
    ds = ray.data.from_items(items, override_num_blocks=len(items)).map_batches(
        ShardEncoder, batch_size=1, compute=ray.data.ActorPoolStrategy(size=size),
        fn_constructor_kwargs={"onnx_dir": str(Path(cfg.onnx_dir).resolve()), "backend": cfg.backend,
                               "engine_dir": str(Path(cfg.engine_dir).resolve()), "threads": cfg.threads,
                               "batch": cfg.batch},
        num_cpus=cfg.threads, num_gpus=1 if _needs_gpu(cfg.backend) else 0)
    failures: list[str] = []
    for row in ds.iter_rows():
        index = int(row["index"])
        entry = entries[index]
        if row["error"]:
            failures.append(f"{entry['source']}: {row['error']}")
            continue
        if int(row["rows"]) != entry["rows"]:
            failures.append(f"{entry['source']}: wrote {row['rows']} rows, the shard holds {entry['rows']}")
            continue
        entry["sha256"], entry["bytes"] = str(row["sha256"]), int(row["bytes"])
        atomic_write_json(out / emb_manifest.MANIFEST, manifest)  # what is finished survives an interrupt
    if failures:
        more = f" (and {len(failures) - 1} more)" if len(failures) > 1 else ""
        raise VsrnError(f"encoding failed for {failures[0]}{more}; fix it and run embed again (finished "
                        "shards are kept)")


def _final_check(out: Path, shards: list[Shard], entries: list[dict[str, Any]]) -> None:
    """Every id 0..n-1 once: each written file holds its source's row count, ids first_id.. by its
    parquet statistics, and the files' id ranges tile 0..n-1 (the inputs' row counts)."""
    pq = emb_manifest.pyarrow_parquet()
    expect = 0
    for s, entry in zip(shards, entries, strict=True):
        path = out / entry["file"]
        meta = pq.ParquetFile(path).metadata
        lo, hi = None, None
        for g in range(meta.num_row_groups):
            stats = meta.row_group(g).column(0).statistics
            if stats is None or not stats.has_min_max:
                raise VsrnError(f"{path} lacks id statistics; run embed again")
            lo = stats.min if lo is None else min(lo, stats.min)
            hi = stats.max if hi is None else max(hi, stats.max)
        if (s.first_id != expect or meta.num_rows != s.rows or lo != s.first_id
                or hi != s.first_id + s.rows - 1):
            raise VsrnError(f"{path} does not hold ids {s.first_id}..{s.first_id + s.rows - 1} once each "
                            f"({meta.num_rows} rows, ids {lo}..{hi}); run embed again")
        expect += s.rows
