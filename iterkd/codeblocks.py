"""Getting the program out of a model's answer: the first fenced block (untagged, or tagged with
one of the language's names), else the text."""

from __future__ import annotations

import re
from functools import cache

PYTHON_FENCES = ("python3", "python", "py")


@cache
def _fence(tags: tuple[str, ...]) -> re.Pattern[str]:
    names = "|".join(re.escape(t) for t in sorted(tags, key=len, reverse=True))
    return re.compile(rf"```[ \t]*(?:{names})?[ \t]*\n(.*?)(?:```|\Z)", re.DOTALL | re.IGNORECASE)


def extract_code(text: str, fences: tuple[str, ...] = PYTHON_FENCES) -> str:
    match = _fence(fences).search(text)
    return match.group(1) if match else text
