"""Issue #31, hardening: one-line errors (exit 2) instead of tracebacks or wasted work, and one
``kdlab reproduce`` per ``--out`` folder.

- ``kdlab reproduce --set``: an unknown field exits 2 (not 1), and a value of the wrong type or range fails
  before anything runs (``teacher_epochs=abc`` used to synthesise a 6 h corpus, then raise a TypeError);
- two ``kdlab reproduce`` on one ``--out``: the second is refused with the holder's pid, the stages'
  subfolders stay free for the stage processes, a killed holder's lock is taken over;
- a full disk during a checkpoint save: one line, the previous file unchanged, no temp file left.
"""

from __future__ import annotations

import errno
import io
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from lock_holder import hold_lock

import kdlab.data.files as files
from kdlab.checkpoint import CheckpointError, save_atomic
from kdlab.cli import main as kdlab_main
from kdlab.data.locks import folder_lock
from kdlab.reproduce import reproduce_cli


def _one_line_error(capsys: pytest.CaptureFixture[str], command: str) -> str:
    err = capsys.readouterr().err
    assert err.startswith(f"kdlab {command}: error: ") and err.count("\n") == 1, err
    assert "Traceback" not in err
    return err


@pytest.mark.parametrize("item, match", [
    ("bogus=1", "expected FIELD=VALUE with FIELD one of"),
    ("teacher_epochs=abc", "teacher_epochs: expected int, got 'abc'"),
    ("lr=.nan", "lr: must be a finite number"),
    ("train={lr: .nan}", "train.lr: must be a finite number"),
])
def test_reproduce_bad_set_is_one_line_exit_2_before_any_work(item: str, match: str, tmp_path: Path,
                                                             capsys: pytest.CaptureFixture[str]) -> None:
    rc = kdlab_main(["reproduce", "--out", str(tmp_path / "run"), "--cache", str(tmp_path / "cache"),
                     "--set", item])
    assert rc == 2
    assert match in _one_line_error(capsys, "reproduce")
    assert not (tmp_path / "cache").exists() and not (tmp_path / "run").exists()  # no corpus, no folder


def test_train_only_with_family_is_one_line_exit_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    rc = kdlab_main(["reproduce", "--out", str(tmp_path / "run"), "--family", "inter", "--train-only"])
    assert rc == 2 and "--train-only" in _one_line_error(capsys, "reproduce")


def test_second_reproduce_on_one_out_is_refused_naming_thehold_lock(tmp_path: Path,
                                                                  capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "run"
    holder = hold_lock(out)
    try:
        rc = kdlab_main(["reproduce", "--out", str(out), "--cache", str(tmp_path / "cache")])
    finally:
        holder.kill()
        holder.wait()
    assert rc == 2
    assert f"pid {holder.pid}" in _one_line_error(capsys, "reproduce")
    assert not (tmp_path / "cache").exists()  # refused before the corpus stage


def _can_lock_elsewhere(folder: Path) -> bool:
    """Whether another process can take ``folder``'s lock now."""
    code = "import sys\nfrom kdlab.data.locks import folder_lock\nwith folder_lock(sys.argv[1]): pass\n"
    return subprocess.run([sys.executable, "-c", code, str(folder)], capture_output=True).returncode == 0


def test_reproduce_holds_out_for_the_whole_run_but_not_the_stage_folders(tmp_path: Path,
                                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    """During the run ``--out`` is locked against other processes, its subfolders (where the stage
    subprocesses write and take their own locks) are not; a lock left by a killed holder is taken over."""
    seen: dict[str, bool] = {}

    def fake_run(preset, root: Path, *args, **kwargs) -> str:
        seen["out_free"] = _can_lock_elsewhere(root)
        seen["stage_free"] = _can_lock_elsewhere(root / "ar")
        with folder_lock(root / "students"):  # a stage run in this process (--jobs 1)
            seen["in_process_stage"] = True
        return "results"

    monkeypatch.setattr(reproduce_cli, "run", fake_run)
    out = tmp_path / "run"
    holder = hold_lock(out)
    os.kill(holder.pid, signal.SIGKILL)  # kill -9: its lock file stays, its flock does not
    holder.wait()
    assert kdlab_main(["reproduce", "--out", str(out), "--cache", str(tmp_path / "cache")]) == 0
    assert seen == {"out_free": False, "stage_free": True, "in_process_stage": True}
    assert _can_lock_elsewhere(out)  # released at the end


class _FullDisk(io.FileIO):
    """A file on a disk that fills up after ``room`` bytes."""

    room = 4096

    def write(self, data) -> int:  # noqa: ANN001 - bytes-like
        if self.tell() + len(data) > self.room:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        return super().write(data)


def _fill_disk(monkeypatch: pytest.MonkeyPatch) -> None:
    """Make kdlab's atomic writes land on :class:`_FullDisk` files."""
    monkeypatch.setattr(files.os, "fdopen", lambda fd, mode, **kw: _FullDisk(fd, "wb", closefd=True))


def test_full_disk_during_a_checkpoint_save_is_one_line_and_keeps_the_old_file(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "epoch-1.pt"
    save_atomic({"model": {"w": torch.zeros(4)}}, path)
    before = path.read_bytes()
    _fill_disk(monkeypatch)
    with pytest.raises(CheckpointError) as caught:
        save_atomic({"model": {"w": torch.ones(100_000)}}, path)
    assert "No space left on device" in str(caught.value) and "\n" not in str(caught.value)
    assert caught.value.__suppress_context__ and caught.value.__cause__ is None  # no chained traceback
    assert path.read_bytes() == before and sorted(p.name for p in tmp_path.iterdir()) == ["epoch-1.pt"]


def test_full_disk_in_a_command_is_one_line_exit_2(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                  capsys: pytest.CaptureFixture[str]) -> None:
    run = tmp_path / "run"
    save_atomic({"model": {"w": torch.ones(100_000)}, "epoch": 1}, run / "epoch-1.pt")
    _fill_disk(monkeypatch)
    assert kdlab_main(["average", str(run), "--n", "1"]) == 2
    assert "cannot write the checkpoint (No space left on device)" in _one_line_error(capsys, "average")
    assert sorted(p.name for p in run.iterdir()) == ["epoch-1.pt"]

