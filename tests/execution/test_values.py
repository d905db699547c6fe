"""Values cross the sandbox boundary as tagged JSON: exact builtin types only, decoded strictly."""

from __future__ import annotations

import collections
import json
import math

import pytest

from iterkd.execution._harness import Unencodable, _Encoder
from iterkd.execution.values import decode_value

ROUND_TRIP = [
    None,
    True,
    0,
    -(2**53) + 1,
    2**53,
    -(10**5000),
    1.5,
    -0.0,
    math.inf,
    "text with \u00e9 and \ud83d\ude00 and a lone \ud800",
    b"\x00\xff",
    bytearray(b"ab"),
    [1, [2, [3]]],
    (1, "a", (None,)),
    {1, 2, 3},
    frozenset({"x"}),
    {"a": 1, 2: [3], (4, 5): {"n": None}},
    complex(1, -2),
]


def through_the_wire(value: object) -> object:
    text = json.dumps(_Encoder().encode(value))
    return decode_value(json.loads(text))


@pytest.mark.parametrize("value", ROUND_TRIP, ids=lambda v: type(v).__name__)
def test_builtin_values_round_trip_with_their_exact_type(value: object) -> None:
    back = through_the_wire(value)
    assert type(back) is type(value)
    assert back == value
    if isinstance(value, float):
        assert math.copysign(1, back) == math.copysign(1, value)


def test_nan_survives() -> None:
    assert math.isnan(through_the_wire(math.nan))


def test_stdlib_dict_subclasses_become_dicts() -> None:
    for value in (
        collections.Counter("aab"),
        collections.OrderedDict(a=1),
        collections.defaultdict(int, a=1),
    ):
        back = through_the_wire(value)
        assert type(back) is dict and back == dict(value)


class LyingInt(int):
    def __eq__(self, other: object) -> bool:
        return True

    __hash__ = int.__hash__


@pytest.mark.parametrize(
    "value",
    [
        LyingInt(1),
        [1, LyingInt(2)],
        {"k": object()},
        (i for i in range(2)),
        range(3),
        type("S", (str,), {})("x"),
    ],
    ids=["int-subclass", "nested-subclass", "object", "generator", "range", "str-subclass"],
)
def test_anything_but_exact_builtin_types_is_refused(value: object) -> None:
    with pytest.raises(Unencodable):
        _Encoder().encode(value)


def test_cycles_and_huge_values_are_refused() -> None:
    cyclic: list = []
    cyclic.append(cyclic)
    with pytest.raises(Unencodable):
        _Encoder().encode(cyclic)
    with pytest.raises(Unencodable):
        _Encoder().encode(list(range(2_000_000)))


@pytest.mark.parametrize(
    "data",
    [
        {"$tuple": 3},
        {"$int": "zz"},
        {"$dict": [[1]]},
        {"$nope": []},
        {"a": 1, "b": 2},
        {"$complex": [1, "x"]},
    ],
)
def test_malformed_records_from_the_sandbox_are_value_errors(data: object) -> None:
    with pytest.raises(ValueError):
        decode_value(data)


def test_deep_nesting_from_the_sandbox_is_refused() -> None:
    data: object = 1
    for _ in range(500):
        data = [data]
    with pytest.raises(ValueError, match="too deeply"):
        decode_value(data)
