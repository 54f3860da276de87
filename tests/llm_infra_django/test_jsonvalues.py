"""unstorable(): every path in a JSON value holding a NUL character or a number that is not finite, and only those."""

from __future__ import annotations

import json
import math

from llm_infra_django.jsonvalues import NON_FINITE_MESSAGE, NUL_MESSAGE, unstorable


def test_non_finite_numbers_are_named_by_their_path() -> None:
    # given: what json.loads makes of 1e400, -1e400 and NaN
    value = json.loads('{"lr": 1e400, "layers": [1, -1e400, {"x": NaN}], "ok": 0.5, "big": 1' + "0" * 400 + "}")
    # when / then
    assert unstorable(value, "hyperparameters") == {
        "hyperparameters.layers[1]": NON_FINITE_MESSAGE,
        "hyperparameters.layers[2].x": NON_FINITE_MESSAGE,
        "hyperparameters.lr": NON_FINITE_MESSAGE,
    }


def test_nul_characters_are_named_in_values_and_keys() -> None:
    assert unstorable({"a": "x\x00", "b\x00": {"c": math.inf}, "d": ["ok", "y\x00"]}, "doc") == {
        "doc": NUL_MESSAGE,
        "doc.a": NUL_MESSAGE,
        "doc.d[1]": NUL_MESSAGE,
    }


def test_a_storable_value_has_no_finding() -> None:
    assert unstorable({"a": [1, 2.5, -1e308, True, None, "text", {"b": "c"}]}, "doc") == {}
    assert unstorable(math.nan, "score") == {"score": NON_FINITE_MESSAGE}
