"""Target languages other than Python (MultiPL-T): Lua, Racket, OCaml and R.

Each language is one module filling a `Language` of plain functions (`spec.py`); `LANGUAGES`
holds them by the name configs use. Python's own tests are translated into each (`translation`),
and the executor runs programs of these languages through `ExecRunner` (`runners.py`).
"""

from __future__ import annotations

from iterkd.execution.languages.lua import LUA
from iterkd.execution.languages.ocaml import OCAML
from iterkd.execution.languages.r import R
from iterkd.execution.languages.racket import RACKET
from iterkd.execution.languages.spec import Language, TranslatedSuite
from iterkd.execution.languages.types import Untranslatable

LANGUAGES: dict[str, Language] = {language.name: language for language in (LUA, RACKET, OCAML, R)}

__all__ = ["LANGUAGES", "Language", "TranslatedSuite", "Untranslatable"]
