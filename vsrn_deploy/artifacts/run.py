"""Run folders: the demo's (`vsrn-deploy demo --out runs/demo`), marked by demo_summary.json.

demo_summary.json keys: written_by, config (asdict DemoConfig), stages {name: seconds}, status, and
what each stage reported. A demo rewrites only a folder an earlier demo marked (or an empty one).
Training run folders keep their fixed file names (`vsrn_deploy.training.trainer.RUN_FILES`) and
are guarded by `vsrn_deploy.artifacts.outputs.check_run_folder` / `run_folder_guard`.
"""

from __future__ import annotations

import os
from typing import Any

from vsrn_deploy.artifacts.base import Kind
from vsrn_deploy.artifacts.outputs import read_owned_manifest

DEMO_SUMMARY = "demo_summary.json"


def _legacy_demo(data: dict[str, Any]) -> bool:
    """Demo summaries written before the ownership marker existed."""
    return isinstance(data.get("config"), dict) and isinstance(data.get("stages"), dict)


DEMO = Kind("demo", DEMO_SUMMARY, "vsrn-deploy demo --out {folder}", recognise=_legacy_demo)


def demo_summary(folder: str | os.PathLike) -> dict[str, Any] | None:
    """The summary of an earlier demo in `folder` (its marker, or an older summary), else None."""
    return read_owned_manifest(folder, DEMO.manifest_name, DEMO.name, DEMO.recognise)
