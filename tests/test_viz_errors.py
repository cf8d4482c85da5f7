"""Error-analysis figures (kdlab.viz.errors) on real decodings of the shipped check sets, and the tables they
draw from (kdlab.explore.errors) checked against kdlab's own scoring."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")

import numpy as np
import pytest

from kdlab.evaluate.metrics import error_rate
from kdlab.explore import errors as er
from kdlab.viz import errors as ve

MODELS = ["mini-en/teacher", "mini-en/student-same-skd"]


@pytest.fixture(scope="module")
def decodings():
    return er.decode_all(MODELS, ["test-clean", "test-other"], "check", limit=3)


@pytest.fixture(scope="module")
def utts(decodings):
    return er.utterance_table(decodings)


def test_tables_agree_with_kdlab_scoring(decodings, utts):
    assert [(d.model, d.set, len(d.ids)) for d in decodings] == [
        ("teacher", "test-clean", 3), ("teacher", "test-other", 3),
        ("student-same-skd", "test-clean", 3), ("student-same-skd", "test-other", 3)]
    assert decodings[0].method == "attention_beam10" and decodings[2].method == "maskctc_beam10"
    summary = er.summary_table(utts)
    for d in decodings:
        row = summary[(summary["model"] == d.model) & (summary["set"] == d.set)].iloc[0]
        stats = error_rate(d.refs, d.hyps, d.unit)  # kdlab decode's totals
        assert (row["N"], row["S"], row["I"], row["D"]) == (stats.n_ref, stats.sub, stats.ins, stats.dele)
        assert row["rate"] == pytest.approx(stats.rate, abs=0.01)
        assert row["I+D %"] == pytest.approx(stats.i_plus_d, abs=0.01)
    pairs = er.confusion_pairs(utts, kinds=("S", "I", "D"), top=None)
    for model in MODELS:
        name = er.short_name(model)
        counted = pairs[pairs["model"] == name].groupby("kind")["count"].sum().to_dict()
        mine = utts[utts["model"] == name]
        assert {k: counted.get(k, 0) for k in "SID"} == {k: int(mine[k].sum()) for k in "SID"}


def test_error_type_bars_stack_s_i_d_in_percent_of_n(utts):
    summary = er.summary_table(utts)
    fig = ve.error_type_bars(summary, unit="word")
    assert [ax.get_title() for ax in fig.axes] == ["test-clean", "test-other"]
    ax = fig.axes[0]
    bars = ax.patches  # S bars of every model, then I, then D
    clean = summary[summary["set"] == "test-clean"].reset_index(drop=True)
    n_models = len(clean)
    for i, r in clean.iterrows():
        heights = [bars[k * n_models + i].get_height() for k in range(3)]
        assert heights == pytest.approx([100 * r[c] / r["N"] for c in "SID"])
        assert sum(heights) == pytest.approx(r["rate"], abs=0.01)
    assert [t.get_text() for t in ax.get_xticklabels()] == ["teacher", "student-same-skd"]
    assert "WER" in ax.get_ylabel()


def test_utterance_bars_and_confusion_figure(utts):
    worst = er.worst_utterances(utts, n=2)
    fig = ve.utterance_bars(worst, title="worst")
    ax = fig.axes[0]
    at = dict(zip(ax.get_yticks(), [t.get_text() for t in ax.get_yticklabels()], strict=True))
    assert at[max(at)] == f"{worst.iloc[0]['model']} · {worst.iloc[0]['id']}"  # first row on top
    widths = np.array([p.get_width() for p in ax.patches]).reshape(3, len(worst)).sum(0)
    assert list(widths) == list(worst["errors"].astype(float))
    pairs = er.confusion_pairs(utts, top=4)
    fig = ve.confusion_figure(pairs, top=4)
    assert [a.get_title() for a in fig.axes] == list(dict.fromkeys(pairs["model"]))
    first = pairs.iloc[0]
    assert f"{first['ref']} → {first['hyp']}" in [t.get_text() for t in fig.axes[0].get_yticklabels()]


def test_compare_scatter_counts_both_sides_and_side_by_side_html(utts):
    wide = er.side_by_side(utts, "errors")
    x, y = wide["teacher"], wide["student-same-skd"]
    fig = ve.compare_scatter(x, y, "teacher", "student")
    better, worse = int((y < x).sum()), int((y > x).sum())
    equal = len(x) - better - worse
    assert fig.axes[0].get_title() == f"student better on {better}, worse on {worse}, equal on {equal}"
    ref, alignments = er.utterance_alignments(utts, "test-clean", wide.index[0][1])
    page = ve.side_by_side_html(ref, alignments, title="u0")
    assert page.count('class="kd-alignment"') == 2 and "teacher" in page and "student-same-skd" in page
    assert page.count("kd-op-") == sum(len(ops) for ops in alignments.values())
