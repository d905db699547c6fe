"""Atomic writes: a reader (or a resumed run) sees the old file or the new one, never half of one."""

from __future__ import annotations

import contextlib
import errno
import os
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

T = TypeVar("T")


def atomic_write_bytes(path: str | Path, data: bytes) -> None:
    """Write to a temporary sibling, fsync it, rename it over `path`, fsync the directory."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        os.fchmod(fd, 0o666 & ~_umask())  # mkstemp makes 0600; a written file gets the usual mode
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise
    fsync_dir(path.parent)


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def atomic_write_text(path: str | Path, text: str) -> None:
    atomic_write_bytes(path, text.encode("utf-8"))


def fsync_dir(directory: str | Path) -> None:
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def fsync_tree(directory: str | Path) -> None:
    """Every file and folder under `directory` on disk: before the rename that publishes them."""
    for folder, _, files in os.walk(directory):
        for name in files:
            fd = os.open(os.path.join(folder, name), os.O_RDONLY)
            try:
                os.fsync(fd)
            finally:
                os.close(fd)
        fsync_dir(folder)


def publish_folder(to: str | Path, write: Callable[[Path], T], *, tag: str) -> tuple[T, bool]:
    """Have `write` fill a temporary sibling of `to`, give its files the usual modes, fsync them,
    and rename the folder into place (over an empty `to` too): readers see the whole folder or
    none. Returns what `write` returned and whether the folder was published: False, with the
    sibling removed, where a non-empty `to` appeared meanwhile (another process published
    first). On any error nothing is left behind."""
    to = Path(to)
    to.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{to.name}.{tag}-", dir=to.parent))
    try:
        result = write(tmp)
        _usual_modes(tmp)
        fsync_tree(tmp)
        published = _rename_unless_filled(tmp, to)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    if not published:
        shutil.rmtree(tmp, ignore_errors=True)
        return result, False
    fsync_dir(to.parent)
    return result, True


def _rename_unless_filled(tmp: Path, to: Path) -> bool:
    """Rename `tmp` to `to` (over an empty `to` too); False where a non-empty `to` is there."""
    try:
        os.rename(tmp, to)
    except OSError as exc:
        if exc.errno in (errno.ENOTEMPTY, errno.EEXIST):
            return False
        raise
    return True


def _usual_modes(folder: Path) -> None:
    """mkdtemp makes the folder 0700 (and some writers make 0600 files): a published folder gets
    the modes any other written file gets."""
    mask = _umask()
    for path in [folder, *folder.rglob("*")]:
        path.chmod((0o777 if path.is_dir() else 0o666) & ~mask)
