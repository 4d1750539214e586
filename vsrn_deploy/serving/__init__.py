"""Serving: Triton model repositories (`triton_repo`), a local Triton server (`triton_server`) and
the python-backend model files copied into repositories (`triton_models/`, not imported here)."""
