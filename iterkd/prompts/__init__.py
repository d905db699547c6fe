"""Prompt templates, referenced by name. A template's hash is part of every generation cache key,
so editing a template can never silently reuse generations made with the old wording."""

from __future__ import annotations

import hashlib
from functools import cache
from importlib import resources

import jinja2

_ENV = jinja2.Environment(undefined=jinja2.StrictUndefined, keep_trailing_newline=True)


class PromptTemplateError(KeyError):
    """No template of that name ships with iterkd."""


@cache
def template_source(name: str) -> str:
    path = resources.files(__package__) / f"{name}.jinja"
    if not path.is_file():
        known = sorted(
            p.name.removesuffix(".jinja")
            for p in resources.files(__package__).iterdir()
            if p.name.endswith(".jinja")
        )
        raise PromptTemplateError(f"no prompt template {name!r} (known: {', '.join(known)})")
    return path.read_text(encoding="utf-8")


def template_hash(name: str) -> str:
    return hashlib.sha256(template_source(name).encode()).hexdigest()[:16]


def render(name: str, **variables: object) -> str:
    return _ENV.from_string(template_source(name)).render(**variables)
