"""Serving: Triton model repositories (`triton_repo`), finding and starting a local Triton server
(`triton_server`), `vsrn-deploy serve` (`serve`), and the python-backend model files copied into
repositories (`triton_models/`, not imported here). The client is `vsrn_deploy.client`. No torch."""
