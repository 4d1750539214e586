"""TensorRT engines: building plans from the exported ONNX graphs (`builder`), their optimisation
profiles (`profiles`) and the JSON sidecar checked before a plan is loaded (`sidecar`).

Nothing here imports tensorrt or torch at module level.
"""
