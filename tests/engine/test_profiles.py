"""Optimisation profile parsing, validation and per-input shapes."""

from __future__ import annotations

import pytest

from vsrn_deploy.backend.trt import fits
from vsrn_deploy.core.errors import VsrnError
from vsrn_deploy.engine.profiles import ProfileSpec, input_shapes, parse_triple


def test_parse_and_validate_triples():
    assert parse_triple("1, 8,32", "batch") == (1, 8, 32)
    cases = (("8,1,32", "min <= opt <= max"), ("0,1,2", ">= 1"), ("1,2", "three"), ("a,b,c", "integers"))
    for bad, msg in cases:
        with pytest.raises(VsrnError, match=msg):
            parse_triple(bad, "batch")


def test_profile_spec_parse_with_and_without_tokens():
    assert ProfileSpec.parse("1,8,32") == ProfileSpec(batch=(1, 8, 32))
    spec = ProfileSpec.parse("1,8,32:2,10,40")
    assert spec.tokens == (2, 10, 40)
    with pytest.raises(VsrnError, match="tokens"):
        ProfileSpec.parse("1,8,32:40,10,2")


def test_input_shapes_per_encoder():
    spec = ProfileSpec(batch=(1, 4, 16), tokens=(2, 12, 30))
    assert input_shapes("image", spec, num_regions=36, feature_dim=2048) == {
        "region_features": ((1, 36, 2048), (4, 36, 2048), (16, 36, 2048))}
    text = input_shapes("text", spec, num_regions=0, feature_dim=0)
    assert text == {"token_ids": ((1, 2), (4, 12), (16, 30)), "lengths": ((1,), (4,), (16,))}


def test_fits():
    shapes = input_shapes("text", ProfileSpec((1, 4, 16), (2, 12, 30)), num_regions=0, feature_dim=0)
    assert fits(shapes, {"token_ids": (3, 30), "lengths": (3,)})
    assert not fits(shapes, {"token_ids": (17, 5), "lengths": (17,)})
    assert not fits(shapes, {"token_ids": (3, 31), "lengths": (3,)})
