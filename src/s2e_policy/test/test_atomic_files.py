"""Atomic writes: complete files with normal permissions, nothing torn or left behind."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from s2e_policy.atomic_files import atomic_output, write_bytes_atomic


def test_writes_with_umask_permissions(tmp_path: Path) -> None:
    old = os.umask(0o022)
    try:
        path = write_bytes_atomic(tmp_path / "a.bin", b"payload")
    finally:
        os.umask(old)
    assert path.read_bytes() == b"payload"
    assert stat.S_IMODE(path.stat().st_mode) == 0o644  # mkstemp alone would give 0600
    assert [p.name for p in tmp_path.iterdir()] == ["a.bin"]


def test_failure_keeps_the_old_file_and_removes_the_temporary(tmp_path: Path) -> None:
    path = tmp_path / "a.bin"
    path.write_bytes(b"old")
    with pytest.raises(KeyboardInterrupt), atomic_output(path) as handle:
        handle.write(b"half of the new")
        raise KeyboardInterrupt
    assert path.read_bytes() == b"old"
    assert [p.name for p in tmp_path.iterdir()] == ["a.bin"]


def test_missing_folder_is_an_os_error(tmp_path: Path) -> None:
    with pytest.raises(OSError):
        write_bytes_atomic(tmp_path / "missing" / "a.bin", b"x")
