"""Static analysis (ruff, pylint) of model-generated snippets, a whole batch at a time.

Typical use::

    from iterkd.analysis import AnalysisConfig, analyze_snippets, analyzer_versions

    results = analyze_snippets({"q17/sample 3": "def f(x):\n    return x\n"})
    results["q17/sample 3"].pylint_score
    versions = analyzer_versions()  # store with the scores: findings depend on them
"""

from iterkd.analysis.batch import analyze_snippets, analyzer_versions
from iterkd.analysis.models import AnalysisConfig, AnalysisError, Finding, SnippetAnalysis

__all__ = [
    "AnalysisConfig",
    "AnalysisError",
    "Finding",
    "SnippetAnalysis",
    "analyze_snippets",
    "analyzer_versions",
]
