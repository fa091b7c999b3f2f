"""Atomic file writes: a reader sees the old file or the complete new one, never a torn one.

The one implementation behind every file the project must not leave half-written
(checkpoints, exported policies): write a temporary file in the destination folder, flush
and fsync it, give it the permissions a plain ``open(path, "wb")`` would (``0666 & ~umask``;
``mkstemp`` alone would leave ``0600``), rename it over the destination with
:func:`os.replace`, and fsync the folder so the rename survives a power cut.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO

_DEFAULT_FILE_MODE = 0o666


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def _fsync_dir(folder: Path) -> None:
    """Make a rename durable (POSIX); a no-op where folders cannot be opened."""
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


@contextlib.contextmanager
def atomic_output(path: str | Path) -> Iterator[BinaryIO]:
    """Open a binary handle whose content replaces ``path`` only if the block succeeds.

    On any exception (including ``KeyboardInterrupt``) the temporary file is removed and an
    existing ``path`` is left untouched. The destination folder must exist.

    Raises:
        OSError: the folder is not writable or the write/rename failed.
    """
    path = Path(path)
    fd, tmp_name = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as handle:
            yield handle
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(tmp_name, _DEFAULT_FILE_MODE & ~_umask())
        os.replace(tmp_name, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp_name)
        raise
    _fsync_dir(path.parent)


def write_bytes_atomic(path: str | Path, data: bytes) -> Path:
    """Atomically replace ``path`` with ``data`` (see :func:`atomic_output`)."""
    with atomic_output(path) as handle:
        handle.write(data)
    return Path(path)
