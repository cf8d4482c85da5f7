"""What a widget's Output area shows (set by ``kdlab.widgets.common.show``): its text and its displays."""

from __future__ import annotations

from kdlab.widgets.common import MARKER


def shown(output) -> tuple[str, set[str]]:
    """The printed text of ``output`` (an ipywidgets Output) and the mime types of its displays."""
    text = "".join(o["text"] for o in output.outputs if o["output_type"] == "stream")
    mimes = {m for o in output.outputs if o["output_type"] == "display_data" for m in o["data"]}
    return text, mimes


def redrawn(output, *mimes: str) -> bool:
    """``output`` ends with the redraw marker, after something drawn, and holds a display of each of ``mimes``."""
    text, has = shown(output)
    return text.endswith(MARKER + "\n") and len(output.outputs) > 1 and set(mimes) <= has
