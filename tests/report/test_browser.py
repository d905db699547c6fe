"""The HTML reports in a real browser: headless Chromium renders the run-level report and a
round's, the rendered DOM holds the charts and tables, and the screenshot is a real picture.

With ITERKD_SAVE_SCREENSHOT=1 the run-level screenshot is kept as
benchmarks/report_screenshot.png (else it goes to the test's tmp folder)."""

from __future__ import annotations

import os
import shutil
import struct
import subprocess
import zlib
from pathlib import Path

import pytest

from iterkd.report import write_reports

BROWSER = shutil.which("chromium") or shutil.which("chromium-browser")
pytestmark = pytest.mark.skipif(
    BROWSER is None,
    reason="no chromium on PATH (`make system-deps` installs Debian's chromium as root)",
)
WIDTH, HEIGHT = 1280, 2400
SCREENSHOT = Path(__file__).resolve().parents[2] / "benchmarks" / "report_screenshot.png"


def _chromium(tmp_path: Path, *args: str) -> str:
    command = [
        str(BROWSER), "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars",
        f"--user-data-dir={tmp_path / 'profile'}", *args,
    ]  # fmt: skip
    done = subprocess.run(command, capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stderr[-2000:]
    return done.stdout


def _png_pixels(path: Path) -> tuple[int, int, bytes]:
    """Width, height and the decompressed (filtered) scanlines of a PNG, with the stdlib only."""
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n", f"{path} is not a PNG"
    offset, idat, size = 8, b"", (0, 0)
    while offset < len(data):
        (length,) = struct.unpack(">I", data[offset : offset + 4])
        kind, body = data[offset + 4 : offset + 8], data[offset + 8 : offset + 8 + length]
        if kind == b"IHDR":
            size = struct.unpack(">II", body[:8])
        elif kind == b"IDAT":
            idat += body
        offset += 12 + length
    return size[0], size[1], zlib.decompress(idat)


def _render(tmp_path: Path, html: Path, screenshot: Path) -> str:
    url = html.resolve().as_uri()
    dom = _chromium(tmp_path, "--dump-dom", url)
    _chromium(tmp_path, f"--screenshot={screenshot}", f"--window-size={WIDTH},{HEIGHT}", url)
    return dom


def _assert_picture(path: Path) -> None:
    width, height, pixels = _png_pixels(path)
    assert (width, height) == (WIDTH, HEIGHT)
    assert path.stat().st_size > 20_000  # a blank page compresses to a few kB
    assert len(set(pixels)) > 64, "the screenshot is (nearly) one colour"


def test_run_report_renders(run_copy: Path, tmp_path: Path) -> None:
    write_reports(run_copy, sinks=False)
    keep = os.environ.get("ITERKD_SAVE_SCREENSHOT") == "1"
    screenshot = SCREENSHOT if keep else tmp_path / "run.png"
    dom = _render(tmp_path, run_copy / "report.html", screenshot)
    assert dom.count("<svg") >= 6 and dom.count("<table") >= 6
    for heading in ("pass@k per round", "Bucket transitions", "Training curves"):
        assert heading in dom
    _assert_picture(screenshot)


def test_round_report_renders(run_copy: Path, tmp_path: Path) -> None:
    write_reports(run_copy, round=0, sinks=False)
    dom = _render(tmp_path, run_copy / "rounds" / "000" / "report.html", tmp_path / "000.png")
    assert dom.count("<svg") >= 8 and "<details>" in dom
    for heading in ("Feedback views", "Synthesis funnel", "Static-analysis codes", "Questions"):
        assert heading in dom
    _assert_picture(tmp_path / "000.png")
