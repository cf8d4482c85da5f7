"""Checkpoints: atomic writes, weights-only loading (malicious pickles refused), RNG round trip, averaging."""

from __future__ import annotations

import os
import random
from pathlib import Path

import pytest
import torch

from kdlab.checkpoint import (
    CheckpointError,
    average_run,
    average_state_dicts,
    epoch_checkpoints,
    load_checkpoint,
    prune_checkpoints,
    rng_state,
    save_atomic,
    set_rng_state,
)


def _ckpt(value: float, epoch: int = 1) -> dict:
    model = {"w": torch.full((2, 3), value), "n": torch.tensor(epoch)}
    return {"model": model, "epoch": epoch, "step": 10 * epoch}


def test_save_and_load_round_trip(tmp_path: Path) -> None:
    save_atomic(_ckpt(1.5), tmp_path / "epoch-1.pt")
    got = load_checkpoint(tmp_path / "epoch-1.pt")
    assert torch.equal(got["model"]["w"], torch.full((2, 3), 1.5)) and got["step"] == 10
    assert [p.name for p in tmp_path.iterdir()] == ["epoch-1.pt"]  # no temp file left behind


@pytest.mark.parametrize("umask,mode", [(0o022, 0o644), (0o027, 0o640), (0o002, 0o664)])
def test_save_honours_umask(tmp_path: Path, umask: int, mode: int) -> None:
    old = os.umask(umask)
    try:
        save_atomic(_ckpt(1.0), tmp_path / "epoch-1.pt")
    finally:
        os.umask(old)
    assert (tmp_path / "epoch-1.pt").stat().st_mode & 0o777 == mode


def test_next_save_removes_orphan_temp_files(tmp_path: Path) -> None:
    """A kill during save_atomic leaves '.epoch-1.pt.<random>.tmp'; the next save of that file removes it."""
    orphan = tmp_path / ".epoch-1.pt.k1ll3d.tmp"
    orphan.write_bytes(b"half a checkpoint")
    other = tmp_path / ".avg-5.pt.abc.tmp"
    other.write_bytes(b"half an average")
    save_atomic(_ckpt(1.0), tmp_path / "epoch-1.pt")
    assert not orphan.exists() and other.exists()  # another file's temp is left to its own next save
    from kdlab.checkpoint import remove_stale_temps

    assert remove_stale_temps(tmp_path) == [other] and sorted(p.name for p in tmp_path.iterdir()) == ["epoch-1.pt"]


def test_crash_during_save_keeps_previous_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "epoch-1.pt"
    save_atomic(_ckpt(1.0), path)
    before = path.read_bytes()

    def crashing_save(obj, f) -> None:
        f.write(b"PARTIAL" * 100)  # half-written data, then the process "dies"
        raise KeyboardInterrupt("killed while saving")

    monkeypatch.setattr(torch, "save", crashing_save)
    with pytest.raises(KeyboardInterrupt):
        save_atomic(_ckpt(2.0), path)
    assert path.read_bytes() == before  # the old checkpoint is intact
    assert sorted(p.name for p in tmp_path.iterdir()) == ["epoch-1.pt"]  # and no partial temp file
    with pytest.raises(KeyboardInterrupt):
        save_atomic(_ckpt(2.0), tmp_path / "epoch-2.pt")
    assert not (tmp_path / "epoch-2.pt").exists()  # no partial file under the final name


class Evil:
    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def test_malicious_pickle_is_refused(tmp_path: Path) -> None:
    marker = tmp_path / "pwned"
    path = tmp_path / "epoch-1.pt"
    torch.save({"model": {"w": torch.zeros(1)}, "payload": Evil(marker)}, path)
    with pytest.raises(CheckpointError, match=r"epoch-1\.pt: refused to load"):
        load_checkpoint(path)
    assert not marker.exists()  # the payload never ran


def test_bad_files_are_named(tmp_path: Path) -> None:
    with pytest.raises(CheckpointError, match="missing.pt: checkpoint not found"):
        load_checkpoint(tmp_path / "missing.pt")
    (tmp_path / "junk.pt").write_bytes(b"not a checkpoint")
    with pytest.raises(CheckpointError, match="junk.pt"):
        load_checkpoint(tmp_path / "junk.pt")
    torch.save({"weights": torch.zeros(1)}, tmp_path / "other.pt")
    with pytest.raises(CheckpointError, match="other.pt: not a kdlab checkpoint"):
        load_checkpoint(tmp_path / "other.pt")


def test_rng_state_round_trip_is_weights_only_safe(tmp_path: Path) -> None:
    import numpy as np

    torch.manual_seed(3), random.seed(3), np.random.seed(3)
    save_atomic({"model": {}, "rng": rng_state()}, tmp_path / "r.pt")
    expected = (torch.rand(3), random.random(), np.random.rand(2))
    torch.manual_seed(99), random.seed(99), np.random.seed(99)
    set_rng_state(load_checkpoint(tmp_path / "r.pt")["rng"])
    got = (torch.rand(3), random.random(), np.random.rand(2))
    assert torch.equal(got[0], expected[0]) and got[1] == expected[1] and np.array_equal(got[2], expected[2])


def test_average_equals_mean_of_tensors(tmp_path: Path) -> None:
    gen = torch.Generator().manual_seed(0)
    states = [{"w": torch.randn(4, 5, generator=gen), "b": torch.randn(5, generator=gen).double(),
               "count": torch.tensor(e)} for e in (1, 2, 4)]
    avg = average_state_dicts(states)
    assert torch.allclose(avg["w"], (states[0]["w"] + states[1]["w"] + states[2]["w"]) / 3, atol=1e-6)
    assert avg["b"].dtype == torch.float64 and avg["w"].dtype == torch.float32
    assert int(avg["count"]) == 2  # floor((1 + 2 + 4) / 3)
    with pytest.raises(CheckpointError, match="different parameter names"):
        average_state_dicts([{"w": torch.zeros(1)}, {"v": torch.zeros(1)}])


def test_average_run_uses_last_n(tmp_path: Path) -> None:
    for e in range(1, 8):
        save_atomic(_ckpt(float(e), e), tmp_path / f"epoch-{e}.pt")
    assert [p.name for p in epoch_checkpoints(tmp_path)][-2:] == ["epoch-6.pt", "epoch-7.pt"]  # numeric order
    out = average_run(tmp_path, 5)
    got = load_checkpoint(out)
    assert out.name == "avg-5.pt"
    assert torch.allclose(got["model"]["w"], torch.full((2, 3), 5.0))  # mean of 3..7
    assert got["averaged"] == [f"epoch-{e}.pt" for e in range(3, 8)] and got["epoch"] == 7
    with pytest.raises(CheckpointError, match="asked to average 9 checkpoints but the run has 7"):
        average_run(tmp_path, 9)
    prune_checkpoints(tmp_path, 2)
    assert [p.name for p in epoch_checkpoints(tmp_path)] == ["epoch-6.pt", "epoch-7.pt"]


def test_average_cli(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    from kdlab.cli import main

    for e in (1, 2):
        save_atomic(_ckpt(float(e), e), tmp_path / f"epoch-{e}.pt")
    assert main(["average", str(tmp_path), "--n", "2"]) == 0
    assert torch.allclose(load_checkpoint(tmp_path / "avg-2.pt")["model"]["w"], torch.full((2, 3), 1.5))
    assert main(["average", str(tmp_path), "--n", "3"]) == 2
    assert "has 2" in capsys.readouterr().err
