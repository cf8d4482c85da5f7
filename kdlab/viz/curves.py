"""Learning curves from ``metrics.csv`` rows (``kind`` step | epoch, ``epoch``, ``step`` and metric columns,
e.g. :func:`kdlab.explore.training.read_metrics`): the training loss of eq 13 (L_jca of eq 6 plus the KD terms),
its CTC and attention/CMLM parts, token accuracy, and the four KD terms (eq 7, 8, 11, 12)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

Row = Mapping[str, float | str]
# KD term columns of the distiller (kdlab.kd.distiller) and their equations
KD_TERMS = {"kd_enc_f": "enc frame (eq 7)", "kd_enc_s": "enc sequence (eq 8)", "kd_dec_f": "dec frame (eq 11)",
            "kd_dec_s": "dec sequence (eq 12)"}
KD_COLOURS = ("C4", "C5", "C6", "C8")
STEP_ALPHA = 0.45


def _rows(rows: Sequence[Row], kind: str, key: str) -> tuple[list[float], list[float]]:
    """(steps, values) of the rows of ``kind`` that hold ``key``."""
    found = [(float(r["step"]), float(r[key])) for r in rows if r.get("kind") == kind and r.get(key) not in (None, "")]
    return [s for s, _ in found], [v for _, v in found]


def _epoch_lines(ax: Axes, rows: Sequence[Row]) -> None:
    """Dotted vertical lines at the step where each epoch ended."""
    for step in _rows(rows, "epoch", "epoch")[0]:
        ax.axvline(step, color="#bbbbbb", lw=0.6, ls=":", zorder=0)


def _plot_pair(ax: Axes, rows: Sequence[Row], train_key: str, dev_key: str | None, label: str, colour: str) -> None:
    """Per-step training values (thin line) and per-epoch dev values (markers) of one metric."""
    steps, values = _rows(rows, "step", train_key)
    if steps:
        ax.plot(steps, values, color=colour, lw=1.0, alpha=STEP_ALPHA, label=f"train {label}")
    if dev_key:
        steps, values = _rows(rows, "epoch", dev_key)
        if steps:
            ax.plot(steps, values, color=colour, marker="o", ms=4, lw=1.6, label=f"dev {label}")


def _finish(ax: Axes, title: str, ylabel: str, log_y: bool = False) -> None:
    ax.set_title(title, fontsize=10)
    ax.set_xlabel("optimiser step")
    ax.set_ylabel(ylabel)
    if log_y:
        ax.set_yscale("log")
    ax.grid(alpha=0.25)
    if ax.get_legend_handles_labels()[0]:
        ax.legend(fontsize=7, loc="best")


def kd_columns(rows: Sequence[Row]) -> list[str]:
    """The KD term columns present in ``rows`` (in the order of :data:`KD_TERMS`)."""
    present = {k for r in rows for k in r}
    return [k for k in KD_TERMS if k in present]


def learning_curves(rows: Sequence[Row], title: str = "", log_y: bool = False) -> Figure:
    """One run: total loss (eq 13; eq 6 without KD), its CTC / attention parts, token accuracy, and the KD
    terms when the run distils. Thin lines: per-step training means; markers: dev values after each epoch."""
    kd = kd_columns(rows)
    panels = 4 if kd else 3
    fig = Figure(figsize=(3.6 * panels, 3.2))  # fixed margins: redrawn after every epoch, so kept cheap
    axes = fig.subplots(1, panels)
    fig.subplots_adjust(left=0.24 / panels, right=0.99, bottom=0.15, top=0.84 if title else 0.9,
                        wspace=0.32)
    if kd:  # the dev loss is L_jca alone (no teacher at validation): compare it with the training L_jca
        _plot_pair(axes[0], rows, "loss", None, "loss (eq 13)", "C0")
        _plot_pair(axes[0], rows, "loss_jca", "dev_loss", "L_jca", "C7")
    else:
        _plot_pair(axes[0], rows, "loss", "dev_loss", "L_jca", "C0")
    _finish(axes[0], "loss (eq 13)" if kd else "loss L_jca (eq 6)", "loss", log_y)
    _plot_pair(axes[1], rows, "loss_ctc", "dev_loss_ctc", "CTC", "C1")
    _plot_pair(axes[1], rows, "loss_att", "dev_loss_att", "attention / CMLM", "C2")
    _finish(axes[1], "L_ctc and L_att / L_mlm (eq 6)", "loss", log_y)
    _plot_pair(axes[2], rows, "acc", "dev_acc", "token accuracy", "C3")
    _finish(axes[2], "decoder token accuracy", "accuracy")
    if kd:
        for i, key in enumerate(kd):
            _plot_pair(axes[3], rows, key, None, KD_TERMS[key], KD_COLOURS[i])
        _finish(axes[3], "KD terms (eq 10)", "loss", log_y)
    for ax in axes:
        _epoch_lines(ax, rows)
    if title:
        fig.suptitle(title, fontsize=11)
    return fig


def _epoch_series(rows: Sequence[Row], key: str, offset: int) -> tuple[list[float], list[float]]:
    found = [(float(r["epoch"]) + offset, float(r[key])) for r in rows
             if r.get("kind") == "epoch" and r.get(key) not in (None, "")]
    return [e for e, _ in found], [v for _, v in found]


def compare_curves(runs: Mapping[str, Sequence[Row]], offsets: Mapping[str, int] | None = None,
                   metrics: Sequence[tuple[str, str]] = (("dev_loss", "dev loss L_jca (eq 6)"),
                                                        ("dev_acc", "dev token accuracy")),
                   title: str = "") -> Figure:
    """Several runs side by side, one panel per epoch metric; ``offsets`` shift a run's epochs (stage 2
    continues stage 1, so ++S-KD is drawn after the +F-KD epochs)."""
    offsets = offsets or {}
    fig = Figure(figsize=(4.6 * len(metrics), 3.4), layout="constrained")
    axes = fig.subplots(1, len(metrics), squeeze=False)[0]
    for ax, (key, label) in zip(axes, metrics, strict=True):
        for i, (name, rows) in enumerate(runs.items()):
            epochs, values = _epoch_series(rows, key, offsets.get(name, 0))
            if epochs:
                ax.plot(epochs, values, marker="o", ms=4, color=f"C{i}", label=name)
        ax.set_title(label, fontsize=10)
        ax.set_xlabel("epoch")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.grid(alpha=0.25)
        if ax.get_legend_handles_labels()[0]:
            ax.legend(fontsize=7)
    if title:
        fig.suptitle(title, fontsize=11)
    return fig
