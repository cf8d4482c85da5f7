"""``kdlab.widgets.common.show``: a widget's redraw replaces its Output area in one update, and a notebook
that draws widgets while nbclient runs it (Voilà's ``kdlab demo``) never waits on a cell's reply."""

from __future__ import annotations

import time

import ipywidgets as w
import matplotlib
import pytest
from IPython.display import HTML, Image

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
from widget_outputs import shown  # noqa: E402

from kdlab.widgets.common import MARKER, show  # noqa: E402

nbformat = pytest.importorskip("nbformat")
nbclient = pytest.importorskip("nbclient")


def test_show_replaces_the_outputs_in_one_update():
    out = w.Output()
    updates: list[object] = []
    out.observe(updates.append, "outputs")
    show(out, "first")
    fig = plt.figure(figsize=(2, 1))
    show(out, "line", Image(b"\x89PNG...", format="png"), fig, HTML("<b>x</b>"))
    plt.close(fig)
    assert len(updates) == 2  # one trait update per redraw: no flicker, no captured display messages
    text, mimes = shown(out)
    assert text == "line\n"  # "first" is gone
    assert [o["output_type"] for o in out.outputs] == ["stream", "display_data", "display_data", "display_data",
                                                       "display_data"]
    assert out.outputs[-1] == MARKER and MARKER["data"]["text/plain"] == ""  # invisible: an empty span
    assert {"image/png", "text/html"} <= mimes
    assert out.outputs[2]["data"]["image/png"]  # the figure, as a PNG whatever the backend


CELLS = ["import ipywidgets as w\nfrom IPython.display import HTML\nfrom kdlab.widgets.common import show"] + [
    "o = w.Output()\nshow(o, HTML('x' * 300_000), 'drawn')\no"] * 6


def test_a_notebook_drawing_widgets_under_nbclient_never_waits_for_a_reply(tmp_path):
    # Displays captured by an Output widget made nbclient send the widget state back on the shell channel,
    # after which it noticed the cell's reply only at its timeout (Voilà has none: the page never came).
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(c) for c in CELLS])
    client = nbclient.NotebookClient(nb, timeout=30, kernel_name="python3",
                                     resources={"metadata": {"path": str(tmp_path)}})
    walls: list[float] = []
    with client.setup_kernel():
        for i, cell in enumerate(nb.cells):
            start = time.perf_counter()
            client.execute_cell(cell, i)
            walls.append(time.perf_counter() - start)
    assert max(walls[1:]) < 15, f"cells waited for their reply: {[round(x, 1) for x in walls]} s"
    state = [s for s in client.widget_state.values() if s.get("_model_name") == "OutputModel"]
    assert len(state) == 6 and all(s["outputs"][-1] == MARKER for s in state)
