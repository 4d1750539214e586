"""The documentation runs: every fenced bash/sh/console/python block of README.md and docs/*.md is
one test case (id `file:line`), executed in a folder laid out like the checkout after a finished
`vsrn-deploy demo` run (`runs/demo/...`, built small by the `docs_workspace` fixture; `.venv` and
`examples` link to the checkout's). A page is followed top to bottom: its blocks run in order, in
one copy of that folder per page, so a block may use what an earlier block of its page wrote.

A block that needs a GPU, a network or minutes carries, on the line right before its fence,
`<!-- docs-test: skip (the reason) -->`; it is reported as skipped with that reason. Text that is not
a command (file layouts, output samples, synopses) uses a fence that does not run, e.g. ```text.

Also checked: README.md stays short, every relative link in the docs points to a file that exists,
and README's command table and `vsrn-deploy --help` list the same commands.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
DOCS = [REPO / "README.md", *sorted((REPO / "docs").glob("*.md"))]
RUN_LANGS = {"bash": "shell", "sh": "shell", "console": "console", "python": "python"}
README_MAX_LINES = 200
# pages whose blocks another suite runs (their links are still checked here)
RUN_ELSEWHERE = {
    "docs/serving.md":
        "tests/system/serving/test_serve_docs.py runs this page's blocks against a real server",
}
BLOCK_TIMEOUT_S = 300

_FENCE = re.compile(r"^(?P<indent>\s*)(?P<fence>```+|~~~+)\s*(?P<lang>[\w+-]*)")
_DIRECTIVE = re.compile(r"^\s*<!--\s*docs-test:(?P<body>.*?)-->\s*$")
_SKIP = re.compile(r"^\s*skip\s*\((?P<reason>.+)\)\s*$")
_LINK = re.compile(r"!?\[[^\]]*\]\((?P<target>[^)\s]+)(?:\s+\"[^\"]*\")?\)")


@dataclass(frozen=True)
class Block:
    """One fenced block of a markdown file."""

    path: Path
    line: int  # 1-based line of the opening fence
    lang: str
    text: str
    skip: str | None  # the reason, when marked to skip
    bad_directive: str | None = None  # a docs-test comment that is not `skip (reason)`

    @property
    def id(self) -> str:
        return f"{self.path.relative_to(REPO)}:{self.line}"


def parse_blocks(path: Path) -> list[Block]:
    """Every fenced block of `path`, with the docs-test directive of the line right before it."""
    lines = path.read_text(encoding="utf-8").splitlines()
    blocks: list[Block] = []
    i = 0
    while i < len(lines):
        match = _FENCE.match(lines[i])
        if not match:
            i += 1
            continue
        indent, fence, lang = match["indent"], match["fence"], match["lang"].lower()
        start = i
        body: list[str] = []
        i += 1
        while i < len(lines) and not lines[i].strip().startswith(fence):
            line = lines[i]
            body.append(line[len(indent):] if line.startswith(indent) else line.lstrip())
            i += 1
        i += 1  # the closing fence
        skip = bad = None
        if start > 0 and (directive := _DIRECTIVE.match(lines[start - 1])):
            reason = _SKIP.match(directive["body"])
            if reason:
                skip = reason["reason"].strip()
            else:
                bad = directive["body"].strip()
        blocks.append(Block(path, start + 1, lang, "\n".join(body) + "\n", skip, bad))
    return blocks


def runnable_blocks() -> list[Block]:
    return [b for path in DOCS for b in parse_blocks(path) if b.lang in RUN_LANGS]


def _console_commands(text: str) -> str:
    """The commands of a console transcript: lines after `$ ` (continuation lines after a `\\`)."""
    out: list[str] = []
    continued = False
    for line in text.splitlines():
        if line.startswith("$ "):
            out.append(line[2:])
            continued = line.endswith("\\")
        elif continued:
            out.append(line)
            continued = line.endswith("\\")
    return "\n".join(out) + "\n"


def _environment() -> dict[str, str]:
    env = dict(os.environ)
    venv_bin = str(Path(sys.executable).parent)
    env["PATH"] = venv_bin + os.pathsep + env.get("PATH", "")
    env.setdefault("OMP_NUM_THREADS", "1")
    env["PYTHONDONTWRITEBYTECODE"] = "1"
    env["COLUMNS"] = "120"
    env.pop("PYTHONPATH", None)
    return env


def _end_group(process: subprocess.Popen) -> None:
    """End what the block left running (a server it started in the background): its own process
    group only, which start_new_session gave it."""
    import signal

    try:
        os.killpg(process.pid, signal.SIGTERM)
    except (ProcessLookupError, PermissionError):
        return
    if process.poll() is None:
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()


BLOCKS = runnable_blocks()
_PAGE_FOLDERS: dict[Path, Path] = {}  # page -> the folder its blocks run in


@pytest.mark.parametrize("block", BLOCKS, ids=[b.id for b in BLOCKS])
def test_block_runs(block: Block, docs_workspace: Path, tmp_path_factory: pytest.TempPathFactory) -> None:
    """The block runs to exit 0 in its page's copy of the demo-like folder."""
    assert block.bad_directive is None, (
        f"{block.id}: unknown docs-test directive {block.bad_directive!r}; write "
        "`<!-- docs-test: skip (reason) -->`")
    if block.skip is not None:
        pytest.skip(f"{block.id}: {block.skip}")
    elsewhere = RUN_ELSEWHERE.get(str(block.path.relative_to(REPO)))
    if elsewhere:
        pytest.skip(f"{block.id}: {elsewhere}")
    work = _PAGE_FOLDERS.get(block.path)
    if work is None:
        work = tmp_path_factory.mktemp("page") / block.path.stem
        shutil.copytree(docs_workspace, work, symlinks=True)
        _PAGE_FOLDERS[block.path] = work
    kind = RUN_LANGS[block.lang]
    if kind == "python":
        script = work / "_docs_block.py"
        script.write_text(block.text, encoding="utf-8")
        argv = [sys.executable, script.name]
    else:
        text = _console_commands(block.text) if kind == "console" else block.text
        script = work / "_docs_block.sh"
        script.write_text(text, encoding="utf-8")
        argv = ["bash", "-e", "-o", "pipefail", script.name]
    process = subprocess.Popen(argv, cwd=work, env=_environment(), stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, text=True, start_new_session=True)
    try:
        stdout, stderr = process.communicate(timeout=BLOCK_TIMEOUT_S)
    finally:
        _end_group(process)
    result = subprocess.CompletedProcess(argv, process.returncode, stdout, stderr)
    assert result.returncode == 0, (
        f"{block.id} exited {result.returncode}\n--- block ---\n{block.text}"
        f"--- stdout ---\n{result.stdout[-4000:]}\n--- stderr ---\n{result.stderr[-4000:]}")


def test_every_runnable_block_is_found() -> None:
    """The parser sees the blocks (a broken fence would silently test nothing)."""
    assert len(BLOCKS) >= 10
    assert any(b.path.name == "README.md" for b in BLOCKS)


def test_readme_is_short() -> None:
    count = len((REPO / "README.md").read_text(encoding="utf-8").splitlines())
    assert count <= README_MAX_LINES, (
        f"README.md has {count} lines (at most {README_MAX_LINES}): move detail to docs/")


def _links(path: Path) -> list[tuple[int, str]]:
    found = []
    in_fence = False
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        if _FENCE.match(line):
            in_fence = not in_fence
            continue
        if in_fence:
            continue
        for match in _LINK.finditer(line):
            found.append((number, match["target"]))
    return found


def _anchors(path: Path) -> set[str]:
    """GitHub's anchors of a markdown file's headings (lower case, punctuation dropped, spaces to
    hyphens, repeats numbered)."""
    seen: dict[str, int] = {}
    anchors = set()
    in_fence = False
    for line in path.read_text(encoding="utf-8").splitlines():
        if _FENCE.match(line):
            in_fence = not in_fence
            continue
        match = re.match(r"^#{1,6}\s+(.*?)\s*#*\s*$", line)
        if in_fence or not match:
            continue
        slug = re.sub(r"[^\w\- ]", "", match.group(1).lower()).replace(" ", "-")
        count = seen.get(slug, 0)
        seen[slug] = count + 1
        anchors.add(slug if count == 0 else f"{slug}-{count}")
    return anchors


@pytest.mark.parametrize("path", DOCS, ids=[str(p.relative_to(REPO)) for p in DOCS])
def test_relative_links_point_to_files(path: Path) -> None:
    """Every relative link names a file that exists, and a heading of it when it has an #anchor."""
    missing = []
    for number, target in _links(path):
        if re.match(r"^[a-z][a-z0-9+.-]*:", target):
            continue  # a URL (http:, mailto:)
        file_part, _, anchor = target.partition("#")
        linked = (path.parent / file_part) if file_part else path
        if not linked.exists():
            missing.append(f"{path.relative_to(REPO)}:{number}: {target} (no such file)")
        elif anchor and linked.suffix == ".md" and anchor not in _anchors(linked):
            missing.append(f"{path.relative_to(REPO)}:{number}: {target} (no such heading)")
    assert not missing, "broken links:\n" + "\n".join(missing)


def _readme_table_commands() -> set[str]:
    names = set()
    for line in (REPO / "README.md").read_text(encoding="utf-8").splitlines():
        match = re.match(r"^\|\s*`vsrn-deploy ([a-z][a-z0-9-]*)", line)
        if match:
            names.add(match.group(1))
    return names


def _cli_commands() -> set[str]:
    import typer.main

    from vsrn_deploy.cli.app import app

    group = typer.main.get_command(app)
    return {name for name, cmd in group.commands.items() if not getattr(cmd, "hidden", False)}


def test_readme_command_table_lists_every_command() -> None:
    missing = _cli_commands() - _readme_table_commands()
    assert not missing, (
        f"commands in `vsrn-deploy --help` missing from README's command table: {sorted(missing)}")


def test_readme_command_table_names_only_real_commands() -> None:
    extra = _readme_table_commands() - _cli_commands()
    assert not extra, (
        f"README's command table names commands `vsrn-deploy --help` does not have: {sorted(extra)}")


def test_readme_names_every_backend() -> None:
    from vsrn_deploy.core.backends import NAMES

    text = (REPO / "README.md").read_text(encoding="utf-8")
    missing = [name for name in NAMES if f"`{name}`" not in text]
    assert not missing, f"backends missing from README.md: {missing}"
