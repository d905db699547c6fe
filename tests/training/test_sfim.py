"""SFIM: the cut always round-trips and masks whole structures; the formats, the mode draw, the
rows and the sentinel tokens."""

from __future__ import annotations

import ast
import random
import textwrap
from pathlib import Path

import pytest

from iterkd.questions import load_bundled
from iterkd.training.sfim import (
    FimSplit,
    FimTokens,
    choose_mode,
    ensure_fim_tokens,
    format_fim,
    sfim_rows,
    split_source,
)

SEEDS = range(20)

TRICKY: dict[str, str] = {
    "decorators": (
        "import functools\n\n\n"
        "@functools.lru_cache(maxsize=None)\n"
        "@staticmethod\n"
        "def f(n):\n"
        "    return n\n\n\n"
        "@dataclass(\n    frozen=True,\n)\n"
        "class P:\n"
        "    x: int = 0\n"
    ),
    "nested": (
        "class Outer:\n"
        "    class Inner:\n"
        "        def method(self):\n"
        "            def helper(x):\n"
        "                return x * 2\n"
        "            return helper(1)\n"
        "\n"
        "    def other(self):\n"
        "        for i in range(3):\n"
        "            if i:\n"
        "                continue\n"
        "            else:\n"
        "                break\n"
        "        while False:\n"
        "            pass\n"
    ),
    "async": (
        "import asyncio\n\n"
        "async def main():\n"
        "    async with lock:\n"
        "        async for x in stream():\n"
        "            await asyncio.sleep(x)\n"
        "    return await other()\n"
    ),
    "comments_blank_lines": (
        "# leading comment\n\n"
        "x = 1  # trailing comment\n\n"
        "# between statements\n\n"
        "def f():\n"
        "    # inside\n\n"
        "    y = 2\n\n"
        "    # before return\n"
        "    return y  # done\n"
        "# final comment\n"
    ),
    "no_trailing_newline": "def f(a):\n    b = a + 1\n    return b",
    "crlf": "def f(a):\r\n    if a:\r\n        return 1\r\n    return 2\r\n\r\nx = f(1)\r\n",
    "lone_cr": "a = 1\rb = 2\r\rif a:\r    c = 3\r",
    "tabs": "def f(a):\n\tif a:\n\t\treturn 1\n\telse:\n\t\treturn 2\n",
    "unicode": (
        "def größe(π):\n"
        '    """Ünïcödé docstring: ∑ ≤ 😀."""\n'
        '    ñ = "日本語"\n'
        "    return π * len(ñ)\n"
    ),
    "triple_quoted": (
        "def f():\n"
        '    text = """\n'
        "first line\n"
        "  second line\n"
        '"""\n'
        "    return text\n\n"
        "MESSAGE = '''a\n"
        "b'''\n"
    ),
    "semicolons": "a = 1; b = 2\nc = 3\nif a: d = 4; e = 5\n",
    "form_feed": "a = 1\n\x0cb = 2\n\ndef f():\n    x = 1\n\x0c    return x\n",
    "line_separator_in_string": 's = "one\u2028two\u2029three\x85four\x0bfive\x1cend"\nt = 1\n',
    "try_match": (
        "def f(x):\n"
        "    try:\n"
        "        y = 1 / x\n"
        "    except ZeroDivisionError: y = 0\n"
        "    finally:\n"
        "        pass\n"
        "    match y:\n"
        "        case 0:\n"
        "            return 'zero'\n"
        "        case _:\n"
        "            return 'other'\n"
    ),
    "else_on_one_line": "if a:\n    pass\nelse: x = 1\nwhile b: y = 2\n",
    "continuation": "total = 1 + \\\n    2\nitems = [\n    1,\n    2,\n]\nz = (x for x in items)\n",
    "single_statement": "pass",
}


def is_whole_structure(middle: str) -> bool:
    """The middle parses on its own once dedented; a multi-line string whose lines sit at column
    0 defeats dedent, so an indented middle may also parse as the body of a block."""
    for text in (textwrap.dedent(middle), "if True:\n" + middle):
        try:
            ast.parse(text)
            return True
        except SyntaxError:
            pass
    return False


def check_split(code: str, split: FimSplit | None) -> None:
    assert split is not None
    assert split.prefix + split.middle + split.suffix == code
    assert split.middle.strip()
    assert split.prefix == "" or split.prefix.endswith(("\n", "\r")), "prefix ends at a line start"
    assert split.suffix == "" or split.middle.endswith(("\n", "\r")), "middle ends at a line end"
    assert is_whole_structure(split.middle), split
    assert split.node and all(hasattr(ast, name) for name in split.node.split("+"))


def splits(code: str, seeds=SEEDS) -> list[FimSplit]:
    return [split_source(code, random.Random(seed)) for seed in seeds]


# ---------------------------------------------------------------- split_source
@pytest.mark.parametrize("name", ["seed", "heldout"])
def test_round_trip_on_every_bundled_solution(name):
    questions = load_bundled(name)
    assert questions
    for question in questions:
        for split in splits(question.reference_solution):
            check_split(question.reference_solution, split)


@pytest.mark.parametrize("name", sorted(TRICKY))
def test_round_trip_on_tricky_sources(name):
    code = TRICKY[name]
    for split in splits(code, range(60)):
        check_split(code, split)


def test_every_statement_and_run_can_be_chosen():
    code = "import os\n\n\ndef f(a):\n    b = a + 1\n    if b:\n        return b\n    return 0\n"
    nodes = {split.node for split in splits(code, range(400))}
    assert {"Import", "FunctionDef", "Assign", "If", "Return", "Import+FunctionDef"} <= nodes
    assert {"Assign+If", "If+Return", "Assign+If+Return"} <= nodes


def test_runs_are_capped_at_four_statements():
    code = "".join(f"x{i} = {i}\n" for i in range(10))
    lengths = {len(split.node.split("+")) for split in splits(code, range(400))}
    assert lengths == {1, 2, 3, 4}


def test_a_definition_is_masked_with_its_decorators():
    code = TRICKY["decorators"]
    by_node = {split.node: split for split in splits(code, range(200))}
    assert by_node["FunctionDef"].middle.startswith("@functools.lru_cache(maxsize=None)\n")
    assert by_node["FunctionDef"].prefix == "import functools\n\n\n"
    assert (
        by_node["ClassDef"].middle == "@dataclass(\n    frozen=True,\n)\nclass P:\n    x: int = 0\n"
    )


def test_a_line_with_two_statements_is_masked_whole():
    middles = {split.middle for split in splits("a = 1; b = 2\nc = 3\n", range(100))}
    assert middles == {"a = 1; b = 2\n", "c = 3\n", "a = 1; b = 2\nc = 3\n"}


def test_a_statement_sharing_its_line_with_a_clause_header_is_not_chosen():
    middles = {split.middle for split in splits(TRICKY["else_on_one_line"], range(200))}
    assert "else: x = 1\n" not in middles
    assert "while b: y = 2\n" in middles  # the whole loop, body included: a structure


def test_lines_are_counted_as_python_counts_them():
    # str.splitlines would split inside the string literal and at the form feed
    code = TRICKY["line_separator_in_string"]
    assert {split.middle for split in splits(code, range(100))} == {
        code.split("\n")[0] + "\n",
        "t = 1\n",
        code,
    }
    middles = {split.middle for split in splits(TRICKY["form_feed"], range(200))}
    assert "\x0cb = 2\n" in middles
    assert "\x0c    return x\n" in middles


def test_line_endings_stay_in_the_middle():
    for split in splits(TRICKY["crlf"], range(50)):
        assert split.middle.endswith("\r\n")
        assert "\n" not in split.middle.replace("\r\n", "")
    middles = {split.middle for split in splits(TRICKY["lone_cr"], range(100))}
    assert {"a = 1\r", "b = 2\r", "if a:\r    c = 3\r", "    c = 3\r"} <= middles


def test_the_last_line_without_newline_ends_the_middle():
    middles = {split.middle for split in splits(TRICKY["no_trailing_newline"], range(100))}
    assert "    return b" in middles
    assert TRICKY["no_trailing_newline"] in middles


@pytest.mark.parametrize(
    "code",
    [
        "",
        "\n\n",
        "# only a comment\n# and another\n",
        "def f(:\n    pass\n",
        "x = 'unclosed\n",
        "a\x00",
    ],
)
def test_no_split_without_a_parsable_statement(code):
    assert split_source(code, random.Random(0)) is None


def test_the_same_seed_gives_the_same_split():
    code = load_bundled("seed")[0].reference_solution
    assert splits(code) == splits(code)
    assert len({(split.prefix, split.middle) for split in splits(code)}) > 1


# ---------------------------------------------------------------- format_fim / choose_mode
SPLIT = FimSplit(prefix="def f():\n", middle="    return 1\n", suffix="x = f()\n", node="Return")


def test_psm_layout():
    context, target = format_fim(SPLIT, FimTokens(), "psm")
    assert context == "<fim_prefix>def f():\n<fim_suffix>x = f()\n<fim_middle>"
    assert target == "    return 1\n"


def test_spm_layout():
    tokens = FimTokens(prefix="<P>", middle="<M>", suffix="<S>")
    context, target = format_fim(SPLIT, tokens, "spm")
    assert context == "<S>x = f()\n<P>def f():\n<M>"
    assert target == "    return 1\n"


def test_unknown_mode_is_refused():
    with pytest.raises(ValueError, match="psm or spm"):
        format_fim(SPLIT, FimTokens(), "pms")  # type: ignore[arg-type]


def test_fim_tokens_list():
    assert FimTokens().as_list() == ["<fim_prefix>", "<fim_middle>", "<fim_suffix>"]


def test_choose_mode_follows_the_share():
    rng = random.Random(0)
    assert {choose_mode(rng, 0.0) for _ in range(200)} == {"psm"}
    assert {choose_mode(rng, 1.0) for _ in range(200)} == {"spm"}
    draws = [choose_mode(rng, 0.5) for _ in range(1000)]
    assert 400 < draws.count("spm") < 600
    with pytest.raises(ValueError):
        choose_mode(rng, 1.5)


# ---------------------------------------------------------------- sfim_rows
SOURCES = [(f"q{i}/s{i}", q.reference_solution) for i, q in enumerate(load_bundled("seed")[:10])]


@pytest.mark.parametrize(("ratio", "count"), [(0, 0), (0.5, 5), (1, 10), (2, 20), (1.3, 13)])
def test_row_counts(ratio, count):
    rows = sfim_rows(SOURCES, ratio, seed=0)
    assert len(rows) == count
    for sample_id, split in rows:
        check_split(dict(SOURCES)[sample_id], split)


def test_whole_passes_use_every_source_with_fresh_splits():
    rows = sfim_rows(SOURCES, 2, seed=0)
    ids = [sample_id for sample_id, _ in rows]
    assert ids == [sample_id for sample_id, _ in SOURCES] * 2
    assert any(
        first != second for (_, first), (_, second) in zip(rows[:10], rows[10:], strict=True)
    )


def test_rows_are_deterministic_and_seeded():
    assert sfim_rows(SOURCES, 1.5, seed=3) == sfim_rows(SOURCES, 1.5, seed=3)
    assert sfim_rows(SOURCES, 1, seed=3) != sfim_rows(SOURCES, 1, seed=4)


def test_a_sources_rows_do_not_depend_on_the_others():
    extra = ("new/s0", "def g():\n    return 42\n")
    for ratio in (1, 2):
        before = sfim_rows(SOURCES, ratio, seed=7)
        after = sfim_rows([extra, *SOURCES], ratio, seed=7)
        assert [row for row in after if row[0] != extra[0]] == before


def test_sources_without_a_split_give_no_row():
    rows = sfim_rows([("bad", "def ("), ("empty", "# nothing\n"), *SOURCES[:2]], 1, seed=0)
    assert [sample_id for sample_id, _ in rows] == [SOURCES[0][0], SOURCES[1][0]]
    assert sfim_rows([], 2, seed=0) == []
    with pytest.raises(ValueError):
        sfim_rows(SOURCES, -1, seed=0)


# ---------------------------------------------------------------- ensure_fim_tokens
@pytest.fixture
def student(tiny_models: Path):
    from transformers import AutoModelForCausalLM

    from iterkd.modeling import load_tokenizer

    path = tiny_models / "student"
    return load_tokenizer(path), AutoModelForCausalLM.from_pretrained(path, local_files_only=True)


def embedding_rows(model) -> int:
    return model.get_input_embeddings().weight.shape[0]


def test_missing_sentinels_are_added_and_the_embeddings_grow(student):
    import torch

    tokenizer, model = student
    specials_before = set(tokenizer.all_special_tokens)
    old = model.get_input_embeddings().weight.detach().clone()

    added = ensure_fim_tokens(tokenizer, model, FimTokens())

    assert added == FimTokens().as_list()
    ids = [tokenizer.convert_tokens_to_ids(token) for token in added]
    for token, token_id in zip(added, ids, strict=True):
        assert tokenizer.encode(token, add_special_tokens=False) == [token_id]
    assert tokenizer.encode("<fim_prefix>def f", add_special_tokens=False)[0] == ids[0]
    assert specials_before | set(added) <= set(tokenizer.all_special_tokens)
    assert embedding_rows(model) == len(tokenizer) == len(old) + 3
    assert model.get_output_embeddings().weight.shape[0] == len(tokenizer)
    new = model.get_input_embeddings().weight.detach()
    assert torch.equal(new[: len(old)], old)
    assert torch.allclose(new[len(old) :], old.mean(dim=0).expand(3, -1), atol=1e-3)

    assert ensure_fim_tokens(tokenizer, model, FimTokens()) == []
    assert embedding_rows(model) == len(tokenizer)


def test_known_sentinels_add_nothing_and_leave_the_model_alone(student):
    tokenizer, model = student
    tokenizer.add_special_tokens(
        {"extra_special_tokens": FimTokens().as_list()}, replace_extra_special_tokens=False
    )
    embeddings = model.get_input_embeddings()
    rows = embedding_rows(model)

    assert ensure_fim_tokens(tokenizer, model, FimTokens()) == []
    assert model.get_input_embeddings() is embeddings
    assert embedding_rows(model) == rows
    chat = FimTokens(prefix="<|system|>", middle="<|user|>", suffix="<|assistant|>")
    assert ensure_fim_tokens(tokenizer, model, chat) == []


def test_without_a_model_only_the_tokenizer_changes(student):
    tokenizer, _ = student
    size = len(tokenizer)
    assert ensure_fim_tokens(tokenizer, None, FimTokens()) == FimTokens().as_list()
    assert len(tokenizer) == size + 3
