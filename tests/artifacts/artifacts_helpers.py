"""Helpers of the artifacts tests: user things planted in a folder the tool writes, and their state."""

from __future__ import annotations

from pathlib import Path


def plant(root: Path) -> dict[str, str]:
    """User things at depth 1 to 3 under `root` (files, a folder, symlinks to a file and a folder),
    inside the folders the tool writes too; returns {relative path: what it must still be}."""
    import os

    outside = root.parent / f"{root.name}-outside"
    outside.mkdir(exist_ok=True)
    (outside / "kept.txt").write_text("outside")
    planted: dict[str, str] = {}

    def put(rel: str, text: str) -> None:
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
        planted[rel] = text

    def link(rel: str, target: Path) -> None:
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        os.symlink(target, path)
        planted[rel] = f"-> {target}"

    put("NOTES.md", "depth 1")
    put("mine/a.txt", "depth 2")
    put("mine/deeper/b.txt", "depth 3")
    link("link-to-file", outside / "kept.txt")
    link("mine/link-to-folder", outside)
    return planted


def planted_state(root: Path, planted: dict[str, str]) -> dict[str, str]:
    import os

    state = {}
    for rel in planted:
        path = root / rel
        if path.is_symlink():
            state[rel] = f"-> {os.readlink(path)}"
        elif path.is_file():
            state[rel] = path.read_text()
        else:
            state[rel] = "gone"
    return state
