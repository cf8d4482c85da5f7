"""``metrics.csv`` (one row per logged step and per epoch) plus TensorBoard when it is installed.

Columns: ``kind`` (``step`` | ``epoch``), ``epoch``, ``step``, then metric names in order of first
appearance (``lr``, ``loss``, ``loss_ctc``, ``loss_att``, ``acc``, KD terms, ``dev_loss``, ``dev_acc``,
``skipped`` …). A new metric name rewrites the file with the wider header.
"""

from __future__ import annotations

import csv
import math
from pathlib import Path

FIXED = ["kind", "epoch", "step"]


class MetricsLogger:
    """Appends metric rows to ``<run>/metrics.csv``; inactive on non-main DDP ranks."""

    def __init__(self, run_dir: str | Path, active: bool = True, keep_until_epoch: int | None = None) -> None:
        """``keep_until_epoch``: when resuming, rows of later (interrupted) epochs are dropped."""
        self.path = Path(run_dir) / "metrics.csv"
        self.active = active
        self.columns: list[str] = list(FIXED)
        self.rows: list[dict] = []
        self.tb = None
        if not active:
            return
        if keep_until_epoch is not None and self.path.exists():
            self._reload(keep_until_epoch)
        else:
            self._rewrite()
        self.tb = _tensorboard(Path(run_dir) / "tensorboard")

    def _reload(self, keep_until_epoch: int) -> None:
        with self.path.open(newline="") as f:
            reader = csv.DictReader(f)
            self.columns = list(reader.fieldnames or FIXED)
            self.rows = [r for r in reader if int(r["epoch"]) <= keep_until_epoch]
        self._rewrite()

    def _rewrite(self) -> None:
        with self.path.open("w", newline="") as f:
            writer = csv.DictWriter(f, fieldnames=self.columns, restval="")
            writer.writeheader()
            writer.writerows(self.rows)

    def log(self, kind: str, epoch: int, step: int, metrics: dict[str, float]) -> None:
        """Write one row; numbers are rounded to 6 significant digits."""
        if not self.active:
            return
        row = {"kind": kind, "epoch": epoch, "step": step}
        row.update({k: _fmt(v) for k, v in metrics.items()})
        self.rows.append(row)
        new = [k for k in row if k not in self.columns]
        if new:
            self.columns += new
            self._rewrite()
        else:
            with self.path.open("a", newline="") as f:
                csv.DictWriter(f, fieldnames=self.columns, restval="").writerow(row)
        if self.tb is not None:
            for k, v in metrics.items():
                self.tb.add_scalar(f"{kind}/{k}", float(v), step)

    def last_row(self, kind: str) -> dict[str, float]:
        """The newest row of ``kind`` as numbers (empty cells left out); {} when there is none."""
        rows = [r for r in self.rows if r["kind"] == kind]
        if not rows:
            return {}
        return {k: float(v) for k, v in rows[-1].items() if k not in FIXED and v not in ("", None)}

    def close(self) -> None:
        if self.tb is not None:
            self.tb.close()


def _fmt(value: float | int) -> float | int | str:
    if isinstance(value, int):
        return value
    value = float(value)
    return value if not math.isfinite(value) else float(f"{value:.6g}")


def _tensorboard(folder: Path):
    try:
        from torch.utils.tensorboard import SummaryWriter
    except ImportError:  # tensorboard is optional
        return None
    return SummaryWriter(str(folder))
