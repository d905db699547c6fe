"""Decode the tagged JSON values that the sandbox's harness sends (see `_harness._Encoder`).

The input is untrusted: every shape is checked, nesting is bounded, and anything unexpected is a
`ValueError` that the caller turns into a failed test, never an exception of the batch.
"""

from __future__ import annotations

from typing import Any

MAX_DEPTH = 120

_SEQUENCE_TAGS = {"$tuple": tuple, "$set": set, "$frozenset": frozenset}


def decode_value(data: Any, depth: int = 0) -> Any:
    if depth > MAX_DEPTH:
        raise ValueError("value nested too deeply")
    kind = type(data)
    if data is None or kind in (bool, int, float, str):
        return data
    if kind is list:
        return [decode_value(item, depth + 1) for item in data]
    if kind is dict and len(data) == 1:
        ((tag, payload),) = data.items()
        return _decode_tagged(tag, payload, depth + 1)
    raise ValueError(f"malformed value of JSON type {kind.__name__}")


def _decode_tagged(tag: str, payload: Any, depth: int) -> Any:
    if tag in _SEQUENCE_TAGS:
        items = [decode_value(item, depth) for item in _as_list(payload, tag)]
        try:
            return _SEQUENCE_TAGS[tag](items)
        except TypeError:
            raise ValueError(f"unhashable {tag} item") from None
    if tag == "$dict":
        pairs = [_as_list(pair, tag) for pair in _as_list(payload, tag)]
        if any(len(pair) != 2 for pair in pairs):
            raise ValueError("malformed $dict entry")
        try:
            return {decode_value(k, depth): decode_value(v, depth) for k, v in pairs}
        except TypeError:  # a list as a key: other languages' maps allow it, Python's do not
            raise ValueError("unhashable $dict key") from None
    if tag in ("$int", "$float", "$bytes", "$bytearray", "$str"):
        if type(payload) is not str or len(payload) > 64 << 20:
            raise ValueError(f"malformed {tag}")
        return _decode_scalar(tag, payload)
    if tag == "$complex":
        real, imag = (decode_value(x, depth) for x in _pair(payload, tag))
        if type(real) is not float or type(imag) is not float:
            raise ValueError("malformed $complex")
        return complex(real, imag)
    raise ValueError(f"unknown value tag {tag[:40]!r}")


def _decode_scalar(tag: str, payload: str) -> Any:
    if tag == "$int":
        return int(payload, 16)  # base 16: not subject to the int/str digit limit
    if tag == "$float":
        return float.fromhex(payload)
    data = bytes.fromhex(payload)
    if tag == "$str":
        return data.decode("utf-8", "surrogatepass")
    return data if tag == "$bytes" else bytearray(data)


def _as_list(payload: Any, tag: str) -> list:
    if type(payload) is not list:
        raise ValueError(f"malformed {tag}")
    return payload


def _pair(payload: Any, tag: str) -> list:
    items = _as_list(payload, tag)
    if len(items) != 2:
        raise ValueError(f"malformed {tag}")
    return items
