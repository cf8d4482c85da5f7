"""Figures of notebook 07: the KD families side by side — streaming emission times, transducer lattices
with one-best paths. (Per-head KL curves of the Inter-KD students use ``kdlab.viz.posteriors.frame_kl_plot``.)

Pure matplotlib on plain data; every function returns a ``Figure``.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from matplotlib.figure import Figure


def emission_timeline(rows: dict[str, Sequence[tuple[str, float, float]]], duration_s: float) -> Figure:
    """One lane per streaming model: each token as a line from the time of its first frame (○) to the time
    it is emitted (●), labelled with its piece. ``rows``: {model: [(piece, frame_s, emitted_s), …]}."""
    fig = Figure(figsize=(12, 0.9 + 0.9 * len(rows)), layout="constrained")
    ax = fig.add_subplot()
    for lane, tokens in enumerate(rows.values()):
        y = len(rows) - 1 - lane
        for i, (piece, start, emitted) in enumerate(tokens):
            ax.plot([start, emitted], [y, y], color="tab:blue", lw=0.8, alpha=0.5)
            ax.plot(start, y, "o", mfc="none", color="tab:blue", ms=4)
            ax.plot(emitted, y, "o", color="tab:red", ms=3)
            ax.text(start, y + 0.12 + 0.14 * (i % 2), piece, fontsize=6, ha="center")
    ax.set_yticks(range(len(rows)), list(reversed(list(rows))), fontsize=8)
    ax.set_ylim(-0.5, len(rows) - 0.3)
    ax.set_xlim(0, duration_s)
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
    ax.set_yticks(range(nodes), [*pieces, "(end)"], fontsize=6)
    ax.set_xlabel("encoder frame t")
    ax.set_ylabel("labels emitted u (next label)")
    ax.set_title(title or "P(next reference label | t, u) and the best paths", fontsize=9)
    ax.legend(fontsize=8, loc="upper left")
    fig.colorbar(im, ax=ax, label="probability", shrink=0.8)
    return fig
