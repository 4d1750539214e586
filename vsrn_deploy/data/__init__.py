"""Data: the SCAN precomp reader, batching, and a synthetic dataset in the same layout.

Submodules import torch (`batching`) or only numpy (`precomp`, `synthetic`); import what you need.
"""
