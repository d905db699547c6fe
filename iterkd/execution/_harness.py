"""The test harness that runs inside a sandboxed child, next to the untrusted program.

Stdlib only; loaded by `_worker.py` by path. It writes one JSON line per event to RESULT_FD. The
supervisor trusts none of it blindly:
- `eval` cases (from `assert <expr> == <literal>` and friends) only report the value of <expr>;
  the expected value never enters this process, so the program cannot read it (sys._getframe,
  gc) nor forge a match; the value must be of an exact builtin type, so an object whose `__eq__`
  lies, or an `int` subclass, cannot pass;
- `exec` cases (any other test statement) run here and report passed / failed / error;
- every case must report exactly once and the run must end with `done`, else the program fails.

Before anything untrusted runs, the harness keeps its own references to what it uses and a copy
of the builtins; builtins (and the modules the tests imported) are restored after the program is
loaded and before every case, so `builtins.abs = lambda x: 0` cannot change a test's meaning.
"""

from __future__ import annotations

import builtins
import collections
import contextlib
import io
import json
import os
import random
import sys

MAX_DEPTH = 100
MAX_NODES = 1_000_000
MAX_TEXT = 1000
SAFE_INT = 2**53
INF = float("inf")


class Unencodable(Exception):
    """The value is not made only of exact builtin types, or is too big to ship."""


class _Emitter:
    def __init__(self, fd: int) -> None:
        self.fd = fd
        self.write = os.write
        self.dumps = json.dumps

    def __call__(self, record: dict) -> None:
        data = (self.dumps(record, separators=(",", ":")) + "\n").encode("utf-8", "surrogatepass")
        while data:
            data = data[self.write(self.fd, data) :]


def _text(value: object) -> str:
    """str() of a hostile object: may raise or be huge; never lets either escape."""
    try:
        text = str(value)
    except BaseException:  # the object is untrusted
        return "<unprintable>"
    if type(text) is not str:
        return "<unprintable>"
    return text[:MAX_TEXT]


def _exc_record(case: int | None, exc: BaseException) -> dict:
    name = _text(type(exc).__name__)
    record = {"status": "error", "type": name, "msg": _text(exc)}
    if case is not None:
        record["case"] = case
    return record


# ---------------------------------------------------------------- values
_DICT_TYPES = (dict, collections.OrderedDict, collections.defaultdict, collections.Counter)


class _Encoder:
    """Tagged JSON for exact builtin types; dict subclasses from the stdlib count as dicts."""

    def __init__(self) -> None:
        self.nodes = 0

    def encode(self, value: object, depth: int = 0) -> object:
        self.nodes += 1
        if depth > MAX_DEPTH or self.nodes > MAX_NODES:
            raise Unencodable("value is nested too deeply or too large")
        kind = type(value)
        if value is None or kind is bool:
            return value
        if kind is str:
            if value.isascii() or value.isprintable():
                return value
            try:
                value.encode("utf-8")
            except UnicodeEncodeError:  # JSON would merge a surrogate pair into one character
                return {"$str": str.encode(value, "utf-8", "surrogatepass").hex()}
            return value
        if kind is int:
            return value if -SAFE_INT < value < SAFE_INT else {"$int": hex(value)}
        if kind is float:
            finite = value == value and value not in (INF, -INF)
            return value if finite else {"$float": float.hex(value)}
        return self._container(kind, value, depth + 1)

    def _container(self, kind: type, value: object, depth: int) -> object:
        enc = self.encode
        if kind is list:
            return [enc(v, depth) for v in list.__iter__(value)]
        if kind is tuple:
            return {"$tuple": [enc(v, depth) for v in tuple.__iter__(value)]}
        if kind in (set, frozenset):
            return {"$" + kind.__name__: [enc(v, depth) for v in kind.__iter__(value)]}
        if kind in _DICT_TYPES:
            return {"$dict": [[enc(k, depth), enc(v, depth)] for k, v in dict.items(value)]}
        if kind is bytes or kind is bytearray:
            return {"$" + kind.__name__: bytes.hex(bytes(value))}
        if kind is complex:
            return {"$complex": [enc(value.real, depth), enc(value.imag, depth)]}
        raise Unencodable(f"returned a value of type {_text(kind.__name__)}, not a builtin type")


# ---------------------------------------------------------------- restoring what the program may patch
class _Restorer:
    """Puts back builtins and the attributes of modules (and their classes) the tests imported."""

    def __init__(self) -> None:
        self.builtins_dict = builtins.__dict__
        self.builtins_copy = dict(builtins.__dict__)
        self.saved: list[tuple[object, dict]] = []

    def snapshot_modules(self, namespace: dict) -> None:
        module_type = type(sys)
        for value in list(namespace.values()):
            if type(value) is module_type:
                self._save(value)
                prefix = value.__name__ + "."
                for attr in list(vars(value).values()):
                    owner = getattr(attr, "__module__", None) if isinstance(attr, type) else None
                    if owner == value.__name__ or (type(owner) is str and owner.startswith(prefix)):
                        self._save(attr)  # e.g. unittest.TestCase, defined in unittest.case

    def _save(self, obj: object) -> None:
        self.saved.append((obj, dict(vars(obj))))

    def restore(self) -> None:
        if self.builtins_dict != self.builtins_copy:
            self.builtins_dict.clear()
            self.builtins_dict.update(self.builtins_copy)
        for obj, attrs in self.saved:
            current = vars(obj)
            if current == attrs:
                continue
            for name in [n for n in current if n not in attrs]:
                delattr(obj, name)
            for name, value in attrs.items():
                if current.get(name, attrs) is not value:
                    setattr(obj, name, value)


# ---------------------------------------------------------------- the run
def _compile(source: str, name: str, mode: str):
    return compile(source, name, mode, dont_inherit=True, optimize=0)  # asserts always kept


def run_python_job(job: dict, result_fd: int) -> None:
    stdout, flush = sys.stdout, io.TextIOWrapper.flush
    try:
        _run(job, _Emitter(result_fd))
    finally:
        with contextlib.suppress(BaseException):  # output is informative only
            flush(stdout)  # the original stream object, whatever sys.stdout is now


def _run(job: dict, emit: _Emitter) -> None:
    restorer = _Restorer()
    restorer.snapshot_modules({"json": json, "encoder": sys.modules["json.encoder"]})
    random.seed(job["seed"])
    tests = {"__builtins__": dict(restorer.builtins_copy), "__name__": "__tests__"}
    if not _run_setup(emit, job["test_imports"], tests, "test_import_error"):
        return
    restorer.snapshot_modules(tests)
    program = {"__name__": "solution", "__builtins__": builtins}
    loaded = _load_program(emit, job["source"], program)
    restorer.restore()
    if not loaded or not _bind(emit, job, program, tests, restorer):
        return
    if not _run_setup(emit, job["test_setup"], tests, "test_setup_error"):
        return
    for index, case in enumerate(job["cases"]):
        restorer.restore()
        tests["__builtins__"].update(restorer.builtins_copy)
        emit({"case": index, "status": "start"})
        emit(_run_case(index, case, tests))
    restorer.restore()
    emit({"event": "done"})


def _run_setup(emit: _Emitter, code: str, tests: dict, event: str) -> bool:
    if not code:
        return True
    try:
        exec(_compile(code, "tests.py", "exec"), tests)
    except BaseException as exc:
        record = _exc_record(None, exc)
        record["event"] = event
        emit(record)
        return False
    return True


def _load_program(emit: _Emitter, source: str, program: dict) -> bool:
    emit({"event": "load_start"})
    try:
        exec(_compile(source, "solution.py", "exec"), program)
    except BaseException as exc:  # SystemExit and friends are the program's fault
        record = _exc_record(None, exc)
        record["event"] = "load_error"
        emit(record)
        return False
    emit({"event": "loaded"})
    return True


def _bind(emit: _Emitter, job: dict, program: dict, tests: dict, restorer: _Restorer) -> bool:
    """Give the tests the program's names, except ones that would shadow builtins or test imports."""
    shadowed = set(restorer.builtins_copy) | set(tests)
    for name, value in list(program.items()):
        if type(name) is str and not name.startswith("__") and name not in shadowed:
            tests[name] = value
    entry = job["entry_point"]
    if entry is None:
        return True
    if entry not in program:
        emit({"event": "entry_missing", "msg": f"entry point {entry!r} is not defined"})
        return False
    tests[entry] = program[entry]
    if job["candidate_alias"]:
        tests[job["candidate_alias"]] = program[entry]
    return True


def _run_case(index: int, case: dict, tests: dict) -> dict:
    if case["kind"] == "eval":
        try:
            value = eval(_compile(case["code"], f"test_{index}", "eval"), tests)
        except BaseException as exc:
            return _exc_record(index, exc)
        try:
            return {"case": index, "status": "value", "value": _Encoder().encode(value)}
        except Unencodable as exc:
            return {"case": index, "status": "bad_value", "msg": str(exc)}
        except BaseException as exc:  # e.g. RecursionError on a cyclic value
            return {"case": index, "status": "bad_value", "msg": _text(type(exc).__name__)}
    try:
        exec(_compile(case["code"], f"test_{index}", "exec"), tests)
    except AssertionError as exc:
        return {"case": index, "status": "failed", "msg": _text(exc)}
    except BaseException as exc:
        return _exc_record(index, exc)
    return {"case": index, "status": "passed"}
