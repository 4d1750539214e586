"""The restricted unpickler: only allow-listed globals, nothing else runs."""

from __future__ import annotations

import collections
import pickle

import pytest

from vsrn_deploy.core.errors import VsrnError
from vsrn_deploy.io.safe_pickle import decode_py2_str, restricted_loads


def test_plain_data_loads_without_any_globals():
    data = {"a": [1, 2.5, None, True], b"k": ("x", b"y")}
    assert restricted_loads(pickle.dumps(data, protocol=4), {}) == data


def test_only_allow_listed_globals_are_built():
    blob = pickle.dumps(collections.OrderedDict(a=1), protocol=2)
    with pytest.raises(VsrnError, match="'collections.OrderedDict', which is not allowed"):
        restricted_loads(blob, {})
    allowed = {("collections", "OrderedDict"): collections.OrderedDict}
    assert restricted_loads(blob, allowed) == collections.OrderedDict(a=1)


def test_eval_payload_never_runs():
    class Payload:
        def __reduce__(self):
            return (eval, ("__import__('sys').modules.__setitem__('pwned_marker', 1)",))

    import sys

    with pytest.raises(VsrnError, match="builtins.eval"):
        restricted_loads(pickle.dumps(Payload()), {})
    assert "pwned_marker" not in sys.modules


def test_py2_strings_decode():
    assert decode_py2_str(b"caf\xc3\xa9") == "café"
    assert decode_py2_str(b"caf\xe9") == "café"  # Latin-1 when not UTF-8
    assert decode_py2_str("dog") == "dog"
