"""Data models of the static-analysis step: its configuration, findings and per-snippet results.

Every default lives here, in the models, so that a run's behaviour is fully described by a
serialised `AnalysisConfig` (which is what gets recorded next to a round's scores).
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

# Rule families asked of ruff by default. Why each one:
#   E, W  pycodestyle errors/warnings: layout and whitespace slips typical of sampled code;
#   F     pyflakes: unused imports/variables, undefined names (the most predictive family);
#   B     flake8-bugbear: likely bugs (mutable defaults, loop-variable capture, ...);
#   SIM   flake8-simplify: needlessly convoluted code, a frequent trait of weak generations;
#   UP    pyupgrade: outdated idioms for the target Python version;
#   C90   mccabe: functions that are too complex (C901);
#   PL    ruff's pylint port. It overlaps pylint on purpose, so that the ruff score stays
#         meaningful on its own when pylint is switched off (pylint is the slow one).
# "I" (import sorting) is left out: order of imports says little about a snippet's quality.
DEFAULT_RUFF_SELECT: tuple[str, ...] = ("E", "F", "W", "B", "SIM", "UP", "C90", "PL")

# Ruff rules ignored by default. PLR2004 (magic-value-comparison): short algorithmic snippets
# compare with literal constants all the time (`if n < 10`, `code == 3`); the rule would
# dominate ruff's counts while saying little, and pylint itself ships it only as an optional
# extension, off by default.
DEFAULT_RUFF_IGNORE: tuple[str, ...] = ("PLR2004",)

# Pylint checks disabled by default. The first two compare modules with each other: in a batch
# they would report on *pairs of unrelated snippets* (two answers to the same question are often
# near-identical), so a snippet's result would depend on what else was in its batch. They are
# also always disabled by the analyzer whatever this list says (see `CROSS_SNIPPET_PYLINT_CHECKS`).
# missing-module-docstring: a snippet is an answer, not a module of a package; asking it for a
# module docstring would penalise almost every generation uniformly and so carries no signal.
DEFAULT_PYLINT_DISABLE: tuple[str, ...] = (
    "duplicate-code",
    "cyclic-import",
    "missing-module-docstring",
)

# Checks that are never run in a batch, whatever the configuration: see DEFAULT_PYLINT_DISABLE.
CROSS_SNIPPET_PYLINT_CHECKS: tuple[str, ...] = ("duplicate-code", "cyclic-import")


class AnalysisConfig(BaseModel):
    """What to run on a batch of snippets and how. Unknown keys are rejected (extra="forbid")
    so that a typo in a run's YAML fails loudly instead of silently using a default."""

    model_config = ConfigDict(extra="forbid")

    ruff: bool = True
    pylint: bool = True
    ruff_select: list[str] = Field(default_factory=lambda: list(DEFAULT_RUFF_SELECT))
    ruff_ignore: list[str] = Field(default_factory=lambda: list(DEFAULT_RUFF_IGNORE))
    pylint_disable: list[str] = Field(default_factory=lambda: list(DEFAULT_PYLINT_DISABLE))
    # One Python version for both tools (ruff --target-version, pylint --py-version), so that
    # version-dependent rules (UP, consider-using-f-string, ...) agree between them. It also
    # makes findings independent of the interpreter/ruff defaults of the machine.
    python_version: str = Field(default="3.11", pattern=r"^3\.\d{1,2}$")
    # One line length for both (ruff E501, pylint C0301); ruff's isolated default would be 88.
    line_length: int = Field(default=100, gt=0)
    # Limit for the single ruff subprocess of a batch; pylint runs in-process and has none.
    timeout_s: float = Field(default=300.0, gt=0)

    @property
    def ruff_target_version(self) -> str:
        """ruff spells the version "py311" where pylint takes "3.11"."""
        return "py" + self.python_version.replace(".", "")


# Which analyzer produced a finding; "iterkd" marks findings made by this package itself
# (e.g. a snippet that could not be handed to the tools at all).
ToolName = Literal["ruff", "pylint", "iterkd"]


class Finding(BaseModel):
    """One message about one snippet, in a shape common to all tools.

    `category` is the rule-code prefix for ruff ("F", "SIM", "PLR"; "syntax" for syntax
    errors), the message type for pylint ("error", "warning", "refactor", "convention",
    "fatal", "info"), and "error" for iterkd's own findings. `line` is 1-based and `column`
    is 1-based for every tool (pylint's 0-based columns are shifted) so they can be compared.
    """

    model_config = ConfigDict(extra="forbid")

    tool: ToolName
    code: str
    symbol: str | None
    category: str
    line: int | None
    column: int | None
    message: str


class SnippetAnalysis(BaseModel):
    """Everything the analyzers said about one snippet.

    Scores are on pylint's 0..10 scale (higher is better) and are None when the tool was
    disabled, so "not measured" can never be mistaken for "perfect".

    - findings: ruff's, then pylint's, each in the tool's order; or one "iterkd" finding
      "invalid-source" for a snippet the tools never saw (NUL bytes, not UTF-8).
    - ruff_counts: ruff findings per category (rule-code prefix, "syntax" for syntax errors).
    - pylint_counts: pylint's own per-module message counts (error, warning, refactor,
      convention, fatal, info); empty when pylint did not run on the snippet.
    - pylint_statements: statements pylint counted (0 when it could not parse the snippet).
    - syntax_error: a tool could not parse the snippet (or it was invalid source); its
      scores are then 0.0.
    """

    model_config = ConfigDict(extra="forbid")

    findings: list[Finding]
    ruff_counts: dict[str, int]
    ruff_score: float | None
    pylint_counts: dict[str, int]
    pylint_statements: int
    pylint_score: float | None
    syntax_error: bool


class AnalysisError(RuntimeError):
    """The batch as a whole could not be analyzed (missing tool, tool crash, bad options).

    Problems of a single snippet never raise: they become findings of that snippet.
    """
