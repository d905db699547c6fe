"""The Question model, the bundled question sets (run through the real executor) and the loaders."""

from __future__ import annotations

import ast
import json
import re
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError

from iterkd.execution import Executor, ProgramVerdict, SandboxConfig, TestSuite
from iterkd.questions import (
    ColumnMapping,
    Question,
    QuestionLoadError,
    SkippedRecord,
    load_bundled,
    load_humaneval_jsonl,
    load_jsonl,
    load_mbpp_jsonl,
    load_with_datasets,
)

DROP = object()  # an override that removes the field from a record


def with_overrides(record: dict[str, Any], overrides: dict[str, Any]) -> dict[str, Any]:
    record = {**record, **overrides}
    return {key: value for key, value in record.items() if value is not DROP}


def write_jsonl(path: Path, lines: list[Any]) -> Path:
    """Dicts are dumped as JSON; strings are written as they are (blank or broken lines)."""
    text = "\n".join(line if isinstance(line, str) else json.dumps(line) for line in lines)
    path.write_text(text + "\n", encoding="utf-8")
    return path


def run(questions: list[Question], sources: list[str]) -> list[ProgramVerdict]:
    programs = [
        q.to_program(src, f"{q.id}#{i}")
        for i, (q, src) in enumerate(zip(questions, sources, strict=True))
    ]
    with Executor(SandboxConfig(timeout_s=5)) as executor:
        return executor.run(programs)


def assert_message(actual: str, expected: str) -> None:
    """Exact, except that a trailing "..." stands for text that varies between Python versions."""
    if expected.endswith("..."):
        assert actual.startswith(expected[:-3]), actual
    else:
        assert actual == expected


def failures(verdicts: list[ProgramVerdict]) -> list[str]:
    return [f"{v.program_id}: {v.status} {v.message}" for v in verdicts if not v.passed]


# ---------------------------------------------------------------- the model
def small_question(**overrides: Any) -> dict[str, Any]:
    fields = {
        "id": "t/0",
        "prompt": 'def one() -> int:\n    """Return 1."""\n',
        "entry_point": "one",
        "tests": {"form": "asserts", "asserts": ["assert one() == 1"], "entry_point": "one"},
        "reference_solution": "def one() -> int:\n    return 1\n",
        "difficulty": "easy",
    }
    return with_overrides(fields, overrides)


def test_question_defaults() -> None:
    question = Question.model_validate(small_question())
    assert question.tags == []
    assert question.source == ""
    assert question.parent_id is None
    assert question.tests == TestSuite(
        form="asserts", asserts=["assert one() == 1"], entry_point="one"
    )


@pytest.mark.parametrize(
    "overrides", [{"answer": 1}, {"difficulty": "trivial"}, {"tags": "dp"}, {"prompt": DROP}]
)
def test_question_rejects_bad_fields(overrides: dict[str, Any]) -> None:
    with pytest.raises(ValidationError):
        Question.model_validate(small_question(**overrides))


def test_to_program_wraps_a_candidate_with_the_question_tests() -> None:
    question = Question.model_validate(small_question())
    program = question.to_program("def one():\n    return 1\n", "t/0#3")
    assert (program.id, program.source, program.language) == (
        "t/0#3",
        "def one():\n    return 1\n",
        "python",
    )
    assert program.tests == question.tests


# ---------------------------------------------------------------- the bundled sets
@pytest.fixture(scope="module")
def bundled() -> dict[str, list[Question]]:
    return {name: load_bundled(name) for name in ("seed", "heldout")}


def all_questions() -> list[Question]:
    return load_bundled("seed") + load_bundled("heldout")


def test_bundled_counts_and_difficulty_mix(bundled: dict[str, list[Question]]) -> None:
    assert len(bundled["seed"]) >= 40
    assert len(bundled["heldout"]) >= 20
    for questions in bundled.values():
        share = {k: n / len(questions) for k, n in Counter(q.difficulty for q in questions).items()}
        assert 0.3 <= share["easy"] <= 0.5, share
        assert 0.3 <= share["medium"] <= 0.5, share
        assert 0.1 <= share["hard"] <= 0.3, share


def test_bundled_ids_are_sequential_and_sources_named(bundled: dict[str, list[Question]]) -> None:
    for name, questions in bundled.items():
        assert [q.id for q in questions] == [f"{name}/{i:03d}" for i in range(len(questions))]
        assert {q.source for q in questions} == {f"iterkd-{name}"}
        assert all(q.parent_id is None for q in questions)


def test_unknown_bundled_set_is_refused() -> None:
    with pytest.raises(ValueError, match="no bundled question set 'train'"):
        load_bundled("train")  # type: ignore[arg-type]


@pytest.mark.parametrize("question", all_questions(), ids=lambda q: q.id)
def test_bundled_question_shape(question: Question) -> None:
    entry = question.entry_point
    assert question.prompt.endswith('"""\n')
    assert f"def {entry}(" in question.prompt
    assert f"    >>> {entry}(" in question.prompt  # the docstring shows an example
    # the reference completes the prompt: the completion is reference[len(prompt):]
    assert question.reference_solution.startswith(question.prompt)
    assert len(question.prompt) + len(question.reference_solution) <= 1200  # small-context models
    assert question.tags
    tests = question.tests
    assert (tests.form, tests.entry_point, tests.code) == ("asserts", entry, None)
    assert len(tests.asserts or []) >= 3
    for line in tests.asserts or []:
        (statement,) = ast.parse(line).body
        assert isinstance(statement, ast.Assert), line
        compare = statement.test
        assert isinstance(compare, ast.Compare) and len(compare.ops) == 1, line
        assert isinstance(compare.ops[0], ast.Eq | ast.Is), line
        assert isinstance(compare.left, ast.Call) and ast.unparse(compare.left.func) == entry, line
        ast.literal_eval(compare.comparators[0])  # a literal: the supervisor checks the value


def test_seed_and_heldout_are_disjoint(bundled: dict[str, list[Question]]) -> None:
    seed, heldout = bundled["seed"], bundled["heldout"]

    def keys(questions: list[Question]) -> dict[str, set[Any]]:
        return {
            "id": {q.id for q in questions},
            "prompt": {q.prompt for q in questions},
            "entry_point": {q.entry_point for q in questions},
            "tests": {(q.entry_point, tuple(q.tests.asserts or [])) for q in questions},
            # a renamed copy would keep its body: compare bodies with the name blanked out
            "body": {
                q.reference_solution[len(q.prompt) :].replace(q.entry_point, "f") for q in questions
            },
        }

    seed_keys, heldout_keys = keys(seed), keys(heldout)
    for key, values in seed_keys.items():
        assert len(values) == len(seed), f"seed has duplicate {key}s"
        assert len(heldout_keys[key]) == len(heldout), f"heldout has duplicate {key}s"
        assert not values & heldout_keys[key], f"seed and heldout share a {key}"


def test_bundled_references_pass_and_stubs_fail(bundled: dict[str, list[Question]]) -> None:
    questions = bundled["seed"] + bundled["heldout"]
    stubs = [q.prompt + "    return None\n" for q in questions]
    verdicts = run(questions + questions, [q.reference_solution for q in questions] + stubs)
    references, stub_verdicts = verdicts[: len(questions)], verdicts[len(questions) :]
    assert failures(references) == []
    assert [v.program_id for v in stub_verdicts if v.passed] == []
    for verdict in references:  # every expected value is compared outside the sandbox
        assert verdict.tests_total >= 3
        assert {t.checked_by for t in verdict.tests if t.is_test} == {"supervisor"}


def test_docstring_examples_agree_with_the_references(bundled: dict[str, list[Question]]) -> None:
    questions = bundled["seed"] + bundled["heldout"]
    examples = []
    for q in questions:
        call, expected = re.search(r">>> (.+)\n +(.+)\n", q.prompt).groups()  # type: ignore[union-attr]
        suite = TestSuite(
            form="asserts", asserts=[f"assert {call} == {expected}"], entry_point=q.entry_point
        )
        examples.append(q.model_copy(update={"tests": suite}))
    assert failures(run(examples, [q.reference_solution for q in questions])) == []


# ---------------------------------------------------------------- HumanEval
HE_PROMPT = 'def add(a: int, b: int) -> int:\n    """Add two numbers.\n\n    >>> add(1, 2)\n    3\n    """\n'
HE_TEST = "METADATA = {}\n\n\ndef check(candidate):\n    assert candidate(1, 2) == 3\n    assert candidate(-1, 1) == 0\n"


def he_record(task_id: str = "Test/0", **overrides: Any) -> dict[str, Any]:
    record = {
        "task_id": task_id,
        "prompt": HE_PROMPT,
        "canonical_solution": "    return a + b\n",
        "test": HE_TEST,
        "entry_point": "add",
    }
    return with_overrides(record, overrides)


def test_humaneval_loads_valid_records(tmp_path: Path) -> None:
    path = write_jsonl(tmp_path / "he.jsonl", [he_record("Test/0"), "", "   ", he_record("Test/1")])
    result = load_humaneval_jsonl(path)
    assert result.skipped == []
    assert [q.id for q in result.questions] == ["Test/0", "Test/1"]
    question = result.questions[0]
    assert question.prompt == HE_PROMPT
    assert question.entry_point == "add"
    assert question.tests == TestSuite(form="humaneval", code=HE_TEST, entry_point="add")
    assert question.reference_solution == HE_PROMPT + "    return a + b\n"
    assert (question.difficulty, question.tags, question.source) == ("medium", [], str(path))
    assert failures(run(result.questions, [q.reference_solution for q in result.questions])) == []


HE_INVALID = [
    ("invalid_json", [he_record(), "{not json"], " line 2: invalid JSON: Expecting property name enclosed in double quotes (column 2)"),
    ("not_an_object", ["[1, 2]"], " line 1: expected a JSON object, got list"),
    ("missing_field", [he_record(entry_point=DROP)], " line 1, field 'entry_point': missing"),
    ("null_field", [he_record(test=None)], " line 1, field 'test': missing"),
    ("wrong_type", [he_record(prompt=5)], " line 1, field 'prompt': wrong type: expected str, got int"),
    ("empty_tests", [he_record(test="  \n")], " line 1, field 'test': empty: no tests"),
    ("tests_without_check", [he_record(test="assert add(1, 2) == 3\n")], " line 1, field 'test': unusable tests: tests.code: no `def check(candidate)` found"),
    ("entry_point_undefined", [he_record(entry_point="plus")], " line 1, field 'entry_point': 'plus' is not defined in the reference solution"),
    ("reference_does_not_parse", [he_record(canonical_solution="    return a +\n")], " line 1, field 'canonical_solution': does not parse: ..."),
    ("duplicate_id", [he_record("T/0"), "", he_record("T/0")], " line 3, field 'task_id': duplicate id 'T/0' (first at line 1)"),
]  # fmt: skip


@pytest.mark.parametrize(
    ("lines", "message"), [c[1:] for c in HE_INVALID], ids=[c[0] for c in HE_INVALID]
)
def test_humaneval_invalid_record_is_one_clear_error(
    tmp_path: Path, lines: list[Any], message: str
) -> None:
    path = write_jsonl(tmp_path / "data.jsonl", lines)
    with pytest.raises(QuestionLoadError) as info:
        load_humaneval_jsonl(path)
    assert_message(str(info.value), f"{path}{message}")
    assert isinstance(info.value, ValueError)


def test_invalid_utf8_line_is_one_bad_record(tmp_path: Path) -> None:
    path = tmp_path / "data.jsonl"
    path.write_bytes(json.dumps(he_record("A")).encode() + b'\n{"task_id": "\xff"}\n')
    with pytest.raises(QuestionLoadError, match=r"data\.jsonl line 2: not valid UTF-8$"):
        load_humaneval_jsonl(path)
    assert [q.id for q in load_humaneval_jsonl(path, on_invalid="skip").questions] == ["A"]


def test_humaneval_skip_mode_keeps_valid_records_and_reasons(tmp_path: Path) -> None:
    lines = [
        he_record("T/0"),
        "{bad",
        he_record("T/2", entry_point=DROP),
        he_record("T/3"),
        he_record("T/0"),
    ]
    path = write_jsonl(tmp_path / "data.jsonl", lines)
    result = load_humaneval_jsonl(path, on_invalid="skip")
    assert [q.id for q in result.questions] == ["T/0", "T/3"]
    assert [(s.line, s.field, s.reason) for s in result.skipped] == [
        (2, None, "invalid JSON: Expecting property name enclosed in double quotes (column 2)"),
        (3, "entry_point", "missing"),
        (5, "task_id", "duplicate id 'T/0' (first at line 1)"),
    ]
    assert {(s.file, s.unit) for s in result.skipped} == {(str(path), "line")}


def test_on_invalid_must_be_error_or_skip(tmp_path: Path) -> None:
    path = write_jsonl(tmp_path / "he.jsonl", [he_record()])
    with pytest.raises(ValueError, match="on_invalid must be 'error' or 'skip'"):
        load_humaneval_jsonl(path, on_invalid="ignore")  # type: ignore[arg-type]


def load_with_some_columns(path: Path) -> object:
    columns = ColumnMapping(id="a", prompt="b", entry_point="c", tests="d", reference_solution="e")
    return load_with_datasets(path, columns)


LOADERS = [load_jsonl, load_humaneval_jsonl, load_mbpp_jsonl, load_with_some_columns]


@pytest.mark.parametrize("loader", LOADERS, ids=lambda f: f.__name__)
def test_missing_file_is_a_clear_error(tmp_path: Path, loader: Any) -> None:
    missing = tmp_path / "nowhere" / "questions.jsonl"
    with pytest.raises(QuestionLoadError) as info:
        loader(missing)
    assert str(info.value) == f"{missing}: no such file"
    with pytest.raises(QuestionLoadError, match="not a file"):
        loader(tmp_path)


# ---------------------------------------------------------------- MBPP
MBPP_CODE = (
    "def helper(x):\n    return x * 2\n\n\n"
    "def double_all(items: list[int]) -> list[int]:\n    return [helper(x) for x in items]\n"
)
MBPP_TESTS = ["assert sorted(double_all([2, 1])) == [2, 4]", "assert double_all([]) == []"]


def mbpp_record(task_id: Any = 1, **overrides: Any) -> dict[str, Any]:
    record = {
        "task_id": task_id,
        "text": "Double every number in a list.",
        "code": MBPP_CODE,
        "test_list": MBPP_TESTS,
        "test_setup_code": "",
        "challenge_test_list": [],
    }
    return with_overrides(record, overrides)


def test_mbpp_loads_valid_records(tmp_path: Path) -> None:
    words = {
        "task_id": 2,
        "text": r"Return the words (\w+ runs) of SAMPLE-like text.",
        "code": "import re\ndef words(text):\n    return re.findall(r'\\w+', text)\n",
        "test_list": ["assert words(SAMPLE) == ['a', 'bc']", "assert len(words('x y z')) == 3"],
        "test_setup_code": "SAMPLE = 'a, bc!'",
    }
    path = write_jsonl(tmp_path / "mbpp.jsonl", [mbpp_record(1), words])
    result = load_mbpp_jsonl(path)
    assert result.skipped == []
    double, word = result.questions
    assert double.id == "1"
    assert double.entry_point == "double_all"  # the first test's own function, not `sorted`
    assert double.prompt == (
        "def double_all(items: list[int]) -> list[int]:\n"
        '    """Double every number in a list.\n\n'
        "    >>> assert sorted(double_all([2, 1])) == [2, 4]\n"
        '    """\n'
    )
    assert double.tests == TestSuite(form="asserts", asserts=MBPP_TESTS, entry_point="double_all")
    assert (double.reference_solution, double.difficulty, double.source) == (
        MBPP_CODE,
        "medium",
        str(path),
    )
    assert word.prompt.startswith("import re\n\n\ndef words(text):\n")
    docstring = ast.get_docstring(ast.parse(word.prompt + "    pass\n").body[-1])  # type: ignore[arg-type]
    assert docstring is not None and docstring.startswith(words["text"])  # backslash survived
    assert word.tests.setup == "SAMPLE = 'a, bc!'"
    assert failures(run(result.questions, [q.reference_solution for q in result.questions])) == []


MBPP_INVALID = [
    ("missing_tests", mbpp_record(test_list=DROP), "field 'test_list': missing"),
    ("empty_tests", mbpp_record(test_list=[]), "field 'test_list': empty: no tests"),
    ("tests_not_a_list", mbpp_record(test_list="assert f(1) == 2"), "field 'test_list': wrong type: expected list, got str"),
    ("tests_not_strings", mbpp_record(test_list=[1]), "field 'test_list': wrong type: expected a list of strings"),
    ("id_wrong_type", mbpp_record(task_id=[1]), "field 'task_id': wrong type: expected int or str, got list"),
    ("missing_text", mbpp_record(text=DROP), "field 'text': missing"),
    ("setup_wrong_type", mbpp_record(test_setup_code=3), "field 'test_setup_code': wrong type: expected str, got int"),
    ("entry_point_undefined", mbpp_record(test_list=["assert sorted(triple_all([1])) == [3]"]), "field 'code': does not define 'triple_all', called by the first test"),
    ("test_calls_nothing_of_its_own", mbpp_record(test_list=["assert len([1]) == 1"]), "field 'test_list': the first test calls no function of its own"),
    ("code_does_not_parse", mbpp_record(code="def double_all(:\n"), "field 'code': does not parse: ..."),
]  # fmt: skip


@pytest.mark.parametrize(
    ("record", "message"), [c[1:] for c in MBPP_INVALID], ids=[c[0] for c in MBPP_INVALID]
)
def test_mbpp_invalid_record_is_one_clear_error(
    tmp_path: Path, record: dict[str, Any], message: str
) -> None:
    path = write_jsonl(tmp_path / "mbpp.jsonl", [mbpp_record(0), record])
    with pytest.raises(QuestionLoadError) as info:
        load_mbpp_jsonl(path)
    assert_message(str(info.value), f"{path} line 2, {message}")


def test_mbpp_int_and_str_ids_collide(tmp_path: Path) -> None:
    path = write_jsonl(tmp_path / "mbpp.jsonl", [mbpp_record(7), mbpp_record("7")])
    result = load_mbpp_jsonl(path, on_invalid="skip")
    assert [q.id for q in result.questions] == ["7"]
    assert result.skipped == [
        SkippedRecord(
            file=str(path), line=2, field="task_id", reason="duplicate id '7' (first at line 1)"
        )
    ]


# ---------------------------------------------------------------- iterkd's own format
def test_own_format_round_trips(tmp_path: Path, bundled: dict[str, list[Question]]) -> None:
    questions = bundled["heldout"][:3]
    path = write_jsonl(tmp_path / "own.jsonl", [q.model_dump(mode="json") for q in questions])
    assert load_jsonl(path).questions == questions


OWN_INVALID = [
    ("unknown_field", {"answer": 42}, "field 'answer': unknown field"),
    ("missing_field", {"prompt": DROP}, "field 'prompt': missing"),
    ("wrong_type", {"tags": "dp"}, "field 'tags': wrong type: Input should be a valid list, got str"),
    ("bad_difficulty", {"difficulty": "trivial"}, "field 'difficulty': Input should be 'easy', 'medium' or 'hard'"),
    ("nested_wrong_type", {"tests": {"form": "asserts", "asserts": "assert one() == 1"}}, "field 'tests.asserts': wrong type: Input should be a valid list, got str"),
    ("empty_tests", {"tests": {"form": "asserts", "asserts": []}}, "field 'tests': empty: no tests"),
    ("tests_without_assert", {"tests": {"form": "asserts", "asserts": ["x = one()"]}}, "field 'tests': unusable tests: no test: the tests contain no assert statement"),
    ("entry_point_undefined", {"entry_point": "two"}, "field 'entry_point': 'two' is not defined in the reference solution"),
]  # fmt: skip


@pytest.mark.parametrize(
    ("overrides", "message"), [c[1:] for c in OWN_INVALID], ids=[c[0] for c in OWN_INVALID]
)
def test_own_format_invalid_record_is_one_clear_error(
    tmp_path: Path, overrides: dict[str, Any], message: str
) -> None:
    path = write_jsonl(
        tmp_path / "own.jsonl", [small_question(), small_question(id="t/1", **overrides)]
    )
    with pytest.raises(QuestionLoadError) as info:
        load_jsonl(path)
    assert str(info.value) == f"{path} line 2, {message}"
    assert info.value.record is not None and info.value.record.line == 2


# ---------------------------------------------------------------- any file, through `datasets`
COLUMNS = ColumnMapping(
    id="name", prompt="question", entry_point="fn", tests="checks", reference_solution="solution",
    difficulty="level", tags="labels",
)  # fmt: skip


def row(name: Any, fn: str = "one", **overrides: Any) -> dict[str, Any]:
    fields = {
        "name": name,
        "question": f'def {fn}() -> int:\n    """Return 1."""\n',
        "fn": fn,
        "checks": [f"assert {fn}() == 1", f"assert {fn}() > 0"],
        "solution": f"def {fn}() -> int:\n    return 1\n",
        "level": "hard",
        "labels": ["math"],
        "unused": 0.5,
    }
    return with_overrides(fields, overrides)


@pytest.fixture
def datasets_lib() -> Any:
    return pytest.importorskip("datasets")


def test_datasets_loads_parquet(tmp_path: Path, datasets_lib: Any) -> None:
    path = tmp_path / "q.parquet"
    datasets_lib.Dataset.from_list([row("p/0"), row("p/1", fn="two")]).to_parquet(str(path))
    result = load_with_datasets(path, COLUMNS, cache_dir=tmp_path / "cache")
    assert result.skipped == []
    first, second = result.questions
    assert (first.id, first.entry_point, first.difficulty, first.tags) == (
        "p/0",
        "one",
        "hard",
        ["math"],
    )
    assert first.tests == TestSuite(
        form="asserts", asserts=["assert one() == 1", "assert one() > 0"], entry_point="one"
    )
    assert (second.prompt, second.source) == ('def two() -> int:\n    """Return 1."""\n', str(path))
    assert failures(run(result.questions, [q.reference_solution for q in result.questions])) == []


def test_datasets_parquet_errors_name_the_row(tmp_path: Path, datasets_lib: Any) -> None:
    path = tmp_path / "q.parquet"
    rows = [
        row("p/0"),
        row("p/1", fn="two", solution="def one():\n    return 1\n"),
        row("p/2", checks=[]),
    ]
    datasets_lib.Dataset.from_list(rows).to_parquet(str(path))
    with pytest.raises(QuestionLoadError) as info:
        load_with_datasets(path, COLUMNS, cache_dir=tmp_path / "cache")
    assert (
        str(info.value)
        == f"{path} row 1, field 'fn': 'two' is not defined in the reference solution"
    )
    result = load_with_datasets(path, COLUMNS, on_invalid="skip", cache_dir=tmp_path / "cache")
    assert [q.id for q in result.questions] == ["p/0"]
    assert [(s.unit, s.line, s.field, s.reason) for s in result.skipped] == [
        ("row", 1, "fn", "'two' is not defined in the reference solution"),
        ("row", 2, "checks", "empty: no tests"),
    ]


def test_datasets_loads_jsonl_with_line_numbers_and_defaults(
    tmp_path: Path, datasets_lib: Any
) -> None:
    lines = [
        row(1, level=DROP, labels=DROP),
        "",
        row(2, level=DROP, labels=DROP, fn=None),
        row(3, level=DROP, labels=DROP),
    ]
    path = write_jsonl(tmp_path / "q.jsonl", lines)
    columns = COLUMNS.model_copy(update={"difficulty": None, "tags": None})
    with pytest.raises(QuestionLoadError) as info:
        load_with_datasets(path, columns, cache_dir=tmp_path / "cache")
    assert str(info.value) == f"{path} line 3, field 'fn': missing"  # the blank line counts
    result = load_with_datasets(path, columns, on_invalid="skip", cache_dir=tmp_path / "cache")
    assert [(q.id, q.difficulty, q.tags) for q in result.questions] == [
        ("1", "medium", []),
        ("3", "medium", []),
    ]


def test_datasets_wrong_type_and_bad_value(tmp_path: Path, datasets_lib: Any) -> None:
    path = write_jsonl(tmp_path / "q.jsonl", [row("a", checks="assert one() == 1")])
    with pytest.raises(
        QuestionLoadError, match=r"line 1, field 'checks': wrong type: expected list, got str$"
    ):
        load_with_datasets(path, COLUMNS, cache_dir=tmp_path / "cache")
    path = write_jsonl(tmp_path / "r.jsonl", [row("a", level="extreme")])
    with pytest.raises(
        QuestionLoadError,
        match=r"line 1, field 'level': Input should be 'easy', 'medium' or 'hard'$",
    ):
        load_with_datasets(path, COLUMNS, cache_dir=tmp_path / "cache")


def test_datasets_file_level_errors(tmp_path: Path, datasets_lib: Any) -> None:
    path = write_jsonl(tmp_path / "q.jsonl", [row("a")])
    columns = COLUMNS.model_copy(update={"tests": "asserts"})
    with pytest.raises(QuestionLoadError) as info:  # even in skip mode: every row would fail
        load_with_datasets(path, columns, on_invalid="skip", cache_dir=tmp_path / "cache")
    assert str(info.value).startswith(f"{path}: no column 'asserts' (columns: name, question, fn")
    broken = write_jsonl(tmp_path / "broken.jsonl", [row("a"), "{oops"])
    with pytest.raises(QuestionLoadError, match=r"broken\.jsonl: cannot be read as json: "):
        load_with_datasets(broken, COLUMNS, cache_dir=tmp_path / "cache")
    csv = tmp_path / "q.csv"
    csv.write_text("name\n")
    with pytest.raises(QuestionLoadError, match=r"q\.csv: unsupported file type"):
        load_with_datasets(csv, COLUMNS)


def test_column_mapping_forbids_unknown_fields() -> None:
    with pytest.raises(ValidationError):
        ColumnMapping(
            id="a", prompt="b", entry_point="c", tests="d", reference_solution="e", answer="f"
        )  # type: ignore[call-arg]
