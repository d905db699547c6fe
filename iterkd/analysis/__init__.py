"""Static analysis (ruff, pylint) of model-generated snippets, a whole batch at a time.

Typical use::

    from iterkd.analysis import AnalysisConfig, analyze_snippets, analyzer_versions

    results = analyze_snippets({"q17/sample 3": "def f(x):\n    return x\n"})
    results["q17/sample 3"].pylint_score
    versions = analyzer_versions()  # store with the scores: findings depend on them
"""

from typing import Any

from iterkd.analysis.models import AnalysisConfig, AnalysisError, Finding, SnippetAnalysis


def __getattr__(name: str) -> Any:
    # pylint takes ~0.2 s to import: loaded on first use, so reading a config (which holds an
    # AnalysisConfig) stays fast, e.g. `iterkd status` and `iterkd resume` of a finished run
    if name in ("analyze_snippets", "analyzer_versions"):
        from iterkd.analysis import batch

        return getattr(batch, name)
    raise AttributeError(f"module 'iterkd.analysis' has no attribute {name!r}")


__all__ = [
    "AnalysisConfig",
    "AnalysisError",
    "Finding",
    "SnippetAnalysis",
    "analyze_snippets",
    "analyzer_versions",
]
