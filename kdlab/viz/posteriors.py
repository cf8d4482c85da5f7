"""Figures of notebook 04: teacher vs student posteriors. Encoder CTC posteriors per frame (eq 7), decoder
posteriors at masked positions (eq 11), the KL between them, top-k tokens at one position, and check-set
means per student.

Pure matplotlib on plain data (log-probability tensors, lists, numbers); every function returns a ``Figure``.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from matplotlib.axes import Axes
from matplotlib.figure import Figure

from kdlab.tokens import BLANK

TICK_PT = 8  # token labels of the heatmaps (one per row or position)


def shown_rows(logps: Sequence[torch.Tensor], min_prob: float = 0.05, keep: Sequence[int] = ()) -> list[int]:
    """Token ids worth a heatmap row: those that reach ``min_prob`` somewhere in any of the (N, V) panels."""
    peak = torch.stack([lp.exp().amax(0) for lp in logps]).amax(0)  # (V,)
    rows = set((peak >= min_prob).nonzero().squeeze(1).tolist()) | set(keep)
    return sorted(rows)


def _heat(ax: Axes, logp: torch.Tensor, rows: list[int], vocab: Sequence[str], extent_x: float) -> object:
    """One (N, V) panel as probabilities of ``rows`` over N columns; returns the image."""
    probs = logp.exp()[:, rows].T.numpy()  # (R, N)
    im = ax.imshow(probs, aspect="auto", origin="lower", cmap="magma", vmin=0, vmax=1, interpolation="nearest",
                   extent=(0, extent_x, -0.5, len(rows) - 0.5))
    ax.set_yticks(range(len(rows)), [vocab[r] for r in rows], fontsize=TICK_PT)
    return im


def ctc_posteriors(panels: Sequence[tuple[str, torch.Tensor]], vocab: Sequence[str], frame_s: float,
                   min_prob: float = 0.05) -> Figure:
    """Stacked heatmaps of CTC posteriors (T', V) on one time axis (seconds), same token rows in each panel;
    rows = the tokens that reach ``min_prob`` somewhere (``<blank>`` always)."""
    rows = shown_rows([lp for _, lp in panels], min_prob, keep=(BLANK,))
    T = panels[0][1].size(0)
    fig = Figure(figsize=(11, 0.13 * len(rows) * len(panels) + 1.2 * len(panels)), layout="constrained")
    axes = fig.subplots(len(panels), 1, sharex=True, squeeze=False)[:, 0]
    im = None
    for ax, (title, lp) in zip(axes, panels, strict=True):
        im = _heat(ax, lp, rows, vocab, T * frame_s)
        ax.set_title(f"{title}: CTC posteriors P_t(c), {lp.size(0)} frames", fontsize=9)
    axes[-1].set_xlabel("time (s)")
    fig.colorbar(im, ax=list(axes), label="probability", shrink=0.6)
    return fig


def frame_kl_plot(curves: dict[str, torch.Tensor], frame_s: float, title: str = "") -> Figure:
    """Per-frame KL(P_teacher ‖ Q_student) of the CTC posteriors (eq 7's summand), one curve per student."""
    fig = Figure(figsize=(11, 3.2), layout="constrained")
    ax = fig.add_subplot()
    for name, kl in curves.items():
        t = [i * frame_s for i in range(kl.numel())]
        ax.plot(t, kl.tolist(), lw=1.1, label=f"{name} (mean {float(kl.mean()):.3f})")
    ax.set_xlabel("time (s)")
    ax.set_ylabel("KL (nats)")
    ax.set_title(title or "encoder: KL(P_teacher ‖ Q_student) per frame (eq 7)")
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3)
    return fig


def _mark_masked(ax: Axes, masked: Sequence[bool]) -> None:
    for i, m in enumerate(masked):
        if m:
            ax.axvspan(i - 0.5, i + 0.5, color="C0", alpha=0.08, lw=0)


def decoder_posteriors(teacher_logp: torch.Tensor, student_logp: torch.Tensor, masked: Sequence[bool],
                       tokens: Sequence[int], vocab: Sequence[str], kl: torch.Tensor, position: int | None = None,
                       min_prob: float = 0.05, names: tuple[str, str] = ("teacher", "student")) -> Figure:
    """Decoder posteriors along the reference (L, V): the teacher's AR P_l(c | y_<l, H) above, the student's
    CMLM Q_l(c | y_obs, H) below (masked positions shaded, x labels = reference pieces, masked ones as ■),
    and the KL per masked position (eq 11's summand). ``position`` gets a frame."""
    L = len(tokens)
    rows = shown_rows([teacher_logp, student_logp], min_prob)
    fig = Figure(figsize=(max(8.0, 0.2 * L + 2), 0.13 * len(rows) * 2 + 4.0), layout="constrained")
    ax_t, ax_s, ax_k = fig.subplots(3, 1, sharex=True, height_ratios=(3, 3, 1.6))
    for ax, lp, name in ((ax_t, teacher_logp, names[0]), (ax_s, student_logp, names[1])):
        im = ax.imshow(lp.exp()[:, rows].T.numpy(), aspect="auto", origin="lower", cmap="magma", vmin=0, vmax=1,
                       interpolation="nearest")
        ax.set_yticks(range(len(rows)), [vocab[r] for r in rows], fontsize=TICK_PT)
        ax.set_title(name, fontsize=9)
    fig.colorbar(im, ax=[ax_t, ax_s], label="probability", shrink=0.7)
    values = [0.0 if torch.isnan(v) else float(v) for v in kl]
    ax_k.bar(range(L), values, color=["C3" if m else "0.8" for m in masked])
    ax_k.set_ylabel("KL (nats)")
    _mark_masked(ax_k, masked)
    ax_k.set_xticks(range(L), ["■" if m else vocab[t] for t, m in zip(tokens, masked, strict=True)],
                    fontsize=TICK_PT)
    ax_k.set_xlabel("reference position (■ = masked for the student)")
    if position is not None:
        for ax in (ax_t, ax_s, ax_k):
            ax.axvline(position - 0.5, color="C2", lw=1.2)
            ax.axvline(position + 0.5, color="C2", lw=1.2)
    n_mask = sum(masked)
    mean = sum(v for v, m in zip(values, masked, strict=True) if m) / max(n_mask, 1)
    ax_k.set_title(f"KL(P ‖ Q) at the {n_mask} masked positions, Σ/|y_mask| = {mean:.3f} (eq 11)", fontsize=9)
    return fig


def topk_plot(teacher_top: Sequence[tuple[int, float]], student_top: Sequence[tuple[int, float]],
              vocab: Sequence[str], reference: int | None = None, title: str = "",
              names: tuple[str, str] = ("teacher", "student")) -> Figure:
    """Top-k tokens (id, probability) of teacher and student at one position; the reference token in green."""
    fig = Figure(figsize=(8, 0.35 * max(len(teacher_top), len(student_top)) + 1.4), layout="constrained")
    axes = fig.subplots(1, 2, sharex=True)
    for ax, top, name in ((axes[0], teacher_top, names[0]), (axes[1], student_top, names[1])):
        ids, probs = [t for t, _ in top], [p for _, p in top]
        ax.barh(range(len(ids)), probs, color=["C2" if t == reference else "C0" for t in ids])
        ax.set_yticks(range(len(ids)), [vocab[t] for t in ids])
        ax.invert_yaxis()
        ax.set_xlim(0, 1)
        ax.set_title(name, fontsize=9)
        ax.set_xlabel("probability")
    if title:
        fig.suptitle(title, fontsize=10)
    return fig


def student_kl_bars(names: Sequence[str], enc_kl: Sequence[float], dec_kl: Sequence[float],
                    distilled: Sequence[bool | None] | None = None) -> Figure:
    """Check-set mean KL to the teacher per student: encoder (eq 7, per frame) and decoder (eq 11);
    ``distilled[i]`` True colours a KD student orange."""
    distilled = distilled or [None] * len(names)
    colors = ["C1" if d else "C0" for d in distilled]
    fig = Figure(figsize=(10, 3.4), layout="constrained")
    axes = fig.subplots(1, 2)
    for ax, vals, title in ((axes[0], enc_kl, "encoder: mean KL per frame (eq 7)"),
                            (axes[1], dec_kl, "decoder: mean KL per masked position (eq 11)")):
        ax.bar(range(len(names)), vals, color=colors)
        for i, v in enumerate(vals):
            ax.annotate(f"{v:.3f}", (i, v), xytext=(0, 3), textcoords="offset points", ha="center", fontsize=8)
        ax.set_xticks(range(len(names)), [n.split("/")[-1] for n in names], rotation=20, fontsize=8)
        ax.set_ylabel("KL (nats)")
        ax.set_title(title, fontsize=9)
    fig.suptitle("closer to the teacher = lower (orange: trained with KD)", fontsize=10)
    return fig


def _kl_strip(ax: Axes, kl: torch.Tensor, masked: Sequence[bool], tokens: Sequence[int], vocab: Sequence[str],
              position: int) -> None:
    values = [0.0 if torch.isnan(v) else float(v) for v in kl]
    colors = ["C2" if i == position else ("C3" if m else "0.8") for i, m in enumerate(masked)]
    ax.axvspan(position - 0.5, position + 0.5, color="C2", alpha=0.3, lw=0)
    ax.bar(range(len(values)), values, color=colors, width=1.0 if len(values) > 60 else 0.8)
    ax.set_xlim(-0.5, len(tokens) - 0.5)
    ax.set_xlabel("reference position", fontsize=8)
    ax.set_ylabel("KL")
    state = "masked" if masked[position] else "observed, so eq 11 ignores it"
    ax.set_title(f"decoder KL(P ‖ Q) per reference position (red: masked); position {position} "
                 f"({vocab[tokens[position]]!r}, {state}) in green", fontsize=9)


def position_view(kl: torch.Tensor, masked: Sequence[bool], tokens: Sequence[int], vocab: Sequence[str],
                  position: int, teacher_top: Sequence[tuple[int, float]], student_top: Sequence[tuple[int, float]],
                  enc_kl: torch.Tensor | None = None, frame_s: float = 0.04,
                  names: tuple[str, str] = ("teacher", "student")) -> Figure:
    """One decoder position in context: the encoder's per-frame KL (eq 7, optional), the decoder's KL per
    position (eq 11) with ``position`` in green, and the top-k tokens of teacher and student there."""
    rows = 3 if enc_kl is not None else 2
    fig = Figure(figsize=(10, 2.0 * rows + 0.6))  # fixed margins: a widget redraws it on every slider move
    grid = fig.add_gridspec(rows, 2, height_ratios=(1,) * (rows - 1) + (1.4,), left=0.07, right=0.98, top=0.95,
                            bottom=0.06, hspace=0.6, wspace=0.12)
    if enc_kl is not None:
        ax_e = fig.add_subplot(grid[0, :])
        ax_e.plot([i * frame_s for i in range(enc_kl.numel())], enc_kl.tolist(), lw=1, color="C0")
        ax_e.set_title(f"encoder KL(P ‖ Q) per frame (eq 7), mean {float(enc_kl.mean()):.3f}", fontsize=9)
        ax_e.set_xlabel("time (s)", fontsize=8)
        ax_e.set_ylabel("KL")
    _kl_strip(fig.add_subplot(grid[rows - 2, :]), kl, masked, tokens, vocab, position)
    ref = tokens[position]
    for col, (top, name) in enumerate(((teacher_top, names[0]), (student_top, names[1]))):
        ax = fig.add_subplot(grid[rows - 1, col])
        ids, probs = [t for t, _ in top], [p for _, p in top]
        ax.barh(range(len(ids)), probs, color=["C2" if t == ref else "C0" for t in ids])
        ax.set_yticks(range(len(ids)), [vocab[t] for t in ids])
        ax.invert_yaxis()
        ax.set_xlim(0, 1)
        ax.set_title(f"{name}: top-{len(ids)} (reference {vocab[ref]!r} in green)", fontsize=9)
    return fig
