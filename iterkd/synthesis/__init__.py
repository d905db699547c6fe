"""Synthesis of new questions from the teacher: what it is asked (`requests`, one prompt template
per strategy), its text parsed into a candidate (`parse`), and the candidate screened
(`screening`): tests and line coverage in the sandbox (`validation`, `line_coverage`),
near-duplicates and contamination (`filters`), a perplexity band (`perplexity`) and the judge's
question-quality score (`quality`)."""

from iterkd.synthesis.filters import (
    ContaminationChecker,
    NearDuplicateIndex,
    minhash,
    normalise,
    shingles,
)
from iterkd.synthesis.line_coverage import Coverage, coverage_program, read_coverage
from iterkd.synthesis.parse import (
    Candidate,
    ParseResult,
    parse_candidate,
    split_sections,
    to_question,
)
from iterkd.synthesis.perplexity import Band, BandDecision, perplexity_band, score_log_perplexity
from iterkd.synthesis.quality import QualityVerdict, judge_quality, quality_prompt
from iterkd.synthesis.requests import (
    BUCKETS,
    OPERATIONS,
    STRATEGIES,
    TEMPLATES,
    Request,
    choose_operation,
    plan_requests,
    request_prompt,
)
from iterkd.synthesis.screening import FILTERS, FUNNEL, Outcome, Screened, screen
from iterkd.synthesis.validation import Reference, TestCheck, check_references, split_tests

__all__ = [
    "BUCKETS",
    "FILTERS",
    "FUNNEL",
    "OPERATIONS",
    "STRATEGIES",
    "TEMPLATES",
    "Band",
    "BandDecision",
    "Candidate",
    "ContaminationChecker",
    "Coverage",
    "NearDuplicateIndex",
    "Outcome",
    "ParseResult",
    "QualityVerdict",
    "Reference",
    "Request",
    "Screened",
    "TestCheck",
    "check_references",
    "choose_operation",
    "coverage_program",
    "judge_quality",
    "minhash",
    "normalise",
    "parse_candidate",
    "perplexity_band",
    "plan_requests",
    "quality_prompt",
    "read_coverage",
    "request_prompt",
    "score_log_perplexity",
    "screen",
    "shingles",
    "split_sections",
    "split_tests",
    "to_question",
]
