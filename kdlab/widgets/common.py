"""What every widget shares: the figure-to-image step, the redraw with its ``[updated]`` marker (a browser
test waits for it) and the utterance dropdown entries."""

from __future__ import annotations

import io
from collections.abc import Sequence

import ipywidgets as w
from IPython.display import Image, clear_output, display
from matplotlib.figure import Figure

from kdlab.explore.utterance import Utterance

MARKER = "[updated]"
WIDGET_DPI = 72


def figure_image(fig: Figure, dpi: int = WIDGET_DPI) -> Image:
    """Render a figure to a PNG image once (the Output then only shows bytes)."""
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=dpi)
    return Image(buf.getvalue(), format="png")


def show(output: w.Output, *items: object) -> None:
    """Replace ``output``'s content with ``items`` (strings printed, the rest displayed) and print the marker a
    browser test waits for."""
    with output:
        clear_output(wait=True)
        for item in items:
            print(item) if isinstance(item, str) else display(item)
        print(MARKER)


def utterance_options(utterances: Sequence[Utterance]) -> list[tuple[str, str]]:
    """Dropdown entries ``(condition · id · start of text, id)``."""
    def label(u: Utterance) -> str:
        text = u.text if len(u.text) <= 40 else u.text[:38] + "…"
        return f"{u.condition or '-'} · {u.id} · {text.lower()}"

    return [(label(u), u.id) for u in utterances]


def first_id(utterances: Sequence[Utterance], utterance: str | None) -> str:
    """The utterance a widget starts on: ``utterance`` if it is among them, else the first."""
    if not utterances:
        raise ValueError("no utterances to show")
    ids = [u.id for u in utterances]
    return utterance if utterance in ids else ids[0]
