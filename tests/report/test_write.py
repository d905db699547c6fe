"""Writing the reports: every format at its place, atomically, outside the stage folders (whose
hashes must not change), self-contained HTML, and the metrics sinks."""

from __future__ import annotations

import importlib.machinery
import importlib.util
import json
import sys
import types
from html.parser import HTMLParser
from pathlib import Path

import pytest

import iterkd.report.write as write_module
from iterkd.report import ReportError, write_reports
from iterkd.report.sinks import round_scalars
from iterkd.rundir import tree_hash
from tests.report.helpers import state, summary

LABELS = ("baseline", "000", "001")


def _expected(run: Path, labels: tuple[str, ...] = LABELS) -> set[Path]:
    roots = [run / "rounds" / label for label in labels] + [run]
    return {root / f"report.{fmt}" for root in roots for fmt in ("json", "md", "html")}


def test_every_report_is_written_atomically(run_copy: Path, monkeypatch) -> None:
    atomic: list[Path] = []
    real = write_module.atomic_write_text

    def recording(path, text) -> None:
        atomic.append(Path(path))
        real(path, text)

    monkeypatch.setattr(write_module, "atomic_write_text", recording)
    written = write_reports(run_copy, sinks=False)
    assert set(written.paths) == _expected(run_copy) == set(atomic)
    assert all(path.is_file() for path in written.paths)
    for label in LABELS:
        data = json.loads((run_copy / "rounds" / label / "report.json").read_text())
        assert (data["schema_version"], data["round"]) == (1, label)
    whole = json.loads((run_copy / "report.json").read_text())
    assert whole["kind"] == "run" and len(whole["rounds"]) == 3
    assert (run_copy / "report.md").read_text().startswith("# tiny-cpu (complete)")
    assert not list(run_copy.rglob(".report.*"))  # no temporary file left behind


def test_stage_folders_are_untouched(run_copy: Path) -> None:
    write_reports(run_copy, sinks=False)
    for key, step in state(run_copy)["steps"].items():
        assert tree_hash(run_copy / "rounds" / key) == step["output_hash"], key
    assert not list((run_copy / "rounds").glob("*/*/report.*"))


class ExternalReferences(HTMLParser):
    """What in a page would load or run something: script, link and embedding elements, `src`
    attributes, absolute URLs in attributes, and `url(` / `@import` in styles. A model's reply
    shown as text (escaped) is not one, whatever it says: a tiny model once wrote "@import"."""

    LOADING_TAGS = ("script", "link", "iframe", "object", "embed", "img", "audio", "video")

    def __init__(self) -> None:
        super().__init__()
        self.found: list[str] = []
        self.in_style = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in self.LOADING_TAGS:
            self.found.append(f"<{tag}>")
        for name, value in attrs:
            value = (value or "").strip().lower()
            if name in ("src", "srcset") or value.startswith(("http:", "https:", "//")):
                self.found.append(f"{tag} {name}={value}")
            if name == "style" and ("url(" in value or "@import" in value):
                self.found.append(f"{tag} style={value}")
        self.in_style = tag == "style"

    def handle_endtag(self, tag: str) -> None:
        self.in_style = False

    def handle_data(self, data: str) -> None:
        if self.in_style and any(r in data.lower() for r in ("url(", "@import", "http")):
            self.found.append(f"<style> {data[:80]}")


def external_references(html: str) -> list[str]:
    parser = ExternalReferences()
    parser.feed(html)
    return parser.found


def test_the_reference_check_finds_loads_but_not_text() -> None:
    page = (
        '<style>@import url(x.css)</style><script src="a.js"></script>'
        '<a href="https://example.com">x</a><div style="background:url(y.png)"></div>'
    )
    assert len(external_references(page)) == 5
    text = '<pre>@import url(http://x) &lt;script src=y&gt;</pre><a href="rounds/001/report.html">r</a>'
    assert external_references(text) == []


def test_html_is_self_contained(run_copy: Path) -> None:
    write_reports(run_copy, sinks=False)
    for path in [run_copy / "report.html", *(run_copy / "rounds").glob("*/report.html")]:
        html = path.read_text()
        assert external_references(html) == [], path
        assert html.startswith("<!DOCTYPE html>") and "<style>" in html
        assert "<svg" in html and "<table" in html
    round_html = (run_copy / "rounds" / "000" / "report.html").read_text()
    assert round_html.count("<details>") == summary(run_copy, "000", "teacher")["questions"]
    assert "synthesis funnel" in round_html and "loss per step" in round_html
    run_html = (run_copy / "report.html").read_text()
    assert 'href="rounds/001/report.html"' in run_html


def test_one_round_and_the_run_level_report(run_copy: Path) -> None:
    written = write_reports(run_copy, round=1, sinks=False)
    assert set(written.paths) == _expected(run_copy, ("001",))
    assert not (run_copy / "rounds" / "000" / "report.json").exists()
    assert write_reports(run_copy, round="baseline", formats=("md",), sinks=False).paths == [
        run_copy / "rounds" / "baseline" / "report.md",
        run_copy / "report.md",
    ]
    with pytest.raises(ReportError, match="round 005 does not exist"):
        write_reports(run_copy, round=5, sinks=False)


def test_round_scalars_are_the_reported_values(report_run: Path) -> None:
    from iterkd.report import RunSource, run_report

    rounds = run_report(RunSource.open(report_run))["rounds"]
    scalars = round_scalars(rounds[1])
    evaluate, synth = (
        summary(report_run, "000", "evaluate"),
        summary(report_run, "000", "synthesize"),
    )
    assert scalars["eval/pass@1"] == evaluate["pass@1"]
    assert scalars["synthesis/requested"] == synth["funnel"]["requested"]
    assert scalars["train/loss_last"] == summary(report_run, "000", "train")["loss_last"]
    assert "feedback/judge_mean" not in scalars  # the judge view is missing: nothing to log
    names = ("pass@1", "pass@2", "greedy_pass@1")
    assert set(round_scalars(rounds[0])) == {
        f"eval/{name}{part}" for name in names for part in ("", "_ci95_low", "_ci95_high")
    }
    low, high = evaluate["intervals"]["pass@1"]
    assert (scalars["eval/pass@1_ci95_low"], scalars["eval/pass@1_ci95_high"]) == (low, high)
    train = summary(report_run, "000", "feedback")["train_pass"]
    assert scalars["train_questions/pass@1_after"] == train["after"]["value"]


def _without(monkeypatch, *names: str) -> None:
    real = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util, "find_spec", lambda name, *a: None if name in names else real(name, *a)
    )


def test_no_tensorboard_is_a_note(run_copy: Path, monkeypatch) -> None:
    _without(monkeypatch, "tensorboard", "wandb")
    written = write_reports(run_copy)
    assert written.notes == [
        "tensorboard is not installed (pip install 'iterkd[report]'): no TensorBoard metrics written"
    ]
    assert not (run_copy / "tensorboard").exists()


def test_tensorboard_scalars(run_copy: Path, monkeypatch) -> None:
    pytest.importorskip("tensorboard", reason="the `report` extra (tensorboard) is not installed")
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    _without(monkeypatch, "wandb")
    for _ in range(2):  # a second write replaces the first: no point twice
        assert write_reports(run_copy).notes == []
    events = EventAccumulator(str(run_copy / "tensorboard"))
    events.Reload()
    points = [(e.step, e.value) for e in events.Scalars("eval/pass@1")]
    expected = [summary(run_copy, label, "evaluate")["pass@1"] for label in LABELS]
    assert points == [(step, pytest.approx(v)) for step, v in enumerate(expected)]
    assert len(events.Scalars("train_step/loss")) == sum(
        summary(run_copy, label, "train")["steps"] for label in ("000", "001")
    )


def test_wandb_gets_the_same_scalars(run_copy: Path, monkeypatch) -> None:
    logged: list[tuple[dict, int]] = []
    fake = types.ModuleType("wandb")
    fake.__spec__ = importlib.machinery.ModuleSpec("wandb", None)
    tracker = types.SimpleNamespace(
        log=lambda data, step: logged.append((data, step)), finish=lambda: None
    )
    fake.init = lambda **kwargs: logged.append((kwargs, -1)) or tracker
    monkeypatch.setitem(sys.modules, "wandb", fake)
    _without(monkeypatch, "tensorboard")
    write_reports(run_copy, round=1)
    (init, _), (data, step) = logged
    assert init["mode"] == "offline" and init["name"] == "tiny-cpu"
    assert step == 2 and data["eval/pass@1"] == summary(run_copy, "001", "evaluate")["pass@1"]
    fake.init = lambda **kwargs: (_ for _ in ()).throw(RuntimeError("no network"))
    notes = write_reports(run_copy, round=1).notes
    assert notes[-1] == "wandb: not logged (RuntimeError: no network)"


def test_control_characters_in_answers_are_written_out(run_copy: Path) -> None:
    """A model's answer may hold terminal escapes: shown as text, never sent raw."""
    path = run_copy / "rounds" / "000" / "feedback" / "samples.jsonl"
    rows = [json.loads(line) for line in path.read_text().splitlines()]
    rows[0]["code"] = "print(1)\x1b[2J\x07"
    path.write_text("".join(json.dumps(row) + "\n" for row in rows))
    write_reports(run_copy, round=0, formats=("md", "html"), sinks=False)
    for fmt in ("md", "html"):
        text = (run_copy / "rounds" / "000" / f"report.{fmt}").read_text()
        assert "\x1b" not in text and "\x07" not in text
        assert "print(1)\\x1b[2J\\x07" in text
