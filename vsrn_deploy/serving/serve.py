"""`vsrn-deploy serve`: tritonserver on a model repository, in the foreground.

Finds the server (`triton_server.find_server`), gives the python backend's stub its Python and that
Python's libpython, checks the repository and the ports first, waits until every model is ready,
prints the URLs and each model's state, and stops the server on Ctrl-C or SIGTERM (exit 130). Any
failure is one line: a missing server (how to get one), a bad repository, a taken port, a model that
failed to load (its reason). Triton has no authentication, so it listens on 127.0.0.1 unless told.
Standard library only.
"""

from __future__ import annotations

import logging
import os
import signal
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path

from vsrn_deploy.core.errors import VsrnError
from vsrn_deploy.serving import triton_server

_log = logging.getLogger(__name__)  # warnings; the command line shows them on stderr
LOOPBACK = ("127.0.0.1", "localhost", "::1")
INTERRUPTED = 130  # the exit status after Ctrl-C / SIGTERM, as a shell reports SIGINT


def check_repository(repo: str | os.PathLike[str]) -> list[str]:
    """The model names of `repo` (folders with config.pbtxt).

    Raises:
        VsrnError: not a folder, a file its vsrn_repo.json lists missing or changed, or no model in it.
    """
    path = Path(repo)
    hint = "write one with: vsrn-deploy triton-repo --onnx-dir EXPORT --out DIR --backend python --kind cpu"
    if not path.exists():
        raise VsrnError(f"--repo {repo} does not exist; {hint}")
    if not path.is_dir():
        raise VsrnError(f"--repo {repo} is not a folder; {hint}")
    from vsrn_deploy.artifacts.triton import verify_repository

    verify_repository(path)  # every file vsrn_repo.json lists, size and sha256 (none: served as it is)
    models = sorted(p.name for p in path.iterdir() if (p / "config.pbtxt").is_file())
    if not models:
        raise VsrnError(f"--repo {repo} holds no model (no <model>/config.pbtxt); {hint}")
    return models


def _check_port(flag: str, port: int) -> None:
    if not 1 <= port <= 65535:
        raise VsrnError(f"{flag} must be a TCP port, 1..65535 (got {port})")


def serve(repo: str | os.PathLike[str], *, http_port: int = 8000, grpc_port: int = 8001,
          server: str | os.PathLike[str] | None = None, host: str = "127.0.0.1",
          python: str | os.PathLike[str] | None = None, log_file: str | os.PathLike[str] | None = None,
          timeout: float = 300.0,
          say: Callable[[str], None] = print,
          ready: Callable[[triton_server.TritonServer], None] | None = None) -> int:
    """Serve `repo` until interrupted; returns 130 after Ctrl-C / SIGTERM.

    Args:
        repo: the model repository (`vsrn-deploy triton-repo`).
        http_port, grpc_port: where Triton's HTTP/REST and gRPC endpoints listen.
        server: the tritonserver binary or its install folder (default: `find_server()`'s search).
        host: the address to listen on (127.0.0.1: this machine only).
        python: the Python the python-backend models run in (default: `stub_python()`); warned about
            when it lacks numpy, onnxruntime or nltk, or has numpy 2.
        log_file: a new file for the server's log, kept. Default: a temporary file, removed when the
            server is stopped by Ctrl-C / SIGTERM, kept (and named in the error) when anything failed.
        timeout: seconds to wait for every model to be ready.
        say: where the URLs and model states go (stdout); warnings go to the `logging` warning level.
        ready: called with the running server once it is ready (tests, embedding callers).

    Raises:
        VsrnError: no server, a bad repository, a taken port, a model that failed to load, or the
            server exiting while it served.
    """
    models = check_repository(repo)
    _check_port("--http-port", http_port)
    _check_port("--grpc-port", grpc_port)
    if http_port == grpc_port:
        raise VsrnError(f"--http-port and --grpc-port are both {http_port}; give two different ports")
    root = triton_server.find_server(server)
    python = triton_server.stub_python(python)
    # a repository that carries its own environment (triton-repo --python-env) needs no packages here
    packed = triton_server.carries_python_env(repo)
    for problem in triton_server.python_problems(python) if not packed else []:
        _log.warning(f"warning: in {python}, the Python the python-backend models run in, {problem}; "
                     "pass --python a Python 3.11 with 'numpy<2' onnxruntime nltk")
    log, keep_log = _new_log(log_file)
    if host not in LOOPBACK:
        _log.warning(f"warning: listening on {host}: Triton has no authentication, so anyone who reaches "
                     "these ports can run the models (put it behind an authenticating proxy or a firewall)")
    running = None
    restore = _interruptible()
    try:
        running = triton_server.start_server(repo, server_root=root, python=python, host=host,
                                             http_port=http_port, grpc_port=grpc_port, log_path=log,
                                             timeout=timeout)
        states = running.models()
        say(f"tritonserver {root / 'bin' / 'tritonserver'} (pid {running.pid}) serves {Path(repo).resolve()}")
        say(f"HTTP/REST  http://{running.http_url}   (KServe v2: /v2/models/<model>/infer)")
        say(f"gRPC       {running.grpc_url}")
        for state in states:
            version = f" version {state.version}" if state.version else ""
            say(f"  {state.name}{version}: {state.state}" + (f" ({state.reason})" if state.reason else ""))
        missing = sorted(set(models) - {s.name for s in states if s.state == "READY"})
        if missing:
            raise VsrnError(f"models not ready: {', '.join(missing)} (server log: {log})")
        kept = "" if keep_log else " (removed when Ctrl-C stops the server; --log-file keeps one)"
        say(f"server log: {log}{kept}; Ctrl-C stops it")
        if ready is not None:
            ready(running)
        while running.alive():
            time.sleep(0.5)
        raise VsrnError(f"tritonserver exited with status {running.process.returncode} while serving: "
                        f"{triton_server.first_error(running.log_text()) or 'no error in its log'} "
                        f"(server log: {log})")
    except KeyboardInterrupt:
        if running is not None:
            _stop(running)
            say(f"stopped tritonserver (pid {running.pid})")
        if not keep_log:  # a clean stop: the temporary log goes (a failure keeps it: its path was named)
            log.unlink(missing_ok=True)
        return INTERRUPTED
    finally:
        if running is not None and running.alive():
            _stop(running)
        restore()


def _new_log(log_file: str | os.PathLike[str] | None) -> tuple[Path, bool]:
    """(the server log's path, whether it is kept after a clean stop): --log-file, created new (serve
    never replaces a file), or a temporary file."""
    if log_file is None:
        fd, name = tempfile.mkstemp(prefix="vsrn-tritonserver-", suffix=".log")
        os.close(fd)
        return Path(name), False
    path = Path(log_file)
    if not path.parent.is_dir():
        raise VsrnError(f"--log-file {log_file}: the folder {path.parent} does not exist; create it or "
                        "give another path")
    try:
        os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644))
    except FileExistsError:
        raise VsrnError(f"--log-file {log_file} exists; give a new path (serve never replaces a "
                        "file)") from None
    except OSError as exc:
        raise VsrnError(f"--log-file {log_file} cannot be created ({exc.strerror}); give a writable "
                        "path") from None
    return path, True


def _interruptible() -> Callable[[], None]:
    """Ctrl-C raises KeyboardInterrupt while serving, even where SIGINT was inherited as ignored (a
    process started in the background by a non-interactive shell); returns what restores the handler."""
    if threading.current_thread() is not threading.main_thread():
        return lambda: None
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    return lambda: signal.signal(signal.SIGINT, previous)


def _stop(running: triton_server.TritonServer) -> None:
    """Stop the server even if a second Ctrl-C lands while it shuts down."""
    try:
        running.stop()
    except KeyboardInterrupt:
        running.process.kill()
        running.process.wait(10)
