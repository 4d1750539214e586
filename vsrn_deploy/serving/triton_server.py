"""Start and stop a local `tritonserver` on a model repository, bound to 127.0.0.1 on free ports.

Used by the serving tests and the Triton benchmark with the CPU server from the nvidia-pytriton wheel
(`.ci/setup.d/30-triton.sh` unpacks it into `.venv/triton/`); any tritonserver binary works. The
python backend's stub embeds the Python found first on PATH, so the folder of `python` (an
environment with numpy, onnxruntime and nltk) is put in front of PATH. Standard library only.

    with start_server("model_repository") as server:
        server.http_url  # "127.0.0.1:PORT" for tritonclient.http
"""

from __future__ import annotations

import os
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

# where .ci/setup.d/30-triton.sh puts the server of the nvidia-pytriton wheel, from the checkout root
PYTRITON_SERVER = Path(".venv") / "triton" / "pytriton" / "tritonserver"
# the Python the stub embeds (numpy < 2: the 2.51 stub garbles string tensors under numpy 2)
STUB_PYTHON = Path(".venv") / "triton-python" / "bin" / "python"
_CHECKOUT = Path(__file__).resolve().parents[2]


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def find_server(root: str | os.PathLike[str] | None = None) -> Path:
    """The server folder (with bin/tritonserver and backends/): `root`, else the checkout's .venv/triton.

    Raises:
        VsrnError: no tritonserver there (run `bash .ci/setup`).
    """
    folder = Path(root) if root is not None else _CHECKOUT / PYTRITON_SERVER
    if not (folder / "bin" / "tritonserver").is_file():
        raise VsrnError(f"no tritonserver in {folder}/bin; run `bash .ci/setup` (it unpacks the server of "
                        "nvidia-pytriton into .venv/triton) or pass the folder of a Triton install")
    return folder


@dataclass
class TritonServer:
    """A running tritonserver started by `start_server`; `stop()` ends it by its pid."""

    process: subprocess.Popen
    http_port: int
    grpc_port: int
    log_path: Path

    @property
    def http_url(self) -> str:
        return f"127.0.0.1:{self.http_port}"

    @property
    def grpc_url(self) -> str:
        return f"127.0.0.1:{self.grpc_port}"

    @property
    def pid(self) -> int:
        return self.process.pid

    def alive(self) -> bool:
        return self.process.poll() is None

    def log_tail(self, lines: int = 40) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""

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


def _libpython_dir(python: str | os.PathLike[str]) -> str:
    """The folder of `python`'s shared libpython ("" for a static build)."""
    code = ("import sysconfig; print(sysconfig.get_config_var('LIBDIR') "
            "if sysconfig.get_config_var('Py_ENABLE_SHARED') else '')")
    out = subprocess.run([str(python), "-c", code], capture_output=True, text=True, timeout=60)
    return out.stdout.strip() if out.returncode == 0 else ""


def _ready(port: int) -> bool:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/v2/health/ready", timeout=2) as resp:
            return resp.status == 200
    except (urllib.error.URLError, OSError):
        return False


def start_server(repository: str | os.PathLike[str], *,
                 server_root: str | os.PathLike[str] | None = None,
                 python: str | os.PathLike[str] | None = None,
                 log_path: str | os.PathLike[str] | None = None,
                 timeout: float = 120.0) -> TritonServer:
    """Start tritonserver on `repository` (127.0.0.1, free HTTP and gRPC ports, no metrics) and wait
    until it reports ready.

    Args:
        repository: the model repository (`vsrn-deploy triton-repo`).
        server_root: folder with bin/tritonserver and backends/ (default: the checkout's .venv/triton).
        python: the Python whose folder goes first on PATH (the python backend stub embeds it);
            default: the checkout's .venv/triton-python, else this Python.
        log_path: where the server's output goes (default: `<repository>.log`).
        timeout: seconds to wait for ready.

    Returns:
        The running server.

    Raises:
        VsrnError: no server binary; the server exited or was not ready in time (it is stopped,
            the message ends with its log).
    """
    root = find_server(server_root)
    if python is None:
        python = _CHECKOUT / STUB_PYTHON if (_CHECKOUT / STUB_PYTHON).is_file() else Path(sys.executable)
    repository = Path(repository).resolve()
    log = Path(log_path) if log_path is not None else repository.with_name(repository.name + ".log")
    http_port, grpc_port = free_port(), free_port()
    while grpc_port == http_port:
        grpc_port = free_port()
    env = dict(os.environ)
    env["PATH"] = f"{Path(python).parent}{os.pathsep}{env.get('PATH', '')}"
    libdir = _libpython_dir(python)
    if libdir:  # the stub must embed this Python's own libpython, not another 3.x build's
        env["LD_LIBRARY_PATH"] = os.pathsep.join(p for p in (libdir, env.get("LD_LIBRARY_PATH")) if p)
    cmd = [str(root / "bin" / "tritonserver"), f"--model-repository={repository}",
           f"--backend-directory={root / 'backends'}", "--http-address=127.0.0.1", f"--http-port={http_port}",
           "--grpc-address=127.0.0.1", f"--grpc-port={grpc_port}", "--allow-metrics=false",
           "--exit-timeout-secs=5", "--strict-readiness=true"]
    with open(log, "wb") as out:
        process = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, env=env, start_new_session=True)
    server = TritonServer(process, http_port, grpc_port, log)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not server.alive():
            raise VsrnError(f"tritonserver exited with status {process.returncode} while loading "
                            f"{repository}; its log ({log}):\n{server.log_tail()}")
        if _ready(http_port):
            return server
        time.sleep(0.5)
    server.stop()
    raise VsrnError(f"tritonserver was not ready after {timeout:.0f} s; its log ({log}):\n"
                    f"{server.log_tail()}")
