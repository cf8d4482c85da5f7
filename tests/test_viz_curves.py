"""Learning-curve figures (kdlab.viz.curves) from metrics.csv-shaped rows: panels, series and offsets."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")

import pytest
from matplotlib.figure import Figure

from kdlab.viz.curves import KD_TERMS, compare_curves, kd_columns, learning_curves


def _rows(epochs: int = 3, steps_per_epoch: int = 4, kd: bool = False) -> list[dict]:
    """Rows as MetricsLogger writes them: per-step means, then one epoch row with the dev values."""
    rows, step = [], 0
    for epoch in range(1, epochs + 1):
        for _ in range(steps_per_epoch):
            step += 1
            row = {"kind": "step", "epoch": epoch, "step": step, "loss": 100.0 / step, "loss_ctc": 120.0 / step,
                   "loss_att": 90.0 / step, "acc": 0.1 * epoch, "loss_jca": 100.0 / step}
            if kd:
                row.update({"loss": 150.0 / step, "kd_enc_f": 40.0 / step, "kd_dec_f": 3.0, "loss_kd": 50.0 / step})
            rows.append(row)
        rows.append({"kind": "epoch", "epoch": epoch, "step": step, "loss": 80.0 / epoch, "dev_loss": 90.0 / epoch,
                     "dev_loss_ctc": 110.0 / epoch, "dev_loss_att": 85.0 / epoch, "dev_acc": 0.1 * epoch})
    return rows


def _line(ax, label: str):
    return next(line for line in ax.get_lines() if line.get_label() == label)


def test_learning_curves_plain_run_has_three_panels_with_step_and_dev_series() -> None:
    rows = _rows()
    fig = learning_curves(rows, title="teacher")
    assert isinstance(fig, Figure) and len(fig.axes) == 3
    loss_ax = fig.axes[0]
    train, dev = _line(loss_ax, "train L_jca"), _line(loss_ax, "dev L_jca")
    assert list(train.get_xdata()) == list(range(1, 13))  # every step row, x = optimiser step
    assert list(dev.get_xdata()) == [4.0, 8.0, 12.0]  # dev values where each epoch ended
    assert list(dev.get_ydata()) == pytest.approx([90.0, 45.0, 30.0])
    assert {line.get_label() for line in fig.axes[1].get_lines()} >= {"train CTC", "dev CTC"}
    assert _line(fig.axes[2], "dev token accuracy").get_ydata()[-1] == pytest.approx(0.3)
    assert fig._suptitle.get_text() == "teacher"
    fig.canvas.draw()


def test_learning_curves_of_a_kd_run_adds_the_kd_terms_panel() -> None:
    rows = _rows(kd=True)
    assert kd_columns(rows) == ["kd_enc_f", "kd_dec_f"]
    fig = learning_curves(rows, log_y=True)
    assert len(fig.axes) == 4
    labels = {line.get_label() for line in fig.axes[3].get_lines() if not line.get_label().startswith("_")}
    assert labels == {f"train {KD_TERMS['kd_enc_f']}", f"train {KD_TERMS['kd_dec_f']}"}
    assert fig.axes[0].get_yscale() == "log" and fig.axes[2].get_yscale() == "linear"
    epoch_marks = [line for line in fig.axes[0].get_lines() if line.get_label().startswith("_")]
    assert sorted(float(line.get_xdata()[0]) for line in epoch_marks) == [4.0, 8.0, 12.0]
    assert "eq 13" in fig.axes[0].get_title()


def test_compare_curves_shifts_stage_two_after_stage_one() -> None:
    runs = {"ljca": _rows(epochs=3), "fkd": _rows(epochs=2), "skd": _rows(epochs=1)}
    fig = compare_curves(runs, offsets={"skd": 2})
    assert len(fig.axes) == 2
    assert list(_line(fig.axes[0], "skd").get_xdata()) == [3.0]  # stage 2's epoch 1 is drawn as epoch 3
    assert list(_line(fig.axes[0], "ljca").get_xdata()) == [1.0, 2.0, 3.0]
    assert list(_line(fig.axes[1], "fkd").get_ydata()) == pytest.approx([0.1, 0.2])
