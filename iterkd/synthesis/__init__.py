"""Synthesis of new questions from the teacher: its text parsed into a candidate (`parse`), the
candidate's tests checked against its own reference and the candidate compared with the questions
already known and the held-out set (`filters`)."""

from iterkd.synthesis.filters import (
    ContaminationChecker,
    NearDuplicateIndex,
    Reference,
    TestCheck,
    check_references,
    minhash,
    normalise,
    shingles,
    split_tests,
)
from iterkd.synthesis.parse import (
    Candidate,
    ParseResult,
    parse_candidate,
    split_sections,
    to_question,
)

__all__ = [
    "Candidate",
    "ContaminationChecker",
    "NearDuplicateIndex",
    "ParseResult",
    "Reference",
    "TestCheck",
    "check_references",
    "minhash",
    "normalise",
    "parse_candidate",
    "shingles",
    "split_sections",
    "split_tests",
    "to_question",
]
