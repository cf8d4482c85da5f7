"""kdlab.data.locks: one writer per folder; a second one is refused with the holder's pid; a lock left by a
killed process is taken over."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest
from lock_holder import hold_lock, kill

from kdlab.data.locks import LOCK_NAME, FolderInUse, folder_lock


def test_a_second_writer_is_refused_with_the_holders_pid(tmp_path: Path) -> None:
    proc = hold_lock(tmp_path / "run")
    try:
        with pytest.raises(FolderInUse, match=rf"run: pid {proc.pid} \(.*\) writes into this folder"):
            with folder_lock(tmp_path / "run"):
                pass
    finally:
        kill(proc)


def test_a_killed_holders_lock_is_taken_over(tmp_path: Path) -> None:
    proc = hold_lock(tmp_path / "run")
    kill(proc)
    assert (tmp_path / "run" / LOCK_NAME).is_file()  # the stale file stays ...
    with folder_lock(tmp_path / "run") as folder:  # ... and is taken over
        assert f"pid {os.getpid()}" in (folder / LOCK_NAME).read_text()


def test_the_lock_is_released_after_the_block(tmp_path: Path) -> None:
    with folder_lock(tmp_path / "out"):
        pass
    start = time.perf_counter()
    with folder_lock(tmp_path / "out"):
        assert time.perf_counter() - start < 1.0
