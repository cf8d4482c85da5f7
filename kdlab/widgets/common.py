"""What every widget shares: the figure-to-image step, the redraw with its invisible end-of-redraw marker (an
empty ``<span class="kdlab-updated">``: a browser test waits for it, a reader never sees it) and the utterance
dropdown entries."""

from __future__ import annotations

import io
from collections.abc import Sequence
from dataclasses import replace

import ipywidgets as w
from IPython import get_ipython
from IPython.core.formatters import DisplayFormatter
from IPython.display import Image
from matplotlib.figure import Figure

from kdlab.explore.utterance import Utterance

MARKER_CLASS = "kdlab-updated"
MARKER = {"output_type": "display_data", "metadata": {},
          "data": {"text/html": f'<span class="{MARKER_CLASS}"></span>', "text/plain": ""}}
WIDGET_DPI = 100


def figure_image(fig: Figure, dpi: int = WIDGET_DPI) -> Image:
    """Render a figure to a PNG image once (the Output then only shows bytes)."""
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=dpi)
    return Image(buf.getvalue(), format="png")


def show(output: w.Output, *items: object) -> None:
    """Replace ``output``'s content with ``items`` (strings as printed text, the rest as rich displays) and the
    invisible marker a browser test waits for, in one update of the widget's ``outputs``.

    The outputs are set on the widget rather than displayed inside ``with output:``. A display captured by an
    Output widget while a notebook runs under nbclient (Voilà's ``kdlab demo``, executed notebooks) makes the
    client send the widget's state back to the kernel on the shell channel, and that send can leave the
    cell's execute reply unnoticed until a timeout: forever in Voilà, whose page then never appears."""
    output.outputs = (*(_output_entry(item) for item in items), MARKER)


def _output_entry(item: object) -> dict:
    """One notebook output: a stdout stream for a string, a PNG for a figure (whatever the matplotlib backend),
    else the item's display data (its mimebundle)."""
    if isinstance(item, str):
        return {"output_type": "stream", "name": "stdout", "text": item + "\n"}
    if isinstance(item, Figure):
        item = figure_image(item)
    shell = get_ipython()  # the kernel's formatter (its configuration); outside a kernel a plain one
    data, metadata = (shell.display_formatter if shell else DisplayFormatter()).format(item)
    return {"output_type": "display_data", "data": data, "metadata": metadata}


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


def unique_id(utt: Utterance, taken: set[str]) -> Utterance:
    """``utt``, renamed ``<id> (2)``, ``<id> (3)``… while its id is ``taken``."""
    base, n = utt.id, 1
    while utt.id in taken:
        n += 1
        utt = replace(utt, id=f"{base} ({n})")
    return utt


def add_utterance(widget: object, utt: Utterance) -> Utterance:
    """Offer ``utt`` in a widget and select it (a user's own recording); returns it, renamed (:func:`unique_id`)
    when the widget already has that id, so that selecting it always redraws.

    A widget either has its own ``add_utterance(utt)`` (the error explorer decodes it into a set of its own) or
    keeps its utterances in ``utts`` beside an ``utterance`` dropdown: a dict by id (the dropdown's values are
    ids) or a list (the values are indices)."""
    if hasattr(widget, "add_utterance"):
        return widget.add_utterance(utt)
    utts, dropdown = widget.utts, widget.controls["utterance"]
    utt = unique_id(utt, set(utts) if isinstance(utts, dict) else {u.id for u in utts})
    if isinstance(utts, dict):
        utts[utt.id] = utt
        value: object = utt.id
        entry = utterance_options([utt])[0]
    else:
        utts.append(utt)
        value = len(utts) - 1
        entry = (f"{utt.id} ({utt.duration:.1f} s)", value)
    dropdown.options = [*dropdown.options, entry]
    dropdown.value = value
    return utt
