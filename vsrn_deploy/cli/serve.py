"""`vsrn-deploy serve`: tritonserver on a model repository, in the foreground (until Ctrl-C)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from vsrn_deploy.cli.common import handle_errors


def serve(
    repo: Annotated[Path, typer.Option(help="The model repository (vsrn-deploy triton-repo --out).")],
    http_port: Annotated[int, typer.Option(help="HTTP/REST port (KServe v2 protocol).")] = 8000,
    grpc_port: Annotated[int, typer.Option(help="gRPC port.")] = 8001,
    server: Annotated[Path | None, typer.Option(
        help="The tritonserver binary or its install folder. Default: $TRITONSERVER, PATH, then the "
             "server `bash .ci/setup` unpacks into .venv/triton.")] = None,
    python: Annotated[Path | None, typer.Option(
        help="The Python the python-backend models run in ('numpy<2', onnxruntime, nltk). Default: the "
             "set-up's .venv/triton-python, else the first python3 on PATH.")] = None,
    host: Annotated[str, typer.Option(
        help="Address to listen on. Triton has no authentication: anything other than 127.0.0.1 lets "
             "whoever reaches the port run the models.")] = "127.0.0.1",
    log_file: Annotated[Path | None, typer.Option(
        help="A new file for the server's log, kept. Default: a temporary file, removed when the server "
             "is stopped with Ctrl-C, kept and named when something failed.")] = None,
) -> None:
    """Start tritonserver on --repo in the foreground; prints the URLs and each model's state, and stops
    the server on Ctrl-C or SIGTERM (exit 130)."""
    from vsrn_deploy.serving.serve import serve as run

    code = run(repo, http_port=http_port, grpc_port=grpc_port, server=server, host=host, python=python,
              log_file=log_file, say=typer.echo)
    raise typer.Exit(code)


def register(app: typer.Typer) -> None:
    """Add `serve` to the root app."""
    app.command("serve")(handle_errors(serve))
