"""Coloured C/S/I/D alignments (kdlab.viz.alignment) on hand-made ops."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")

from matplotlib.colors import to_hex

from kdlab.evaluate.metrics import align
from kdlab.viz.alignment import OP_COLOURS, alignment_counts, alignment_figure, alignment_html

REF = "the cat sat on the mat".split()
HYP = "the bat sat the mat <unk> now".split()


def test_html_has_one_coloured_cell_per_op():
    ops = align(REF, HYP)
    html = alignment_html(ops, title="demo")
    for op in "CSID":
        assert html.count(f"kd-op-{op}") == sum(o == op for o, _, _ in ops)
    assert "&lt;unk&gt;" in html and "<unk>" not in html  # pieces are escaped
    assert "<s>on</s>" in html  # a deletion strikes its reference word
    assert "<b>demo</b>" in html and alignment_counts(ops) in html
    assert "top row: reference" in html and "top row: reference" not in alignment_html(ops, legend=False)


def test_counts_line():
    ops = align(REF, HYP)
    assert alignment_counts(ops) == "N 6 · S 1 · I 2 · D 1 · errors 66.7 %"
    assert alignment_counts([]) == "N 0 · S 0 · I 0 · D 0 · errors 0.0 %"


def test_figure_places_reference_over_hypothesis():
    ops = align(REF, HYP)
    fig = alignment_figure(ops, per_row=4)
    texts = fig.axes[0].texts
    assert len(texts) == 2 * len(ops)
    assert [t.get_text() for t in texts[::2]] == [r or "*" for _, r, _ in ops]
    assert [t.get_text() for t in texts[1::2]] == [h or "*" for _, _, h in ops]
    colours = [to_hex(t.get_bbox_patch().get_facecolor()) for t in texts[::2]]
    assert colours == [OP_COLOURS[o] for o, _, _ in ops]
    assert texts[8].get_position()[1] < texts[0].get_position()[1]  # the 5th op wraps to a second row
