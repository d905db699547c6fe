"""What every benchmark records with its numbers: the date and machine, appended to RESULTS.md."""

from __future__ import annotations

import platform
import subprocess
import time
from collections.abc import Sequence
from pathlib import Path

RESULTS = Path(__file__).resolve().parent / "RESULTS.md"


def shell(command: Sequence[str], fallback: str) -> str:
    """Output of a small system command (date, nproc, uname), for the record."""
    try:
        return subprocess.run(command, capture_output=True, text=True, check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return fallback


def date() -> str:
    return shell(["date", "-u"], time.strftime("%c UTC", time.gmtime()))


def machine() -> str:
    """`nproc=2, Linux 6.18 x86_64, Python 3.11.7`."""
    uname = shell(["uname", "-srm"], platform.platform())
    return f"nproc={shell(['nproc'], '?')}, {uname}, Python {platform.python_version()}"


def record(text: str, path: Path = RESULTS) -> None:
    """Append a section; create the file with its title if it does not exist yet."""
    if not path.exists():
        path.write_text("# Benchmark results\n")
    with path.open("a", encoding="utf-8") as out:
        out.write("\n" + text)
