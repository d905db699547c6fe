"""`iterkd report` through `iterkd.cli.main`, so errors come out as the CLI prints them."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

import iterkd.cli


def _main(args: list[str], capsys) -> tuple[int, str, str]:
    code = iterkd.cli.main(args)
    out, err = capsys.readouterr()
    return code, out, err


def test_markdown_to_stdout(report_run: Path, capsys) -> None:
    (report_run / "report.md").unlink(missing_ok=True)  # the controller wrote one at the end
    code, out, err = _main(["report", str(report_run)], capsys)
    assert code == 0 and err == ""
    assert out.startswith("# tiny-cpu (complete)") and "## pass@k per round" in out
    assert not (report_run / "report.md").exists()  # printed, not written


def test_json_of_one_round(report_run: Path, capsys) -> None:
    code, out, _ = _main(["report", str(report_run), "--round", "1", "--format", "json"], capsys)
    data = json.loads(out)
    assert code == 0 and (data["kind"], data["round"], data["schema_version"]) == (
        "round",
        "001",
        1,
    )


def test_html_is_written_and_opened(run_copy: Path, capsys, monkeypatch) -> None:
    opened: list[str] = []
    monkeypatch.setattr("webbrowser.open", lambda url: opened.append(url) or True)
    code, out, _ = _main(
        ["report", str(run_copy), "--round", "baseline", "--format", "html"], capsys
    )
    path = run_copy / "rounds" / "baseline" / "report.html"
    assert code == 0 and out.strip() == str(path) and path.is_file() and opened == []
    code, out, _ = _main(["report", str(run_copy), "--format", "html", "--open"], capsys)
    assert code == 0 and opened == [(run_copy / "report.html").resolve().as_uri()]


def test_errors_name_the_round_and_the_run(report_run: Path, tmp_path: Path, capsys) -> None:
    code, out, err = _main(["report", str(report_run), "--round", "4"], capsys)
    assert code == 2 and out == ""
    assert err == (
        f"iterkd report: error: {report_run}: round 004 does not exist "
        "(rounds: baseline, 000, 001)\n"
    )
    code, _, err = _main(["report", str(report_run), "--round", "latest"], capsys)
    assert code == 2 and "round 'latest': expected a round number or 'baseline'" in err
    code, _, err = _main(["report", str(tmp_path)], capsys)
    assert code == 2 and f"{tmp_path}: no state.json: not an iterkd run directory" in err


def test_unknown_format_is_refused_by_argparse(report_run: Path, capsys) -> None:
    with pytest.raises(SystemExit) as exit_info:
        iterkd.cli.main(["report", str(report_run), "--format", "pdf"])
    assert exit_info.value.code == 2
    assert "invalid choice: 'pdf'" in capsys.readouterr().err
