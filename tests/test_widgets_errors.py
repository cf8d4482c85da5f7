"""Error-analysis widgets (kdlab.widgets.errors) on real decodings of the check sets: set a control, check
what the widget filtered and drew."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")

import pytest
from widget_outputs import redrawn

from kdlab.explore import errors as er
from kdlab.widgets.errors import ErrorExplorer, ModelComparison

MODELS = ["mini-en/teacher", "mini-en/student-same-skd"]


@pytest.fixture(scope="module")
def utts():
    return er.utterance_table(er.decode_all(MODELS, ["test-clean", "test-other"], "check", limit=3))


def test_explorer_starts_with_every_row(utts):
    x = ErrorExplorer(utts)
    assert x.last["rows"] == len(utts) == 12 and x.last["utterances"] == 6
    assert len(x.last["shown"]) == 3 and x.last["shown"][0] == x.last["keys"][0]
    assert x.last["summary"]["N"].sum() == utts["N"].sum()
    assert redrawn(x.output)


def test_filters_narrow_the_rows(utts):
    x = ErrorExplorer(utts)
    x.controls["model"].value = "student-same-skd"
    assert set(x.last["table"]["model"]) == {"student-same-skd"} and x.last["rows"] == 6
    x.controls["set"].value = "test-other"
    assert set(x.last["table"]["set"]) == {"test-other"} and x.last["rows"] == 3
    x.controls["set"].value = "all"
    x.controls["error_type"].value = "S"
    assert (x.last["table"]["S"] >= 1).all()
    assert x.last["rows"] == int((utts[utts["model"] == "student-same-skd"]["S"] >= 1).sum())
    x.controls["min_errors"].value = 3
    assert (x.last["table"]["S"] >= 3).all()
    counts = x.last["table"].set_index(["set", "id"])["S"]
    assert [counts[k] for k in x.last["keys"]] == sorted(counts, reverse=True)  # most substitutions first


def test_text_search_and_an_empty_result(utts):
    x = ErrorExplorer(utts)
    word = utts.iloc[0]["ref"].split()[0]
    x.controls["text"].value = word.upper()
    expected = utts[utts["ref"].str.contains(word) | utts["hyp"].str.contains(word) | utts["id"].str.contains(word)]
    assert x.last["rows"] == len(expected) > 0
    x.controls["text"].value = "no such word anywhere"
    assert x.last["rows"] == 0 and x.last["summary"] is None and x.last["shown"] == []


def test_model_comparison_counts_better_and_worse(utts):
    c = ModelComparison(utts, x="teacher", y="student-same-skd", rows=2)
    both = c.pairs()
    assert c.last["utterances"] == len(both) == 6
    assert c.last["better"] == int((both["errors_y"] < both["errors_x"]).sum())
    assert c.last["worse"] == int((both["errors_y"] > both["errors_x"]).sum())
    assert len(c.last["most_different"]) == 2
    c.controls["set"].value = "test-clean"
    c.controls["value"].value = "rate"
    assert c.last["utterances"] == 3 and all(k[0] == "test-clean" for k in c.last["most_different"])
    assert redrawn(c.output)
