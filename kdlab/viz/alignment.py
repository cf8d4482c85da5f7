"""Coloured reference/hypothesis alignments (the ops of :func:`kdlab.evaluate.metrics.align`): correct
units plain, substitutions orange, insertions green, deletions red (the paper's S, I and D of Table 1)."""

from __future__ import annotations

import html
from collections.abc import Sequence

from matplotlib.figure import Figure

from kdlab.evaluate.metrics import CORRECT, DEL, INS, SUB, AlignOp, stats_from_alignment

OP_COLOURS = {CORRECT: "#ffffff", SUB: "#ffcc80", INS: "#a5d6a7", DEL: "#ef9a9a"}
OP_NAMES = {CORRECT: "correct", SUB: "substitution", INS: "insertion", DEL: "deletion"}
EMPTY = "*"


def alignment_counts(ops: Sequence[AlignOp]) -> str:
    """One line: reference length, S/I/D counts and the error rate (S + I + D) / N."""
    st = stats_from_alignment(ops)
    return f"N {st.n_ref} · S {st.sub} · I {st.ins} · D {st.dele} · errors {st.rate:.1f} %"


def _cell(op: str, ref: str | None, hyp: str | None) -> str:
    style = (f"display:inline-block;margin:1px;padding:1px 3px;border-radius:3px;text-align:center;"
             f"background:{OP_COLOURS[op]};font-family:monospace;vertical-align:top")
    r = html.escape(EMPTY if ref is None else ref)
    h = html.escape(EMPTY if hyp is None else hyp)
    r = f"<s>{r}</s>" if op == DEL else r
    return f'<span class="kd-op kd-op-{op}" title="{OP_NAMES[op]}" style="{style}">{r}<br>{h}</span>'


def alignment_legend_html() -> str:
    """A small legend of the four colours."""
    items = [f'<span style="background:{OP_COLOURS[op]};padding:0 4px;border:1px solid #ccc">{OP_NAMES[op]}'
             f" ({op})</span>" for op in (CORRECT, SUB, INS, DEL)]
    return '<div style="font-size:85%">' + " ".join(items) + " · top row: reference, bottom row: hypothesis</div>"


def alignment_html(ops: Sequence[AlignOp], title: str | None = None, counts: bool = True,
                   legend: bool = True) -> str:
    """The alignment as HTML: one column per op, reference above hypothesis, ``*`` for a missing unit."""
    parts = ['<div class="kd-alignment">']
    if title:
        parts.append(f"<b>{html.escape(title)}</b> ")
    if counts:
        parts.append(f'<span style="font-size:90%">{alignment_counts(ops)}</span>')
    parts.append("<div>" + "".join(_cell(*op) for op in ops) + "</div>")
    if legend:
        parts.append(alignment_legend_html())
    parts.append("</div>")
    return "".join(parts)


def alignment_figure(ops: Sequence[AlignOp], per_row: int = 14, title: str | None = None) -> Figure:
    """The alignment as a figure: rows of ``per_row`` columns, each a reference/hypothesis pair coloured
    by its op."""
    n_rows = max(1, -(-len(ops) // per_row))
    cols = max(1, min(per_row, len(ops)))
    fig = Figure(figsize=(max(4.0, min(14.0, 0.95 * cols + 0.5)), 0.75 * n_rows + 0.6), layout="constrained")
    ax = fig.add_subplot()
    for i, (op, ref, hyp) in enumerate(ops):
        x, y = i % per_row, -(i // per_row)
        box = {"boxstyle": "round,pad=0.25", "fc": OP_COLOURS[op], "ec": "#999999" if op == CORRECT else "none"}
        ax.text(x, y + 0.17, EMPTY if ref is None else ref, ha="center", va="center", fontsize=8, bbox=box,
                family="monospace")
        ax.text(x, y - 0.17, EMPTY if hyp is None else hyp, ha="center", va="center", fontsize=8, bbox=box,
                family="monospace")
    ax.set_xlim(-0.7, cols - 0.3)
    ax.set_ylim(-n_rows + 0.5, 0.5)
    ax.axis("off")
    ax.set_title((f"{title} — " if title else "") + alignment_counts(ops), fontsize=9)
    return fig
