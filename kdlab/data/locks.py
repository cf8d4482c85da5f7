"""One writer per folder: an exclusive lock that a second ``kdlab`` process writing into the same run or output
folder is refused by, with one line naming the holder.

The lock is ``fcntl.flock`` on ``<folder>/.kdlab.lock``, which also records the holder's pid and command. The
kernel drops a flock when its process dies, so a lock left by a killed process (``kill -9``) is simply taken
over; the file's stale pid is only ever read for the message. The lock file's descriptor is not inherited by
child processes (Python opens files close-on-exec), so stage subprocesses never hold their parent's lock.
"""

from __future__ import annotations

import contextlib
import os
import sys
from collections.abc import Iterator
from pathlib import Path

from kdlab.errors import UserError

LOCK_NAME = ".kdlab.lock"


class FolderInUse(UserError):
    """Another live process writes into the folder."""


def _holder(lock_file: Path) -> str:
    """``pid N (command)`` as the holder wrote it, or a plain phrase when the file says nothing."""
    try:
        text = lock_file.read_text(encoding="utf-8").strip()
    except OSError:
        text = ""
    return text or "another process"


@contextlib.contextmanager
def folder_lock(folder: str | Path, what: str = "writes into") -> Iterator[Path]:
    """Hold the exclusive lock of ``folder`` (created when missing) for the ``with`` block; raises
    :class:`FolderInUse` at once when a live process holds it. Yields the folder."""
    if sys.platform == "win32":  # pragma: no cover - no flock: one writer is the user's care there
        yield Path(folder)
        return
    import fcntl

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    lock_file = folder / LOCK_NAME
    fd = os.open(lock_file, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise FolderInUse(f"{folder}: {_holder(lock_file)} {what} this folder; wait for it to end or use "
                              "another folder") from None
        os.ftruncate(fd, 0)
        os.write(fd, f"pid {os.getpid()} ({' '.join(sys.argv[:3])})".encode())
        yield folder
    finally:
        os.close(fd)  # releases the flock (the file stays: removing it could race a new holder)
