"""Find, start and stop a local `tritonserver` on a model repository.

The library behind `vsrn-deploy serve` (`vsrn_deploy.serving.serve`), the serving tests and the Triton
benchmark. Any tritonserver install works; the CPU server of the nvidia-pytriton wheel is what
`.ci/setup.d/30-triton.sh` unpacks into `.venv/triton/`. The python backend's stub embeds the Python
found first on PATH, and that Python's own libpython must come first on LD_LIBRARY_PATH (else its
standard library meets another build's libpython and `ssl`, hence nltk, fails inside the stub), so
`server_environment` sets both. Standard library only (no torch, no tritonclient).

    with start_server("model_repository") as server:
        server.http_url  # "127.0.0.1:PORT" for tritonclient.http
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from vsrn_deploy.core.errors import VsrnError
from vsrn_deploy.serving.triton_config import ENV_PARAMETER

# where .ci/setup.d/30-triton.sh puts the server of the nvidia-pytriton wheel, inside an environment
PYTRITON_SERVER = Path("triton") / "pytriton" / "tritonserver"
# the Python the stub embeds (numpy < 2: the 2.51 stub garbles string tensors under numpy 2)
STUB_PYTHON = Path("triton-python") / "bin" / "python"
SERVER_ENV = "TRITONSERVER"  # the binary (or its install folder), when not on PATH
PYTRITON_HINT = ("pip install --no-deps --target DIR nvidia-pytriton==0.7.0, then copy "
                 "DIR/pytriton/tritonserver/python_backend_stubs/3.11/triton_python_backend_stub into "
                 "DIR/pytriton/tritonserver/backends/python/ and pass --server "
                 "DIR/pytriton/tritonserver (docs/serving.md)")


def _checkout_venv() -> Path | None:
    """The .venv of the source checkout this package runs from (None from a pip install, where the
    package sits in site-packages and no pyproject.toml is two folders up)."""
    root = Path(__file__).resolve().parents[2]
    return root / ".venv" if (root / "pyproject.toml").is_file() else None


def _environments() -> list[Path]:
    """Environment folders that may hold a set-up's server: this Python's, then the checkout's."""
    found = [Path(sys.prefix)]
    venv = _checkout_venv()
    if venv is not None and venv.resolve() != Path(sys.prefix).resolve():
        found.append(venv)
    return found


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port on `host` that nothing listens on now."""
    with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


def port_taken(host: str, port: int) -> bool:
    """Whether something already listens on host:port (a bind there fails)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as sock:
        # as the server binds: a port whose last connections linger in TIME_WAIT is free for it
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError:
            return True
    return False


def _root_of(path: Path) -> Path | None:
    """The install folder (bin/tritonserver inside) of a binary or a folder, None if it has none."""
    if path.is_file() and path.name == "tritonserver":
        path = path.resolve().parent.parent if path.parent.name == "bin" else path.resolve().parent
        return path if (path / "bin" / "tritonserver").is_file() else None
    if (path / "bin" / "tritonserver").is_file():
        return path
    return None


def find_server(server: str | os.PathLike[str] | None = None) -> Path:
    """The tritonserver install folder (bin/tritonserver, usually backends/ beside it).

    Looked for in this order: `server` (the binary or its folder), $TRITONSERVER, `tritonserver` on
    PATH, the server `bash .ci/setup` unpacks into an environment (`<env>/triton/pytriton/tritonserver`
    of this Python's environment, then of the source checkout's .venv).

    Raises:
        VsrnError: none found (the message says how to get one), or `server` is not one.
    """
    if server is not None:
        root = _root_of(Path(server))
        if root is None:
            raise VsrnError(f"--server {server} is neither a tritonserver binary nor a folder with "
                            "bin/tritonserver; pass the binary or its install folder")
        return root
    if os.environ.get(SERVER_ENV):
        root = _root_of(Path(os.environ[SERVER_ENV]))
        if root is None:
            raise VsrnError(f"${SERVER_ENV}={os.environ[SERVER_ENV]} is neither a tritonserver binary nor "
                            "a folder with bin/tritonserver; fix it or unset it")
        return root
    on_path = shutil.which("tritonserver")
    if on_path:
        root = _root_of(Path(on_path))
        if root is not None:
            return root
    for env in _environments():
        if (env / PYTRITON_SERVER / "bin" / "tritonserver").is_file():
            return env / PYTRITON_SERVER
    raise VsrnError("no tritonserver found (tried --server, $TRITONSERVER, PATH and a set-up's "
                    f"<env>/{PYTRITON_SERVER}); use the official container nvcr.io/nvidia/tritonserver, "
                    f"or get the CPU server of the nvidia-pytriton wheel: {PYTRITON_HINT}")


def stub_python(python: str | os.PathLike[str] | None = None) -> Path:
    """The Python the python backend's stub embeds: `python`, else a set-up's `<env>/triton-python`
    (numpy < 2, onnxruntime, nltk), else the first python3 on PATH (where the stub would look), else
    this Python."""
    if python is not None:
        return Path(python)
    for env in _environments():
        if (env / STUB_PYTHON).is_file():
            return env / STUB_PYTHON
    on_path = shutil.which("python3")
    return Path(on_path) if on_path else Path(sys.executable)


_PROBE = """
import importlib, json, sys
found = {}
for name in ("numpy", "onnxruntime", "nltk"):
    try:
        found[name] = importlib.import_module(name).__version__
    except Exception:
        found[name] = None
print(json.dumps({"python": "%d.%d" % sys.version_info[:2], **found}))
"""


def python_problems(python: str | os.PathLike[str]) -> list[str]:
    """What in `python` keeps the repository's python-backend models from working with the 2.51 stub:
    missing numpy / onnxruntime / nltk, numpy 2 (the stub garbles string tensors under it)."""
    try:
        out = subprocess.run([str(python), "-c", _PROBE], capture_output=True, text=True, timeout=120)
        found = json.loads(out.stdout)
    except (OSError, ValueError, subprocess.TimeoutExpired):
        return [f"{python} does not run"]
    problems = [f"{name} is not installed" for name in ("numpy", "onnxruntime", "nltk") if not found[name]]
    if found["numpy"] and int(found["numpy"].split(".")[0]) >= 2:
        problems.append(f"numpy is {found['numpy']} (tritonserver 2.51's python backend garbles string "
                        "tensors, so captions, under numpy 2)")
    return problems


def carries_python_env(repository: str | os.PathLike[str]) -> bool:
    """Whether every python-backend model of the repository names a packed environment
    (EXECUTION_ENV_PATH, `triton-repo --python-env`): the backend activates it, so the server's own
    Python needs no packages, only to be the Python 3.11 whose libpython the stub links."""
    packed = plain = 0
    for config in Path(repository).glob("*/config.pbtxt"):
        try:
            text = config.read_text(errors="replace")
        except OSError:
            continue
        if not re.search(r'^\s*backend:\s*"python"', text, re.MULTILINE):
            continue
        if re.search(rf'key:\s*"{ENV_PARAMETER}"', text):
            packed += 1
        else:
            plain += 1
    return packed > 0 and plain == 0


def _libpython_dir(python: str | os.PathLike[str]) -> str:
    """The folder of `python`'s shared libpython ("" for a static build)."""
    code = ("import sysconfig; print(sysconfig.get_config_var('LIBDIR') "
            "if sysconfig.get_config_var('Py_ENABLE_SHARED') else '')")
    out = subprocess.run([str(python), "-c", code], capture_output=True, text=True, timeout=60)
    return out.stdout.strip() if out.returncode == 0 else ""


def server_environment(python: str | os.PathLike[str], base: dict[str, str] | None = None) -> dict[str, str]:
    """The server's environment: `python`'s folder first on PATH (the stub embeds the first Python
    there) and its libpython's folder first on LD_LIBRARY_PATH."""
    env = dict(os.environ if base is None else base)
    env["PATH"] = os.pathsep.join(p for p in (str(Path(python).parent), env.get("PATH")) if p)
    libdir = _libpython_dir(python)
    if libdir:  # the stub must embed this Python's own libpython, not another 3.x build's
        env["LD_LIBRARY_PATH"] = os.pathsep.join(p for p in (libdir, env.get("LD_LIBRARY_PATH")) if p)
    return env


def server_command(root: Path, repository: Path, *, host: str, http_port: int, grpc_port: int) -> list[str]:
    """tritonserver's command line: HTTP and gRPC on `host`, no metrics, strict readiness."""
    cmd = [str(root / "bin" / "tritonserver"), f"--model-repository={repository}"]
    if (root / "backends").is_dir():
        cmd.append(f"--backend-directory={root / 'backends'}")
    return cmd + [f"--http-address={host}", f"--http-port={http_port}", f"--grpc-address={host}",
                  f"--grpc-port={grpc_port}", "--allow-metrics=false", "--exit-timeout-secs=5",
                  "--strict-readiness=true"]


_FAILED = (re.compile(r"failed to load '(?P<model>[^']+)' version \d+: (?P<reason>.*)"),
           re.compile(r"Poll failed for model directory '(?P<model>[^']+)': (?P<reason>.*)"))
_ERROR_LINE = re.compile(r'^E\d{4} [\d:.]+\s+\d+ [\w.]+:\d+\] "(?P<message>.*)"\s*$')


def load_failures(log: str) -> list[tuple[str, str]]:
    """(model, first line of its reason) for each model the server's log says failed to load."""
    found: list[tuple[str, str]] = []
    for line in log.splitlines():
        error = _ERROR_LINE.match(line)
        if not error:
            continue
        for pattern in _FAILED:
            hit = pattern.search(error["message"])
            if hit and hit["model"] not in {m for m, _ in found}:
                found.append((hit["model"], hit["reason"].split("\\n")[0].strip()))
    return found


def first_error(log: str) -> str:
    """The first error line of the server's log (its message), or ''."""
    for line in log.splitlines():
        error = _ERROR_LINE.match(line)
        if error and "CudaDriverHelper" not in error["message"]:
            return error["message"].split("\\n")[0].strip()
    for line in log.splitlines():
        if line.startswith("error:") or "already in use" in line:
            return line.strip()
    return ""


@dataclass
class ModelState:
    """One model of the repository as the server reports it."""

    name: str
    version: str
    state: str
    reason: str


@dataclass
class TritonServer:
    """A running tritonserver started by `start_server`; `stop()` ends it by its pid."""

    process: subprocess.Popen
    http_port: int
    grpc_port: int
    log_path: Path
    host: str = "127.0.0.1"

    @property
    def http_url(self) -> str:
        return f"{_url_host(self.host)}:{self.http_port}"

    @property
    def grpc_url(self) -> str:
        return f"{_url_host(self.host)}:{self.grpc_port}"

    @property
    def pid(self) -> int:
        return self.process.pid

    def alive(self) -> bool:
        return self.process.poll() is None

    def log_text(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")
        except OSError:
            return ""

    def log_tail(self, lines: int = 40) -> str:
        return "\n".join(self.log_text().splitlines()[-lines:])

    def models(self) -> list[ModelState]:
        """Every model of the repository with its state (the repository index API)."""
        request = urllib.request.Request(f"http://{self.http_url}/v2/repository/index", data=b"{}",
                                         method="POST", headers={"Content-Type": "application/json"})
        with urllib.request.urlopen(request, timeout=10) as resp:
            index = json.loads(resp.read())
        return [ModelState(m["name"], str(m.get("version", "")), str(m.get("state", "")),
                           str(m.get("reason", ""))) for m in index]

    def stop(self, timeout: float = 30.0) -> int:
        """SIGTERM to the server's pid, SIGKILL after `timeout` s; returns its exit status."""
        if self.alive():
            os.kill(self.pid, signal.SIGTERM)
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                os.kill(self.pid, signal.SIGKILL)
                self.process.wait(10)
        return int(self.process.returncode)

    def __enter__(self) -> TritonServer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def _url_host(host: str) -> str:
    """The host as a URL writes it: a wildcard address is reached on loopback, IPv6 in brackets."""
    if host in ("0.0.0.0", ""):
        return "127.0.0.1"
    if host == "::":
        return "[::1]"
    return f"[{host}]" if ":" in host else host


def _ready(http_url: str) -> bool:
    try:
        with urllib.request.urlopen(f"http://{http_url}/v2/health/ready", timeout=2) as resp:
            return resp.status == 200
    except (urllib.error.URLError, OSError):
        return False


def _die_with_parent() -> None:
    """In the server's process before exec: SIGTERM it when the process that started it dies (Linux),
    so a killed `vsrn-deploy serve` leaves no server behind."""
    try:
        import ctypes

        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
    except Exception:  # noqa: BLE001 - not Linux: nothing to arrange
        pass


def start_server(repository: str | os.PathLike[str], *,
                 server_root: str | os.PathLike[str] | None = None,
                 python: str | os.PathLike[str] | None = None,
                 host: str = "127.0.0.1",
                 http_port: int | None = None,
                 grpc_port: int | None = None,
                 log_path: str | os.PathLike[str] | None = None,
                 timeout: float = 120.0) -> TritonServer:
    """Start tritonserver on `repository` and wait until it reports ready.

    Args:
        repository: the model repository (`vsrn-deploy triton-repo`).
        server_root: the tritonserver binary or its install folder (default: `find_server()`).
        python: the Python the python backend stub embeds (default: `stub_python()`).
        host: the address HTTP and gRPC listen on.
        http_port, grpc_port: ports (default: free ones).
        log_path: where the server's output goes (default: `<repository>.log`).
        timeout: seconds to wait for ready.

    Returns:
        The running server.

    Raises:
        VsrnError: no server binary; a port is taken; the server exited or was not ready in time (it
            is stopped; the message names each model that failed to load with its reason, or the
            server's first error, then the log's path).
    """
    root = find_server(server_root)
    repository = Path(repository).resolve()
    log = Path(log_path) if log_path is not None else repository.with_name(repository.name + ".log")
    http_port = http_port if http_port is not None else free_port(host)
    grpc_port = grpc_port if grpc_port is not None else free_port(host)
    while grpc_port == http_port:
        grpc_port = free_port(host)
    for flag, port in (("--http-port", http_port), ("--grpc-port", grpc_port)):
        if port_taken(host, port):
            raise VsrnError(f"port {port} on {host} is taken (another server?); pass a free one with "
                            f"{flag} N")
    env = server_environment(stub_python(python))
    cmd = server_command(root, repository, host=host, http_port=http_port, grpc_port=grpc_port)
    with open(log, "wb") as out:
        process = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, env=env, start_new_session=True,
                                   preexec_fn=_die_with_parent)  # noqa: PLW1509 - only a prctl call
    server = TritonServer(process, http_port, grpc_port, log, host)
    deadline = time.monotonic() + timeout
    try:
        while time.monotonic() < deadline:
            if not server.alive():
                raise VsrnError(_failure(server, f"tritonserver exited with status {process.returncode} "
                                                 f"while loading {repository}"))
            if _ready(server.http_url):
                return server
            time.sleep(0.25)
        server.stop()
        raise VsrnError(_failure(server, f"tritonserver was not ready after {timeout:.0f} s"))
    except BaseException:
        server.stop()
        raise


def _failure(server: TritonServer, what: str) -> str:
    """One line: what happened, each failing model's reason (or the first error), the log's path."""
    text = server.log_text()
    failures = load_failures(text)
    if failures:
        detail = "; ".join(f"model '{m}' failed to load: {r}" for m, r in failures)
    else:
        detail = first_error(text) or "no error in its log"
    return f"{what}: {detail} (server log: {server.log_path})"
