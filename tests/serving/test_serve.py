"""`vsrn-deploy serve` without a real server: where it looks for tritonserver (a pip install has no
checkout), what it checks before starting one, and how a server's failure becomes one line. A fake
`tritonserver` (a shell script) stands in; tests/system/serving runs the real one. Also the client's
own refusals (no server needed)."""

from __future__ import annotations

import os
import signal
import socket
import stat
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from vsrn_deploy.cli.app import app
from vsrn_deploy.core.errors import VsrnError
from vsrn_deploy.serving import triton_server
from vsrn_deploy.serving.triton_server import find_server, load_failures, stub_python

# two lines of a real tritonserver 2.51 log whose repository had a broken model.py and config.pbtxt
REAL_LOG = (
    'E1205 05:08:01.283755 21342 model_repository_manager.cc:1460] "Poll failed for model directory '
    "'tokenizer': failed to read text proto from /r/tokenizer/config.pbtxt\"\n"
    'E1205 05:08:02.008240 21342 model_lifecycle.cc:642] "failed to load \'image_encoder\' version 1: '
    'Internal: RuntimeError: boom in init\\n\\nAt:\\n  /r/image_encoder/1/model.py(110): <module>\\n"\n'
)


def _fake_server(root: Path, script: str = "exit 0") -> Path:
    """root/bin/tritonserver: a shell script standing in for the server."""
    binary = root / "bin" / "tritonserver"
    binary.parent.mkdir(parents=True)
    binary.write_text(f"#!/bin/sh\n{script}\n")
    binary.chmod(binary.stat().st_mode | stat.S_IXUSR)
    return binary


def _repo(root: Path) -> Path:
    (root / "image_encoder").mkdir(parents=True)
    (root / "image_encoder" / "config.pbtxt").write_text('name: "image_encoder"\n')
    return root


@pytest.fixture(autouse=True)
def _temp_in_tmp_path(tmp_path, monkeypatch):
    """serve keeps a failed start's temporary log (its error names it): here the failures are on
    purpose, so their logs go to the test's own folder, in this process and in the ones it starts."""
    import tempfile

    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    monkeypatch.setenv("TMPDIR", str(tmp_path))


@pytest.fixture
def no_server_anywhere(monkeypatch, tmp_path):
    """No $TRITONSERVER, nothing on PATH, no set-up environment: a plain pip install."""
    monkeypatch.delenv("TRITONSERVER", raising=False)
    empty = tmp_path / "empty_path"
    empty.mkdir()
    monkeypatch.setenv("PATH", str(empty))
    monkeypatch.setattr(triton_server, "_environments", lambda: [])


def test_no_server_says_how_to_get_one(no_server_anywhere):
    with pytest.raises(VsrnError) as refused:
        find_server()
    message = str(refused.value)
    assert "\n" not in message
    for needle in ("--server", "$TRITONSERVER", "nvidia-pytriton==0.7.0", "nvcr.io/nvidia/tritonserver"):
        assert needle in message, needle


def test_a_pip_install_has_no_checkout(monkeypatch, tmp_path):
    """Installed into site-packages, the package must not take site-packages/.venv for a checkout's."""
    site = tmp_path / "lib" / "python3.11" / "site-packages"
    module = site / "vsrn_deploy" / "serving" / "triton_server.py"
    monkeypatch.setattr(triton_server, "__file__", str(module))
    assert triton_server._checkout_venv() is None
    (site / "pyproject.toml").parent.mkdir(parents=True)
    (site / "pyproject.toml").write_text("")  # a checkout: pyproject.toml two folders above the package
    assert triton_server._checkout_venv() == site / ".venv"


def test_lookup_order_server_then_env_then_path_then_environment(no_server_anywhere, monkeypatch, tmp_path):
    given = _fake_server(tmp_path / "given")
    from_env = _fake_server(tmp_path / "env")
    on_path = _fake_server(tmp_path / "path")
    venv = tmp_path / "venv"
    _fake_server(venv / triton_server.PYTRITON_SERVER)
    monkeypatch.setattr(triton_server, "_environments", lambda: [venv])
    assert find_server() == venv / triton_server.PYTRITON_SERVER
    monkeypatch.setenv("PATH", str(on_path.parent))
    assert find_server() == on_path.parent.parent.resolve()
    monkeypatch.setenv("TRITONSERVER", str(from_env))
    assert find_server() == from_env.parent.parent.resolve()
    assert find_server(given) == given.parent.parent.resolve()  # the binary
    assert find_server(tmp_path / "given") == tmp_path / "given"  # or its folder
    with pytest.raises(VsrnError, match="--server .* neither a tritonserver binary"):
        find_server(tmp_path)
    monkeypatch.setenv("TRITONSERVER", str(tmp_path / "nothing"))
    with pytest.raises(VsrnError, match=r"\$TRITONSERVER=.*unset it"):
        find_server()


def test_the_stub_python_comes_from_a_set_up_environment(monkeypatch, tmp_path):
    venv = tmp_path / "venv"
    (venv / triton_server.STUB_PYTHON).parent.mkdir(parents=True)
    (venv / triton_server.STUB_PYTHON).write_text("")
    monkeypatch.setattr(triton_server, "_environments", lambda: [tmp_path / "other", venv])
    assert stub_python() == venv / triton_server.STUB_PYTHON
    assert stub_python("/x/bin/python") == Path("/x/bin/python")


def test_server_environment_puts_the_stub_python_and_its_libpython_first():
    import sys
    import sysconfig

    base = {"PATH": "/usr/bin", "LD_LIBRARY_PATH": "/opt/lib"}
    env = triton_server.server_environment(sys.executable, base)
    assert env["PATH"].split(os.pathsep)[:2] == [str(Path(sys.executable).parent), "/usr/bin"]
    if sysconfig.get_config_var("Py_ENABLE_SHARED"):
        assert env["LD_LIBRARY_PATH"].split(os.pathsep) == [sysconfig.get_config_var("LIBDIR"), "/opt/lib"]


def test_load_failures_name_each_model_with_the_first_line_of_its_reason():
    assert load_failures(REAL_LOG) == [
        ("tokenizer", "failed to read text proto from /r/tokenizer/config.pbtxt"),
        ("image_encoder", "Internal: RuntimeError: boom in init"),
    ]


def _free() -> str:
    return str(triton_server.free_port())


def _serve(*args: str):
    return CliRunner().invoke(app, ["serve", *args])


def _one_error_line(result) -> str:
    assert result.exit_code == 2, result.output
    lines = [line for line in result.output.splitlines() if line.startswith("error:")]
    assert len(lines) == 1 and "Traceback" not in result.output, result.output
    return lines[0]


@pytest.mark.parametrize("case", ["missing", "a file", "no model"])
def test_a_bad_repository_is_one_line(tmp_path, case):
    repo = tmp_path / "repo"
    if case == "a file":
        repo.write_text("")
    elif case == "no model":
        (repo / "notes").mkdir(parents=True)
    line = _one_error_line(_serve("--repo", str(repo), "--server", str(_fake_server(tmp_path / "s"))))
    assert str(repo) in line and "vsrn-deploy triton-repo" in line


def test_a_taken_port_is_one_line_and_nothing_starts(tmp_path):
    marker = tmp_path / "started"
    server = _fake_server(tmp_path / "s", f"touch {marker}")
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        port = sock.getsockname()[1]
        line = _one_error_line(_serve("--repo", str(_repo(tmp_path / "repo")), "--server", str(server),
                                      "--http-port", str(port), "--grpc-port", _free()))
    assert f"port {port} on 127.0.0.1 is taken" in line and "--http-port" in line
    assert not marker.exists()


def test_same_port_twice_is_refused(tmp_path):
    line = _one_error_line(_serve("--repo", str(_repo(tmp_path / "repo")), "--http-port", "9000",
                                  "--grpc-port", "9000", "--server", str(_fake_server(tmp_path / "s"))))
    assert "give two different ports" in line


def test_a_model_that_fails_to_load_is_named_with_its_reason(tmp_path):
    """The server's log, as tritonserver writes it when a model fails, becomes one line."""
    log = tmp_path / "server.log"
    log.write_text(REAL_LOG)
    server = _fake_server(tmp_path / "s", f"cat {log}\nexit 1")
    port, grpc = triton_server.free_port(), triton_server.free_port()
    line = _one_error_line(_serve("--repo", str(_repo(tmp_path / "repo")), "--server", str(server),
                                  "--http-port", str(port), "--grpc-port", str(grpc), "--host", "0.0.0.0"))
    assert "model 'image_encoder' failed to load: Internal: RuntimeError: boom in init" in line
    assert "model 'tokenizer' failed to load" in line and "server log:" in line


def test_listening_beyond_loopback_warns_that_triton_has_no_authentication(tmp_path):
    server = _fake_server(tmp_path / "s", "exit 1")
    result = _serve("--repo", str(_repo(tmp_path / "repo")), "--server", str(server), "--host", "0.0.0.0",
                    "--http-port", _free(), "--grpc-port", _free())
    assert result.exit_code == 2
    assert "warning: listening on 0.0.0.0: Triton has no authentication" in result.output


def test_client_refusals_are_one_line_vsrn_errors():
    from vsrn_deploy.client import TritonClient

    with pytest.raises(VsrnError, match="protocol must be one of http, grpc"):
        TritonClient("127.0.0.1:1", protocol="https")
    client = TritonClient(f"127.0.0.1:{triton_server.free_port()}")
    with pytest.raises(VsrnError, match="takes a list of strings"):
        client.encode_captions("a caption")
    with pytest.raises(VsrnError, match=r"shape \(n, regions, feature_dim\)"):
        client.encode_images(np.zeros((36, 2048), np.float32))
    for protocol in ("http", "grpc"):
        nobody = TritonClient(f"127.0.0.1:{triton_server.free_port()}", protocol=protocol, timeout=5)
        with pytest.raises(VsrnError) as refused:
            nobody.encode_captions(["a dog"])
        message = str(refused.value)
        assert "cannot reach a Triton server" in message and "vsrn-deploy serve" in message
        assert "\n" not in message
        nobody.close()


FAKE_TRITON = '''
import http.server, json, sys
port = int(next(a for a in sys.argv if a.startswith("--http-port=")).split("=")[1])
class Handler(http.server.BaseHTTPRequestHandler):
    def log_message(self, *args):
        pass
    def _send(self, body):
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)
    def do_GET(self):
        self._send(b"")
    def do_POST(self):
        self._send(json.dumps([{"name": "image_encoder", "version": "1", "state": "READY"}]).encode())
http.server.HTTPServer(("127.0.0.1", port), Handler).serve_forever()
'''


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM, signal.SIGKILL])
def test_ctrl_c_or_sigterm_stops_the_server_and_exits_130(tmp_path, signum):
    """A stand-in server that answers readiness and the repository index: serve reports it ready,
    and Ctrl-C or SIGTERM ends serve with 130 and the server with it; a serve killed outright takes
    the server down too (it was started to die with its parent)."""
    import re
    import subprocess
    import sys
    import time

    binary = _fake_server(tmp_path / "s", f'exec "{sys.executable}" -c \'{FAKE_TRITON}\' "$@"')
    env = dict(os.environ, PATH=str(Path(sys.executable).parent) + os.pathsep + os.environ["PATH"])
    proc = subprocess.Popen(["vsrn-deploy", "serve", "--repo", str(_repo(tmp_path / "repo")), "--server",
                             str(binary), "--http-port", _free(), "--grpc-port", _free()],
                            env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    out = ""
    deadline = time.monotonic() + 60
    while "Ctrl-C stops it" not in out and time.monotonic() < deadline and proc.poll() is None:
        out += proc.stdout.readline()
    assert "image_encoder version 1: READY" in out, out
    server_pid = int(re.search(r"\(pid (\d+)\)", out)[1])
    proc.send_signal(signum)
    if signum == signal.SIGKILL:
        assert proc.wait(30) == -signal.SIGKILL
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and _running(server_pid):
            time.sleep(0.1)
        assert not _running(server_pid), "the server outlived a killed serve"
        return
    assert proc.wait(30) == 130, out + proc.stdout.read()
    assert f"stopped tritonserver (pid {server_pid})" in proc.stdout.read()
    with pytest.raises(ProcessLookupError):
        os.kill(server_pid, 0)
    # a clean stop leaves no temporary log behind (each serve used to leave one in the temp folder)
    log = Path(re.search(r"server log: (\S+)", out)[1])
    assert "removed when Ctrl-C stops the server" in out and not log.exists(), log


def test_log_file_is_kept_and_a_failure_keeps_the_temporary_log(tmp_path):
    """--log-file names a new file that stays after the server stops; an existing file, or one in a
    missing folder, is one line before anything starts (serve never replaces a file); without
    --log-file a failed start keeps its temporary log, the one the error line names."""
    import re
    import signal
    import subprocess
    import sys
    import time

    marker = tmp_path / "started"
    server = _fake_server(tmp_path / "s", f"touch {marker}\necho 'E1205 boom: a server that fails'\nexit 1")
    repo = str(_repo(tmp_path / "repo"))
    mine = tmp_path / "mine.log"
    mine.write_text("the user's own notes\n")
    line = _one_error_line(_serve("--repo", repo, "--server", str(server), "--http-port", _free(),
                                  "--grpc-port", _free(), "--log-file", str(mine)))
    assert "exists; give a new path" in line and mine.read_text() == "the user's own notes\n"
    line = _one_error_line(_serve("--repo", repo, "--server", str(server), "--http-port", _free(),
                                  "--grpc-port", _free(), "--log-file", str(tmp_path / "no" / "s.log")))
    assert "does not exist" in line and not marker.exists()

    line = _one_error_line(_serve("--repo", repo, "--server", str(server), "--http-port", _free(),
                                  "--grpc-port", _free()))
    kept = Path(re.search(r"server log: ([^)\s]+)", line)[1])
    assert kept.is_file() and "a server that fails" in kept.read_text(), line
    kept.unlink()

    binary = _fake_server(tmp_path / "s2", f'exec "{sys.executable}" -c \'{FAKE_TRITON}\' "$@"')
    env = dict(os.environ, PATH=str(Path(sys.executable).parent) + os.pathsep + os.environ["PATH"])
    log = tmp_path / "server.log"
    proc = subprocess.Popen(["vsrn-deploy", "serve", "--repo", repo, "--server", str(binary), "--http-port",
                             _free(), "--grpc-port", _free(), "--log-file", str(log)],
                            env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    out = ""
    deadline = time.monotonic() + 60
    while "Ctrl-C stops it" not in out and time.monotonic() < deadline and proc.poll() is None:
        out += proc.stdout.readline()
    assert f"server log: {log}; Ctrl-C stops it" in out, out
    proc.send_signal(signal.SIGINT)
    assert proc.wait(30) == 130
    assert log.is_file()


def _running(pid: int) -> bool:
    """Whether `pid` runs (a zombie, exited but not yet reaped by init, counts as ended)."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except FileNotFoundError:
        return False


def test_a_python_the_models_cannot_run_in_is_warned_about(tmp_path):
    """numpy 2 (the 2.51 stub garbles captions under it) or a missing module: serve says so up front."""
    fake = tmp_path / "bin" / "python3"
    fake.parent.mkdir()
    probe = '{"python": "3.11", "numpy": "2.1.0", "onnxruntime": null, "nltk": "3.9"}'
    fake.write_text(f"#!/bin/sh\necho '{probe}'\n")
    fake.chmod(0o755)
    assert triton_server.python_problems(fake) == [
        "onnxruntime is not installed",
        "numpy is 2.1.0 (tritonserver 2.51's python backend garbles string tensors, so captions, "
        "under numpy 2)"]
    assert triton_server.python_problems(tmp_path / "missing") == [f"{tmp_path / 'missing'} does not run"]
    server = _fake_server(tmp_path / "s", "exit 1")
    result = _serve("--repo", str(_repo(tmp_path / "repo")), "--server", str(server), "--python", str(fake),
                    "--http-port", _free(), "--grpc-port", _free())
    assert result.exit_code == 2
    assert f"warning: in {fake}, the Python the python-backend models run in, numpy is 2.1.0" in result.output
