"""The computations behind every result claim of notebooks 05-07: each verdict line the notebooks print is
checked against the numbers it is computed from (on the shipped models, their cards and check sets), the
widgets' error line and disabled controls, and the emission timeline's non-overlapping labels.

Claims (notebook · what it prints · computed by):
- 05 · whether the live students recognise speech (error rate < 50 %) · ``training.recognition_verdict``
- 05 · per KD student, below the L_jca student of its size? · ``training.kd_verdicts`` (live and shipped tables)
- 05 · the shipped models' Table 1 · ``training.shipped_table1`` (model cards)
- 05 · all-zero KD weights are refused with one line · ``TrainingPanel`` + ``training.check_weights``
- 06 · KD student against L_jca, utterance by utterance · ``errors.pair_verdict``
- 06 · does KD help the ~9x smaller student more (and at all)? · ``errors.size_gains`` / ``gains_from_cards`` +
  ``errors.smaller_gain_verdicts``
- 07 · each abstract's claim, per family and set, with the kit's reading when it fails · ``families.claim_results``,
  ``families.family_tally``
- 07 · every streaming delay within its chunk's latency · ``streaming.delays_within_latency``
- 07 · Inter-KD's intermediate head closer to the teacher · ``families.head_kl_wins``
- 07 · KL rankings on the transducer lattice · ``lattice.lowest``
"""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")

import re
from pathlib import Path

import pandas as pd
import pytest

from kdlab.explore import errors as er
from kdlab.explore import families as fam
from kdlab.explore import lattice, load_model, load_set, streaming, training
from kdlab.viz.families import emission_timeline, label_levels
from kdlab.widgets.errors import ErrorExplorer
from kdlab.widgets.families import FamilyExplorer
from kdlab.widgets.training import TrainingPanel, error_line

VERDICT = re.compile(r"\((?P<a>[\d.]+)\) below .* \((?P<b>[\d.]+)\)\? (?P<v>yes|no)$")


# ----------------------------------------------------------------------------- 05


def _row(model: str, criterion: str, rate: float, weights: str = "") -> dict:
    return {"model": model, "criterion": criterion, "KD weights": weights, "test WER": rate, "test I+D": 1.0}


def test_recognition_verdict_follows_the_numbers():
    dead = [_row("AR", "L_jca", 116.0), _row("NAR (smaller)", "L_jca", 100.0),
            _row("NAR (smaller)", "+L_F-KD", 100.0)]
    assert "no student under 50 %" in training.recognition_verdict(dead, "test")
    assert "do not recognise speech yet" in training.recognition_verdict(dead, "test")
    alive = [_row("AR", "L_jca", 116.0), _row("NAR (smaller)", "L_jca", 40.0), _row("NAR (smaller)", "+L_F-KD", 30)]
    assert "every student under 50 %" in training.recognition_verdict(alive, "test")  # the teacher is no student
    mixed = [_row("NAR (smaller)", "L_jca", 40.0), _row("NAR (smaller)", "+L_F-KD", 70.0)]
    assert training.recognition_verdict(mixed, "test").startswith("test: 1 of 2 students under 50 %")


def test_kd_verdicts_compare_each_kd_student_with_its_own_baseline():
    rows = [_row("AR", "L_jca", 10.0), _row("NAR (smaller)", "L_jca", 100.0),
            _row("NAR (smaller)", "+L_F-KD", 100.0), _row("NAR (smaller)", "++L_S-KD", 90.0)]
    lines = training.kd_verdicts(rows, "test")
    assert len(lines) == 2
    assert lines[0].endswith("rel. red. +0.0 %? no") and lines[1].endswith("rel. red. +10.0 %? yes")


def test_shipped_table1_and_its_verdicts_match_the_cards():
    rows = training.shipped_table1("mini-en")
    assert [(r["model"], r["criterion"]) for r in rows] == [
        ("AR", "L_jca"), ("NAR (same size)", "L_jca"), ("NAR (same size)", "++L_S-KD"),
        ("NAR (smaller)", "L_jca"), ("NAR (smaller)", "++L_S-KD")]
    assert all(isinstance(r["test-clean WER"], float) and isinstance(r["test-other I+D"], float) for r in rows)
    for set_name in ("test-clean", "test-other"):
        lines = training.kd_verdicts(rows, set_name)
        assert len(lines) == 2
        for line in lines:
            m = re.search(r"(?P<a>[\d.]+) below L_jca (?P<b>[\d.]+).*\? (?P<v>yes|no)$", line)
            assert m and (m["v"] == "yes") == (float(m["a"]) < float(m["b"]))
    # the kit at the mini-en budget: KD helps the same-size student, not the smaller one under Mask-CTC
    same, smaller = training.kd_verdicts(rows, "test-clean")
    assert same.endswith("yes") and smaller.endswith("no")


def test_check_weights_refuses_only_weights_that_distil_nothing():
    training.check_weights(training.KDWeights.paper("fkd"), 1)
    training.check_weights(training.KDWeights(0.1, 0.0, 1.0, 0.0), 1)
    with pytest.raises(ValueError, match="every KD weight of eq 13 is zero"):
        training.check_weights(training.KDWeights(0.0, 0.0, 1.0, 0.0), 1)
    with pytest.raises(ValueError, match="stage 2"):
        training.check_weights(training.KDWeights(0.5, 0.5, 0.0, 0.0), 2)


@pytest.fixture()
def panel(tmp_path: Path) -> TrainingPanel:
    setup = training.choose_setup(smoke=True, device="cpu")
    return TrainingPanel(training.TrainingLab(setup, tmp_path / "corpus", tmp_path / "runs"))


def test_panel_shows_all_zero_kd_weights_as_one_line(panel):
    panel.controls["gamma_enc_1"].value = panel.controls["gamma_dec_1"].value = 0.0
    panel.buttons["train"].click()  # the notebook's Exercise 1: refused before anything trains
    assert panel.last["error"].startswith("ValueError: stage 1: every KD weight of eq 13 is zero")
    assert "\n" not in panel.last["error"] and "every KD weight" in panel.error.value
    assert not panel.lab.runs
    panel.controls["gamma_enc_1"].value = 0.5
    assert panel.last["error"]  # a slider redraw keeps the line until the next action


def test_panel_shows_any_training_error_as_one_line(panel):
    panel.buttons["train"].click()  # paper weights, but no teacher trained: the lab's own error
    assert panel.last["error"] == "RuntimeError: train the teacher first (train_teacher)"
    assert error_line(ValueError("first\nsecond")) == "ValueError: first" and error_line(KeyError()) == "KeyError"


# ----------------------------------------------------------------------------- 06


@pytest.fixture(scope="module")
def gains() -> list[er.KDGain]:
    pairs = {"same": ["mini-en/student-same-ljca", "mini-en/student-same-skd"],
             "smaller": ["mini-en/student-smaller-ljca", "mini-en/student-smaller-skd"]}
    return er.size_gains(pairs, ["test-clean"], "check")


def test_smaller_student_verdict_on_the_check_set(gains):
    by = {g.size: g for g in gains}
    from kdlab.pretrained import card

    on_cards = [card("mini-en", f"student-smaller-{c}")["results"]["check/test-clean"]["maskctc_beam10"]["rate"]
                for c in ("ljca", "skd")]
    assert (by["smaller"].ljca, by["smaller"].kd) == pytest.approx(on_cards, abs=0.01)  # the cards' check figures
    (line,) = er.smaller_gain_verdicts(gains)
    assert "does KD help the smaller student more? no" in line and "at all? no" in line
    assert by["same"].reduction > 0 > by["smaller"].reduction
    table = er.gain_table(gains)
    assert list(table["rel. red. %"]) == [round(g.reduction, 1) for g in gains]


def test_smaller_student_verdicts_on_the_full_sets_follow_the_cards():
    gains = er.gains_from_cards("mini-en")
    assert {(g.method, g.size, g.set) for g in gains} == {
        (m, size, s) for m in ("maskctc_beam10", "ctc_greedy") for size in ("same", "smaller")
        for s in ("test-clean", "test-other", "test-unseen")}
    lines = er.smaller_gain_verdicts(gains)
    assert len(lines) == 6
    by = {(g.set, g.method, g.size): g for g in gains}
    for line, (s, method) in zip(lines, dict.fromkeys((g.set, g.method) for g in gains), strict=True):
        more = by[(s, method, "smaller")].reduction > by[(s, method, "same")].reduction
        assert line.startswith(f"{s}, {method}:") and f"more? {'yes' if more else 'no'}" in line
    # the kit's reading printed beside them: KD helps the smaller student's CTC branch, not its Mask-CTC output
    assert all(by[(s, "ctc_greedy", "smaller")].reduction > 0 > by[(s, "maskctc_beam10", "smaller")].reduction
               for s in ("test-clean", "test-other", "test-unseen"))


def test_pair_verdict_counts_the_scatter():
    utts = er.utterance_table(er.decode_all(["mini-en/student-same-ljca", "mini-en/student-same-skd"],
                                            ["test-clean"], "check", limit=6))
    line = er.pair_verdict(utts, "student-same-ljca", "student-same-skd")
    diff = er.pair_models(utts, "student-same-ljca", "student-same-skd")["diff"]
    assert line.endswith(f"fewer on {(diff < 0).sum()}, more on {(diff > 0).sum()}, as many on "
                         f"{(diff == 0).sum()} of 6 utterances")


def test_alignments_slider_is_disabled_when_it_cannot_act():
    utts = er.utterance_table(er.decode_all(["mini-en/teacher"], ["test-clean"], "check", limit=4))
    x = ErrorExplorer(utts)
    assert not x.controls["alignments"].disabled
    x.controls["text"].value = utts["id"].iloc[0]  # one utterance matches
    assert x.last["utterances"] == 1 and x.controls["alignments"].disabled
    assert "one utterance matches" in x.controls["alignments"].tooltip
    x.controls["text"].value = "no such word anywhere"
    assert x.controls["alignments"].disabled and "no utterance" in x.controls["alignments"].tooltip
    x.controls["text"].value = ""
    assert not x.controls["alignments"].disabled


# ----------------------------------------------------------------------------- 07


@pytest.fixture(scope="module")
def models():
    return fam.family_models("mini-en")


def test_family_verdicts_and_tally_follow_the_cards(models):
    full = fam.card_rows(models)
    for column in ("test-clean %", "test-other %"):
        claims = fam.claim_results(full, models, column)
        assert len(claims) == sum(len(c) for c in fam.CLAIMS.values())
        for c in claims:
            m = VERDICT.search(c.line())
            assert m and (m["v"] == "yes") == (float(m["a"]) < float(m["b"])) == c.holds
        tally = fam.family_tally(claims, column)
        failed = [c for c in claims if not c.holds]
        assert sum(line.startswith("  not: ") for line in tally) == len(failed)
        assert all("kit's reading" in line for line in tally if line.startswith("  not: "))
    # issue #29: one-best-path KD is not below the no-KD transducer on test-clean (44.09 vs 43.26)
    clean = fam.claim_results(full, models, "test-clean %")
    onebest = next(c for c in clean if c.runs == ("rnnt-onebest", "rnnt-none"))
    assert (onebest.a, onebest.b, onebest.holds) == (44.09, 43.26, False)
    assert "one-hot" in onebest.reading


def test_streaming_delays_stay_within_the_latency(models):
    utt = load_set("mini-en", "test-clean", limit=1)[0]
    m = load_model("mini-en/stream-layer-token")
    for chunk in (2, 8):
        found = streaming.emissions(m, utt, chunk)
        assert found and streaming.delays_within_latency(found, chunk)
        assert max(e.delay_s for e in found) * 1000 <= streaming.latency_ms(chunk) + 1e-6
    late = [streaming.Emission(5, "x", 0, 0, 1.0)]  # 1 s after its first frame: beyond chunk 2's 110 ms
    assert not streaming.delays_within_latency(late, 2)


def test_inter_kd_head_and_lattice_rankings(models):
    teacher = load_model("mini-en/kd-teacher")
    utts = load_set("mini-en", "test-clean", limit=2)
    kd, none = load_model("mini-en/inter-kd"), load_model("mini-en/inter-none")
    wins, n = fam.head_kl_wins(teacher, kd, none, utts, "block 2")
    kl = [{v.model: v.mean_kl for v in fam.head_views(teacher, [kd, none], u) if v.head == "block 2"} for u in utts]
    assert n == 2 and wins == sum(k[kd.name] < k[none.name] for k in kl)
    rows = [{"model": "a", "KL": 0.3}, {"model": "b", "KL": 0.1}]
    assert lattice.lowest(rows, "KL") == "KL, lowest first: b (0.1) < a (0.3)"


def test_chunk_slider_is_disabled_outside_the_streaming_family(models):
    utts = load_set("mini-en", "test-clean", limit=1)
    w = FamilyExplorer(load_model("mini-en/kd-teacher"), models, utts)
    chunk = w.controls["chunk"]
    assert w.last["family"] == "inter" and chunk.disabled and "streaming family only" in chunk.tooltip
    w.controls["family"].value = "stream"
    assert not chunk.disabled
    w.controls["family"].value = "rnnt"
    assert chunk.disabled


def _overlaps(fig) -> list[tuple[str, str]]:
    """Pairs of label texts whose rendered boxes intersect."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    canvas = FigureCanvasAgg(fig)
    canvas.draw()
    renderer = canvas.get_renderer()
    texts = [t for t in fig.axes[0].texts if t.get_text()]
    boxes = [t.get_window_extent(renderer) for t in texts]
    return [(texts[i].get_text(), texts[j].get_text()) for i in range(len(boxes)) for j in range(i + 1, len(boxes))
            if boxes[i].overlaps(boxes[j])]


def test_emission_timeline_labels_do_not_overlap():
    pieces = ["_the", "_sh", "ore", "_w", "ill", "_s", "ing", "_to", "_mo", "s", "c", "ow"] * 4
    dense = [(p, 0.04 * i, 0.04 * i + 0.3) for i, p in enumerate(pieces)]  # a token every 40 ms
    fig = emission_timeline({"a": dense, "b": dense[::2]}, 2.0)
    assert not _overlaps(fig)
    assert label_levels([0.0, 0.1, 0.2, 1.0], [0.3, 0.3, 0.3, 0.3]) == [0, 1, 2, 0]


def test_real_emission_timeline_labels_do_not_overlap(models):
    utt = load_set("mini-en", "test-clean", limit=1)[0]
    found = {name: streaming.emissions(load_model(f"mini-en/{name}"), utt) for name in ("stream-none", "stream-token")}
    assert not _overlaps(emission_timeline(streaming.timeline_rows(found), utt.duration))


def test_notebooks_print_the_verdicts_they_describe():
    """The prose of 05-07 names the verdict functions' outputs; each notebook calls them (no hand-written result)."""
    import nbformat

    root = Path(__file__).resolve().parents[1] / "notebooks"
    code = {name: "\n".join(c.source for c in nbformat.read(root / name, as_version=4).cells if c.cell_type == "code")
            for name in ("05_training_runs.ipynb", "06_error_analysis.ipynb", "07_kd_families.ipynb")}
    assert all(f in code["05_training_runs.ipynb"] for f in ("recognition_verdict", "kd_verdicts", "shipped_table1"))
    assert all(f in code["06_error_analysis.ipynb"] for f in ("smaller_gain_verdicts", "size_gains", "pair_verdict"))
    assert all(f in code["07_kd_families.ipynb"] for f in ("claim_results", "family_tally", "delays_within_latency"))
    text = {name: "\n".join(c.source for c in nbformat.read(root / name, as_version=4).cells) for name in code}
    assert all("## Solutions" in t and "## Exercises" in t for t in text.values())
    assert not any(re.search(r"\b\d+\.\d\d ?%", t) for t in text.values())  # no hand-written result rates


def test_gain_table_columns():
    table = er.gain_table([er.KDGain("same", "test-clean", "maskctc_beam10", 10.0, 8.0)])
    assert isinstance(table, pd.DataFrame) and table.loc[0, "rel. red. %"] == 20.0


def test_paper_table1_says_kd_helps_the_smaller_student_more():
    """06 Step 9 prints the paper's verdicts beside the kit's: in the paper's Table 1 the answer is yes."""
    lines = er.smaller_gain_verdicts(er.paper_gains())
    assert len(lines) == 4 and all("more? yes" in line and "at all? yes" in line for line in lines)
