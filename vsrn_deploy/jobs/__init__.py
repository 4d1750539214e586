"""Whole jobs behind the commands: validate, demo, encode a dataset or files. They compose the
layers below (model, export, backend, evaluation, io); the CLI calls them."""
