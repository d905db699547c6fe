"""A model's reply is hostile input: the parsers that read replies (judge scores, synthesized
questions, code extraction) give a result or a reason for every text, never an exception. A
SmolLM2 judge reply holding `{[1, 2]}` once failed a GPU run's feedback stage with a TypeError
from `ast.literal_eval`; these texts are seeded random strings of such fragments."""

from __future__ import annotations

import random
import warnings

import pytest

from iterkd.codeblocks import extract_code, extract_program
from iterkd.judge import parse_judgement
from iterkd.synthesis.parse import parse_candidate

FRAGMENTS = (
    "{", "}", "[", "]", "(", ")", "'", '"', "```", "```python\n", "```py\n", "\n", " ", ":", ",",
    "Score:", "Overall:", "overall", '"overall": ', "'overall': ", "correctness", "7", "10", "-3",
    "1e309", "nan", "inf", "/10", "0.5", "{1, 2}", "[1, 2]", "{[1]}", "{'a': {}}", "**", "None",
    "def f(x):\n    return x\n", "## Question\n", "## Tests\n", "## Solution\n", "assert f(1) == 1\n",
    "\t", "\\", "\x00", "é", "🙂", "\r\n", "import os\n", "class A:\n  pass\n", "lambda", "...", "#",
    "<think>", "</think>", "9" * 50, "{" * 200, "[" * 200, "(" * 200, "1/0",
)  # fmt: skip
PROMPT = 'def f(x):\n    """Return x."""\n'


def hostile_texts(seed: int, count: int) -> list[str]:
    rng = random.Random(seed)
    return ["".join(rng.choices(FRAGMENTS, k=rng.randint(0, 40))) for _ in range(count)]


PARSERS = {
    "judge": lambda text: parse_judgement(text),
    "synthesis": lambda text: parse_candidate(text),
    "extract_code": lambda text: extract_code(text),
    "extract_program": lambda text: extract_program(text, PROMPT, "f"),
}


@pytest.mark.parametrize("parser", PARSERS)
def test_every_reply_parses_to_a_result_or_a_reason(parser: str) -> None:
    read = PARSERS[parser]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", SyntaxWarning)  # ast.parse on "1e309f" and the like
        results = [read(text) for text in hostile_texts(seed=15, count=400)]
    assert len(results) == 400 and all(result is not None for result in results)


def test_the_judge_reads_no_score_from_a_set_of_lists() -> None:
    scores, error = parse_judgement('{[1, 2], [3]}\nmy verdict {"overall": {[1]}}')
    assert scores is None and error is not None
