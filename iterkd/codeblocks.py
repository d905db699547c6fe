"""Getting the program out of a model's answer: the first fenced Python block, else the text."""

from __future__ import annotations

import re

_FENCE = re.compile(r"```[ \t]*(?:python3?|py)?[ \t]*\n(.*?)(?:```|\Z)", re.DOTALL | re.IGNORECASE)


def extract_code(text: str) -> str:
    match = _FENCE.search(text)
    return match.group(1) if match else text
