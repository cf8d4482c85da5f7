"""Figures of notebook 07: the KD families side by side — streaming emission times, transducer lattices
with one-best paths. (Per-head KL curves of the Inter-KD students use ``kdlab.viz.posteriors.frame_kl_plot``.)

Pure matplotlib on plain data; every function returns a ``Figure``.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from matplotlib.figure import Figure

LABEL_PT = 8  # emission-timeline label size (points)
LEVEL_STEP = 0.2  # vertical distance between two label levels (lane units)


def label_levels(centres: Sequence[float], widths: Sequence[float], gap: float = 0.0) -> list[int]:
    """The lowest level for each label (centred at ``centres``, ``widths`` wide) on which it overlaps no label
    placed before it (greedy interval colouring, left to right)."""
    ends: list[float] = []  # right end of the last label on each level
    levels = []
    for x, width in zip(centres, widths, strict=True):
        left = x - width / 2
        level = next((i for i, end in enumerate(ends) if end + gap <= left), len(ends))
        if level == len(ends):
            ends.append(0.0)
        ends[level] = x + width / 2
        levels.append(level)
    return levels


def _label_width_s(piece: str, duration_s: float, axis_in: float) -> float:
    """A label's width in seconds on an axis ``axis_in`` inches wide (about 0.62 em per character)."""
    return (len(piece) + 1) * 0.62 * LABEL_PT / 72 * duration_s / axis_in


def emission_timeline(rows: dict[str, Sequence[tuple[str, float, float]]], duration_s: float) -> Figure:
    """One lane per streaming model: each token as a line from the time of its first frame (○) to the time
    it is emitted (●), labelled with its piece; labels that would overlap go up a level, so every label stays
    readable. ``rows``: {model: [(piece, frame_s, emitted_s), …]}."""
    width_in = 12.0
    span = max(duration_s, 1e-3)
    levels = {name: label_levels([start for _, start, _ in tokens],
                                 [_label_width_s(p, span, width_in * 0.8) for p, _, _ in tokens])
              for name, tokens in rows.items()}
    top = max((max(v, default=0) for v in levels.values()), default=0) + 1  # label levels of the fullest lane
    step = 0.45 + LEVEL_STEP * top  # lane height
    fig = Figure(figsize=(width_in, 0.9 + step * 1.1 * max(len(rows), 1)), layout="constrained")
    ax = fig.add_subplot()
    for lane, (name, tokens) in enumerate(rows.items()):
        y = (len(rows) - 1 - lane) * step
        for (piece, start, emitted), level in zip(tokens, levels[name], strict=True):
            ax.plot([start, emitted], [y, y], color="tab:blue", lw=0.8, alpha=0.5)
            ax.plot(start, y, "o", mfc="none", color="tab:blue", ms=4)
            ax.plot(emitted, y, "o", color="tab:red", ms=3)
            ax.text(start, y + 0.1 + LEVEL_STEP * level, piece, fontsize=LABEL_PT, ha="center", va="bottom")
    ax.set_yticks([i * step for i in range(len(rows))], list(reversed(list(rows))), fontsize=9)
    ax.set_ylim(-0.3, (len(rows) - 1) * step + 0.2 + LEVEL_STEP * top)
    ax.set_xlim(0, span)
    ax.set_xlabel("time (s): ○ first frame of the token, ● emitted (its chunk's input has arrived)")
    ax.grid(axis="x", alpha=0.3)
    return fig


def lattice_paths(emit: torch.Tensor, paths: dict[str, torch.Tensor], pieces: Sequence[str], title: str = ""
                  ) -> Figure:
    """The reference lattice (T' × U+1) as the teacher's probability of emitting the next label at each node,
    with the best paths of ``paths`` ({name: bool (T', U+1)}) drawn through it."""
    frames, nodes = emit.shape
    fig = Figure(figsize=(12, 2.2 + 0.12 * nodes), layout="constrained")
    ax = fig.add_subplot()
    im = ax.imshow(emit.T.numpy(), aspect="auto", origin="lower", cmap="Greys", vmin=0, vmax=1,
                   interpolation="nearest")
    styles = ["-", "--", ":", "-."]
    for i, (name, path) in enumerate(paths.items()):
        t, u = path.nonzero(as_tuple=True)
        order = torch.argsort(t * nodes + u)
        ax.plot(t[order].tolist(), u[order].tolist(), styles[i % len(styles)], lw=1.6, label=name)
    ax.set_yticks(range(nodes), [*pieces, "(end)"], fontsize=7)
    ax.set_xlabel("encoder frame t")
    ax.set_ylabel("labels emitted u (next label)")
    ax.set_title(title or "P(next reference label | t, u) and the best paths", fontsize=9)
    ax.legend(fontsize=8, loc="upper left")
    fig.colorbar(im, ax=ax, label="probability", shrink=0.8)
    return fig
