"""The values of Python tests as other languages see them: a small type lattice.

MultiPL-E-style translation only carries values of simple types: int, float, bool, str, None,
lists, tuples and dicts of them. Each is given a type here, and the types one argument (or the
return value) takes over all of a question's tests are unified: `[1, 2]` and `[]` are both an int
list, `3` and `2.5` are floats, `None` and `4` are an optional int. A statically typed target
(OCaml) needs that one type; for the dynamic ones, values that do not unify are of type `any`. What cannot be typed
raises `Untranslatable` with the reason, which is reported, never guessed around.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

Kind = Literal[
    "int", "float", "bool", "str", "none", "list", "tuple", "dict", "option", "unknown", "any"
]


class Untranslatable(ValueError):
    """This test (or value) has no faithful form in the target language; the message says why."""


@dataclass(frozen=True)
class VType:
    kind: Kind
    args: tuple[VType, ...] = ()

    def __str__(self) -> str:
        if not self.args:
            return self.kind
        return f"{self.kind}[{', '.join(map(str, self.args))}]"

    def has_any(self) -> bool:
        return self.kind == "any" or any(arg.has_any() for arg in self.args)

    def has_unknown(self) -> bool:
        """Not one static type: an empty list's elements (unknown), mixed values (any)."""
        return self.kind in ("unknown", "any") or any(arg.has_unknown() for arg in self.args)


UNKNOWN = VType("unknown")
ANY = VType("any")  # values of several types in one place: fine for a dynamic language only
_SCALARS: dict[type, VType] = {
    bool: VType("bool"),
    int: VType("int"),
    float: VType("float"),
    str: VType("str"),
    type(None): VType("none"),
}


def type_of(value: Any) -> VType:
    """The type of a test value (`any` inside where elements mix); Untranslatable for anything
    but the simple types."""
    scalar = _SCALARS.get(type(value))
    if scalar is not None:
        return scalar
    if type(value) is list:
        return VType("list", (unify_all(type_of(v) for v in value),))
    if type(value) is tuple:
        return VType("tuple", tuple(type_of(v) for v in value))
    if type(value) is dict:
        keys = unify_all(type_of(k) for k in value)
        return VType("dict", (keys, unify_all(type_of(v) for v in value.values())))
    raise Untranslatable(f"a value of type {type(value).__name__} ({_short(value)})")


def unify_all(types: Any) -> VType:
    """The elements' one type; `any` when they mix (a typed target then refuses the value)."""
    result = UNKNOWN
    for vtype in types:
        try:
            result = unify(result, vtype)
        except Untranslatable:
            return ANY
    return result


def unify(a: VType, b: VType) -> VType:
    """The one type both values fit, or Untranslatable (e.g. a list mixing ints and strings)."""
    if a == b or b.kind == "unknown" or a.kind == "any":
        return a
    if a.kind == "unknown" or b.kind == "any":
        return b
    if {a.kind, b.kind} == {"int", "float"}:
        return VType("float")
    if a.kind == "none" or b.kind == "none":
        other = b if a.kind == "none" else a
        return other if other.kind == "option" else VType("option", (other,))
    if a.kind == "option" or b.kind == "option":
        inner_a = a.args[0] if a.kind == "option" else a
        inner_b = b.args[0] if b.kind == "option" else b
        return VType("option", (unify(inner_a, inner_b),))
    if a.kind == b.kind and len(a.args) == len(b.args) and a.kind in ("list", "tuple", "dict"):
        return VType(a.kind, tuple(unify(x, y) for x, y in zip(a.args, b.args, strict=True)))
    raise Untranslatable(f"values of types {a} and {b} mixed in one place")


def contains_kind(value: Any, kinds: tuple[type, ...], inside_only: bool = False) -> bool:
    """Whether `value` holds an instance of `kinds` (inside a container, with `inside_only`)."""
    if not inside_only and type(value) in kinds:
        return True
    if type(value) in (list, tuple):
        return any(contains_kind(v, kinds) for v in value)
    if type(value) is dict:
        return any(contains_kind(v, kinds) for pair in value.items() for v in pair)
    return False


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:60] + "..."
