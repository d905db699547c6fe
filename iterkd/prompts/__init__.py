"""Prompt templates, referenced by name, read from a prompt folder.

A run's `prompts` key names a folder of `<name>.jinja` files (relative to the working directory;
the repository's top-level `prompts/` holds a copy of the defaults to start from). A template
missing from that folder falls back to iterkd's own default (`iterkd/prompts/*.jinja`, shipped
with the package, so an installed iterkd works without a checkout), so a folder may hold only the
templates it changes. `prompts: null` uses the defaults alone.

A template's hash, of the text actually used (the user's file or the default), is part of every
generation cache key, so editing a prompt can never silently reuse generations made with the old
wording; an unchanged copy hashes like the default and reuses its generations.

    prompts = PromptSet.from_config(cfg.prompts)     # DEFAULT_PROMPTS: the package's own
    text = prompts.render("judge", prompt=..., code=...)
    key = prompts.template_hash("judge")
"""

from __future__ import annotations

import hashlib
from functools import cache
from importlib import resources
from pathlib import Path

import jinja2
import jinja2.meta

_ENV = jinja2.Environment(undefined=jinja2.StrictUndefined, keep_trailing_newline=True)
CONFIG_KEY = "prompts"  # the RunConfig key naming the folder (said in every folder error)


class PromptTemplateError(KeyError):
    """No template of that name ships with iterkd."""


class PromptFolderError(ValueError):
    """The configured prompt folder cannot be used; the message names the config key."""


@cache
def default_names() -> tuple[str, ...]:
    """Every template iterkd uses, as shipped."""
    return tuple(
        sorted(
            p.name.removesuffix(".jinja")
            for p in resources.files(__package__).iterdir()
            if p.name.endswith(".jinja")
        )
    )


@cache
def default_source(name: str) -> str:
    """The package's own text of template `name`."""
    if name not in default_names():
        known = ", ".join(default_names())
        raise PromptTemplateError(f"no prompt template {name!r} (known: {known})")
    return (resources.files(__package__) / f"{name}.jinja").read_text(encoding="utf-8")


@cache
def _compiled(source: str) -> jinja2.Template:
    # compiled once per text: a stage renders the same template for thousands of samples
    return _ENV.from_string(source)


class PromptSet:
    """The templates of one prompt folder, each falling back to the package default when the
    folder lacks it (folder None: the defaults alone). A template is read once, on first use,
    so one stage renders every prompt from the same text even if the file is edited meanwhile."""

    def __init__(self, folder: str | Path | None = None) -> None:
        self.folder = None if folder is None else Path(folder).expanduser()
        if self.folder is not None and not self.folder.is_dir():
            where = "" if self.folder.is_absolute() else f" in {Path.cwd()}"
            raise PromptFolderError(
                f"{CONFIG_KEY}: prompt folder {folder} does not exist{where} (a relative path "
                "is from the working directory; null uses iterkd's default prompts)"
            )
        self._sources: dict[str, str] = {}

    @classmethod
    def from_config(cls, folder: str | None) -> PromptSet:
        return DEFAULT_PROMPTS if folder is None else cls(folder)

    def path(self, name: str) -> Path | None:
        """The user's file for template `name`, or None (the package default is used)."""
        default_source(name)  # an unknown name is an error even when a file of that name exists
        if self.folder is None:
            return None
        path = self.folder / f"{name}.jinja"
        return path if path.is_file() else None

    def source(self, name: str) -> str:
        if name not in self._sources:
            path = self.path(name)
            text = default_source(name) if path is None else path.read_text(encoding="utf-8")
            self._sources[name] = text
        return self._sources[name]

    def template_hash(self, name: str) -> str:
        return hashlib.sha256(self.source(name).encode()).hexdigest()[:16]

    def render(self, name: str, /, **variables: object) -> str:
        try:
            return _compiled(self.source(name)).render(**variables)
        except jinja2.TemplateError as exc:
            exc.add_note(f"in the prompt template {self.where(name)}")
            raise

    def where(self, name: str) -> str:
        """Where template `name` comes from, for messages."""
        path = self.path(name)
        return str(path) if path is not None else f"iterkd default {name}.jinja"

    def problems(self) -> list[str]:
        """What `iterkd validate` reports of the folder: files that are no template iterkd uses
        (a misspelt name would silently be ignored), Jinja syntax errors, and variables iterkd
        does not pass (they would fail at render time)."""
        if self.folder is None:
            return []
        out = []
        for path in sorted(self.folder.glob("*.jinja")):
            name = path.name.removesuffix(".jinja")
            if name not in default_names():
                known = ", ".join(default_names())
                out.append(f"{CONFIG_KEY}: {path} is not a template iterkd uses (known: {known})")
                continue
            out += _template_problems(path, path.read_text(encoding="utf-8"), name)
        return out

    def overridden(self) -> list[str]:
        """The templates the folder replaces (the rest are the defaults)."""
        return [name for name in default_names() if self.path(name) is not None]


def _template_problems(path: Path, text: str, name: str) -> list[str]:
    try:
        used = jinja2.meta.find_undeclared_variables(_ENV.parse(text))
    except jinja2.TemplateSyntaxError as exc:
        return [f"{CONFIG_KEY}: {path}: line {exc.lineno}: Jinja syntax error: {exc.message}"]
    # what iterkd passes to a template: exactly what its default uses
    passed = jinja2.meta.find_undeclared_variables(_ENV.parse(default_source(name)))
    unknown = sorted(used - passed)
    if unknown:
        return [
            f"{CONFIG_KEY}: {path}: uses {', '.join(unknown)}, which iterkd does not pass to "
            f"{name} (it passes: {', '.join(sorted(passed))})"
        ]
    return []


DEFAULT_PROMPTS = PromptSet()


def template_source(name: str) -> str:
    """The package default's text of template `name`."""
    return DEFAULT_PROMPTS.source(name)


def template_hash(name: str) -> str:
    """The package default's hash of template `name`."""
    return DEFAULT_PROMPTS.template_hash(name)


def render(name: str, /, **variables: object) -> str:
    """Template `name` of the package defaults, rendered."""
    return DEFAULT_PROMPTS.render(name, **variables)
