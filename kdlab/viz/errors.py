"""Error-analysis figures over whole test sets: S / I / D per model (the paper's Table 1 splits the error rate
into substitutions and the length errors I+D that NAR models suffer from), errors per utterance, confusion
pairs, and one model against another utterance by utterance. Inputs are plain tables (pandas DataFrames or
lists of dicts, e.g. from :mod:`kdlab.explore.errors`); the coloured alignments are
:func:`kdlab.viz.alignment.alignment_html`, here placed side by side for several models."""

from __future__ import annotations

import html
from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from kdlab.evaluate.metrics import DEL, INS, SUB, AlignOp
from kdlab.viz.alignment import OP_COLOURS, alignment_html, alignment_legend_html

EDGE = "#555555"
TYPES = ((SUB, "S", "substitutions"), (INS, "I", "insertions"), (DEL, "D", "deletions"))


def _table(rows: pd.DataFrame | Sequence[Mapping]) -> pd.DataFrame:
    return rows if isinstance(rows, pd.DataFrame) else pd.DataFrame(list(rows))


def error_type_bars(summary: pd.DataFrame | Sequence[Mapping], unit: str = "word") -> Figure:
    """Per set, one stacked bar per model: S, I and D as percent of the reference units N (rows with model,
    set, N, S, I, D as from :func:`kdlab.explore.errors.summary_table`); the labels give the total and I+D."""
    df = _table(summary)
    sets = list(dict.fromkeys(df["set"]))
    models = list(dict.fromkeys(df["model"]))
    fig = Figure(figsize=(max(4.0, 1.1 * len(models) + 1.5) * len(sets), 3.6), layout="constrained")
    axes = fig.subplots(1, len(sets), squeeze=False, sharey=True)[0]
    name = "WER" if unit == "word" else "CER"
    for ax, set_name in zip(axes, sets, strict=True):
        part = df[df["set"] == set_name].set_index("model").reindex(models).dropna(subset=["N"])
        x = np.arange(len(part))
        bottom = np.zeros(len(part))
        n = part["N"].to_numpy(dtype=float).clip(min=1)
        for op, col, label in TYPES:
            pct = 100 * part[col].to_numpy(dtype=float) / n
            ax.bar(x, pct, bottom=bottom, color=OP_COLOURS[op], edgecolor=EDGE, lw=0.6, label=label)
            bottom += pct
        for xi, total, (_, r) in zip(x, bottom, part.iterrows(), strict=True):
            i_d = 100 * (r["I"] + r["D"]) / max(r["N"], 1)
            ax.text(xi, total, f"{total:.1f}\nI+D {i_d:.1f}", ha="center", va="bottom", fontsize=7)
        ax.set_xticks(x, list(part.index), rotation=15, ha="right", fontsize=8)
        ax.set_title(set_name, fontsize=10)
        ax.set_ylim(0, max(1.0, float(bottom.max(initial=0))) * 1.25)
        ax.grid(axis="y", alpha=0.25)
    axes[0].set_ylabel(f"{name} (% of reference {unit}s)")
    axes[-1].legend(fontsize=7, loc="upper left")
    return fig


def utterance_bars(rows: pd.DataFrame | Sequence[Mapping], title: str = "",
                   label: Sequence[str] = ("model", "id")) -> Figure:
    """Horizontal stacked S / I / D counts per utterance (rows with S, I, D and the ``label`` columns, joined
    by " · "), first row on top."""
    df = _table(rows)
    names = [" · ".join(str(r[c]) for c in label if c in df.columns) for _, r in df.iterrows()]
    fig = Figure(figsize=(6.5, 0.32 * max(len(df), 3) + 1.0), layout="constrained")
    ax = fig.add_subplot()
    y = np.arange(len(df))[::-1]
    left = np.zeros(len(df))
    for op, col, name in TYPES:
        values = df[col].to_numpy(dtype=float) if len(df) else np.zeros(0)
        ax.barh(y, values, left=left, color=OP_COLOURS[op], edgecolor=EDGE, lw=0.6, label=name)
        left += values
    ax.set_yticks(y, names, fontsize=7)
    ax.set_xlabel("errors in the utterance")
    ax.grid(axis="x", alpha=0.25)
    if len(df):
        ax.legend(fontsize=7, loc="lower right")
    ax.set_title(title or f"{len(df)} utterances", fontsize=10)
    return fig


def confusion_figure(pairs: pd.DataFrame | Sequence[Mapping], top: int = 10) -> Figure:
    """The most frequent ``ref → hyp`` pairs per model (rows with model, kind, ref, hyp, count), one panel per
    model; bars coloured by the kind of error."""
    df = _table(pairs)
    models = list(dict.fromkeys(df["model"])) if len(df) else ["(no errors)"]
    fig = Figure(figsize=(3.6 * len(models), 0.3 * top + 1.2), layout="constrained")
    axes = fig.subplots(1, len(models), squeeze=False)[0]
    for ax, model in zip(axes, models, strict=True):
        part = df[df["model"] == model].head(top) if len(df) else df
        y = np.arange(len(part))[::-1]
        colours = [OP_COLOURS.get(k, OP_COLOURS[SUB]) for k in part.get("kind", [SUB] * len(part))]
        ax.barh(y, part["count"] if len(part) else [], color=colours, edgecolor=EDGE, lw=0.6)
        ax.set_yticks(y, [f"{r} → {h}" for r, h in zip(part["ref"], part["hyp"], strict=True)] if len(part) else [],
                      fontsize=7)
        ax.set_title(model, fontsize=9)
        ax.set_xlabel("count")
        ax.xaxis.get_major_locator().set_params(integer=True)
    return fig


def compare_scatter(x: Sequence[float], y: Sequence[float], x_label: str, y_label: str,
                    what: str = "errors per utterance", seed: int = 0) -> Figure:
    """One model against another, one point per utterance (jittered a little); points below the diagonal are
    utterances where ``y`` makes fewer errors. The title counts both sides."""
    xs, ys = np.asarray(x, dtype=float), np.asarray(y, dtype=float)
    jitter = np.random.default_rng(seed).uniform(-0.15, 0.15, size=(2, len(xs)))
    fig = Figure(figsize=(4.4, 4.2), layout="constrained")
    ax = fig.add_subplot()
    colours = np.where(ys < xs, "#2e7d32", np.where(ys > xs, "#c62828", "#757575"))
    ax.scatter(xs + jitter[0], ys + jitter[1], s=18, c=colours, alpha=0.75, edgecolors="none")
    top = max(1.0, float(max(xs.max(initial=0), ys.max(initial=0)))) + 0.5
    ax.plot([0, top], [0, top], color="#999999", lw=0.8, ls="--")
    ax.set_xlim(-0.5, top)
    ax.set_ylim(-0.5, top)
    ax.set_xlabel(f"{x_label}: {what}")
    ax.set_ylabel(f"{y_label}: {what}")
    better, worse = int((ys < xs).sum()), int((ys > xs).sum())
    ax.set_title(f"{y_label} better on {better}, worse on {worse}, equal on {len(xs) - better - worse}",
                 fontsize=9)
    ax.grid(alpha=0.25)
    return fig


def side_by_side_html(ref: str, alignments: Mapping[str, Sequence[AlignOp]], title: str = "") -> str:
    """One utterance's coloured alignments (:func:`~kdlab.viz.alignment.alignment_html`) for several models,
    stacked under its reference; one legend at the end."""
    parts = [f'<div class="kd-side-by-side" style="margin-bottom:8px"><b>{html.escape(title)}</b> '
             f"<span style='font-size:90%'>reference: {html.escape(ref)}</span>"]
    for model, ops in alignments.items():
        parts.append(alignment_html(ops, title=model, legend=False))
    parts.append("</div>")
    return "".join(parts)


def legend_html() -> str:
    """The colour legend of the alignments."""
    return alignment_legend_html()
