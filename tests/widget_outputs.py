"""What a widget's Output area shows (set by ``kdlab.widgets.common.show``): its text and its displays."""

from __future__ import annotations

from kdlab.widgets.common import MARKER


def shown(output) -> tuple[str, set[str]]:
    """The printed text of ``output`` (an ipywidgets Output) and the mime types of its displays (not the marker)."""
    outputs = [o for o in output.outputs if o != MARKER]
    text = "".join(o["text"] for o in outputs if o["output_type"] == "stream")
    mimes = {m for o in outputs if o["output_type"] == "display_data" for m in o["data"]}
    return text, mimes


def redrawn(output, *mimes: str) -> bool:
    """``output`` ends with the redraw marker, after something drawn, and holds a display of each of ``mimes``."""
    _, has = shown(output)
    return len(output.outputs) > 1 and output.outputs[-1] == MARKER and set(mimes) <= has
