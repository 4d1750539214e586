"""ONNX export of the VSRN encoders in deploy form, checked against the eager model at export.

`export_model(checkpoint, out_dir, ExportConfig(...))` is the library entry point behind
`vsrn-deploy export`; `graphs` writes the ONNX graphs of the deploy-form modules (`vsrn_deploy.model.deploy`),
`fp16` chooses FP32 islands and converts, `trt_lint` checks TensorRT parser compatibility; the
export folder itself is declared in `vsrn_deploy.artifacts.export`.

Importing this package is cheap: the exporter (torch, onnxruntime) loads on first use.
"""

from __future__ import annotations

from typing import Any

__all__ = ["export_model", "export_loaded", "ExportConfig", "ExportResult"]


def __getattr__(name: str) -> Any:
    if name in __all__:
        from vsrn_deploy.export import exporter

        return getattr(exporter, name)
    raise AttributeError(name)
