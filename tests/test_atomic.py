"""publish_folder: a folder appears whole under its name, or not at all."""

from __future__ import annotations

import errno
import os
import stat
from pathlib import Path

import pytest

from iterkd.atomic import publish_folder


def write_two_files(folder: Path) -> str:
    (folder / "a.txt").write_text("a")
    (folder / "sub").mkdir()
    (folder / "sub" / "b.txt").write_text("b")
    return "written"


def test_a_published_folder_holds_every_file_with_the_usual_modes(tmp_path: Path) -> None:
    to = tmp_path / "out" / "model"
    result, published = publish_folder(to, write_two_files, tag="test")
    assert (result, published) == ("written", True)
    assert (to / "sub" / "b.txt").read_text() == "b"
    mask = os.umask(0)
    os.umask(mask)
    assert stat.S_IMODE(to.stat().st_mode) == 0o777 & ~mask  # not mkdtemp's 0700
    assert stat.S_IMODE((to / "a.txt").stat().st_mode) == 0o666 & ~mask
    assert sorted(p.name for p in to.parent.iterdir()) == ["model"]  # no temporary sibling left


def test_an_empty_target_folder_is_replaced(tmp_path: Path) -> None:
    (tmp_path / "model").mkdir()
    assert publish_folder(tmp_path / "model", write_two_files, tag="test")[1]
    assert (tmp_path / "model" / "a.txt").exists()


def test_a_failing_writer_leaves_nothing_behind(tmp_path: Path) -> None:
    def fail(folder: Path) -> None:
        (folder / "half.bin").write_bytes(b"x")
        raise RuntimeError("disk full")

    with pytest.raises(RuntimeError, match="disk full"):
        publish_folder(tmp_path / "model", fail, tag="test")
    assert list(tmp_path.iterdir()) == []


def test_a_folder_published_meanwhile_by_another_process_wins(tmp_path: Path) -> None:
    to = tmp_path / "model"

    def race(folder: Path) -> str:
        to.mkdir()
        (to / "theirs.txt").write_text("first")  # the other process's rename landed first
        return write_two_files(folder)

    assert publish_folder(to, race, tag="test") == ("written", False)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model"]
    assert [p.name for p in to.iterdir()] == ["theirs.txt"]


def test_a_writer_error_is_raised_even_when_the_target_is_filled_meanwhile(tmp_path: Path) -> None:
    """Only the rename's own "already there" means another process won; the same errno from
    the writer is the writer's failure."""
    to = tmp_path / "model"

    def fail_after_a_race(folder: Path) -> None:
        to.mkdir()
        (to / "theirs.txt").write_text("first")
        raise FileExistsError(errno.EEXIST, "the writer's own error", str(folder / "x"))

    with pytest.raises(FileExistsError, match="the writer's own error"):
        publish_folder(to, fail_after_a_race, tag="test")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model"]
