"""Notebooks 01 and 02's computed claims (kdlab.explore.pick_ctc, segments, masking) on the shipped models and
check sets: the default utterances show the point, the fallbacks say "no such case in this set", the teaching
Viterbi recursion of notebook 01 gives the package's forced path, and each verdict line says what it computes."""

from __future__ import annotations

import re
from pathlib import Path

import nbformat
import pytest
import torch

from kdlab.explore import load_model, load_set, run_encoder
from kdlab.explore import masking as mk
from kdlab.explore import pick_ctc as pc
from kdlab.explore import segments as sg
from kdlab.explore.searches import maskctc
from kdlab.tokens import BLANK

NOTEBOOKS = Path(__file__).resolve().parents[1] / "notebooks"
NB01, NB02 = NOTEBOOKS / "01_ctc_alignment.ipynb", NOTEBOOKS / "02_maskctc_masking.ipynb"
SETS = ("test-clean", "test-other")
STUDENT = "mini-en/student-same-skd"


@pytest.fixture(scope="module")
def sets() -> dict:
    return {s: load_set("mini-en", s) for s in SETS}


def _cells(path: Path, kind: str) -> list[str]:
    return [c.source for c in nbformat.read(path, as_version=4).cells if c.cell_type == kind]


# ---------------------------------------------------------------- 01: the default utterance
@pytest.mark.parametrize("set_name", SETS)
def test_greedy_vs_forced_pick_has_the_most_differing_frames(teacher, sets, set_name):
    utts = sets[set_name]
    pick = pc.pick_greedy_vs_forced(teacher, utts)
    counts = [len(f[0]) if f else -1 for f in (pc.path_disagreement(teacher, u) for u in utts)]
    assert pick.found and counts[pick.index] == max(counts) > 0
    assert counts.index(max(counts)) == pick.index  # ties: the first
    assert utts[pick.index].id in pick.line and f"differ on {max(counts)} of" in pick.line
    assert pc.chosen_index(None, pick) == pick.index and pc.chosen_index(3, pick) == 3


def test_greedy_vs_forced_falls_back_when_every_path_agrees(teacher, sets):
    agree = [u for u in sets["test-clean"] if not pc.path_disagreement(teacher, u)[0]]
    assert agree, "the check set should hold an utterance whose greedy path equals its forced path"
    pick = pc.pick_greedy_vs_forced(teacher, agree)
    assert not pick.found and pick.line.startswith(pc.NO_CASE) and pc.chosen_index(None, pick) == 0


def test_step7_claims_hold_on_the_default(teacher, sets):
    """Step 7's line and the close-up's caption: the default shows differing frames around the first one."""
    utts = sets["test-clean"]
    v = sg.ctc_view(teacher, utts[pc.pick_greedy_vs_forced(teacher, utts).index])
    differ = sg.path_differences(v.path.frame_ids, sg.frame_tokens(v.segments, v.n_frames))
    window = sg.window_around(differ, v.n_frames)
    assert differ and window[0] <= differ[0] < window[1]
    assert "around the first disagreement" in sg.window_line(differ, window)
    errors = mk.word_errors(teacher, v.utt.text, v.greedy.tokens).errors
    line = sg.difference_line(differ, v.n_frames, errors)
    assert line.startswith(f"{len(differ)} of {v.n_frames} frames differ")
    assert line.endswith("yes") == (errors == 0)
    assert sg.window_line([], (0, 40)).startswith("no frame differs")


# ---------------------------------------------------------------- 01: the teaching recursion
def _viterbi_path():
    """The notebook's own ``viterbi_path`` cell, executed as the notebook runs it."""
    src = next(s for s in _cells(NB01, "code") if s.startswith("def viterbi_path"))
    assert 10 <= len(src.splitlines()) <= 30, "the teaching recursion should stay short"
    namespace = {"torch": torch, "sg": sg}
    exec(src, namespace)
    return namespace["viterbi_path"]


@pytest.mark.parametrize("model", ["mini-en/teacher", "mini-en/student-smaller-skd"])
def test_notebook_viterbi_gives_the_package_forced_path(sets, model):
    viterbi_path, m = _viterbi_path(), load_model(model)
    checked = 0
    for utts in sets.values():
        for u in utts:
            v = sg.ctc_view(m, u)
            if v.segments:
                assert viterbi_path(v.out.ctc_logp, v.ref_tokens) == sg.frame_tokens(v.segments, v.n_frames), u.id
                checked += 1
    assert checked >= 30


def test_notebook_viterbi_on_a_tiny_trellis():
    """Two frames, one token: the path must visit the token; a repeated token needs a blank between."""
    viterbi_path = _viterbi_path()
    logp = torch.tensor([[0.6, 0.4], [0.7, 0.3]]).log()  # (T=2, V=2): blank is likelier on both frames
    assert viterbi_path(logp, [1]) == [1, BLANK]  # 0.4·0.7 beats 0.6·0.3 (∅ 1) and 0.4·0.3 (1 1)
    logp3 = torch.tensor([[0.1, 0.9], [0.9, 0.1], [0.1, 0.9]]).log()
    assert viterbi_path(logp3, [1, 1]) == [1, BLANK, 1]


def test_notebook_checks_the_recursion_against_the_package():
    code = _cells(NB01, "code")
    i = next(k for k, s in enumerate(code) if s.startswith("def viterbi_path"))
    assert "assert mine == package" in code[i + 1] and "it matches" in code[i + 1]


# ---------------------------------------------------------------- 01: step 3 and the solutions
def test_blank_line_says_what_it_counts(teacher, sets):
    for u in sets["test-clean"][:5]:
        logp = sg.ctc_view(teacher, u).out.ctc_logp
        s = sg.blank_share(logp)
        best = logp.argmax(dim=1)
        assert s.top == pytest.approx(float((best == BLANK).float().mean()))
        assert s.sure == pytest.approx(float((logp[:, BLANK].exp() > 0.9).float().mean()))
        assert sg.blank_line(s).endswith("yes" if s.top > 0.5 else "no")
    assert sg.token_runs([BLANK, 5, 5, BLANK, 5, 6, 6, 6]) == [2, 1, 3]


def test_set_comparison_verdicts(teacher, sets):
    clean, other = (pc.set_stats(teacher, sets[s]) for s in SETS)
    assert 0 <= clean.differ <= 1 and 0 <= clean.blank_top <= 1 and clean.entropy >= 0
    assert clean.differ == pytest.approx(pc.disagreement_share(teacher, sets["test-clean"]))
    lines = pc.compare_line(list(SETS), [clean, other]).splitlines()
    assert lines[2].endswith("yes" if other.differ > clean.differ else "no")
    assert lines[3].endswith("yes" if other.entropy < clean.entropy else "no")


def test_near_miss_report_and_its_fallback(teacher, sets):
    utts = sets["test-clean"]
    lines = pc.near_miss_report(teacher, utts, 0.3)
    v = sg.ctc_view(teacher, next(u for u in utts if lines[0] == f"{u.id}:"))
    for t, tok, p in sg.blank_near_misses(v.out.ctc_logp, 0.3):
        probs = v.out.ctc_logp[t].exp()
        assert int(probs.argmax()) == BLANK and p > 0.3 and probs[tok] == pytest.approx(p)
    assert pc.near_miss_report(teacher, utts, 0.999)[0].startswith(pc.NO_CASE)
    assert sg.distance_to_segments([], 3) == -1


# ---------------------------------------------------------------- 02: the default utterance
@pytest.mark.parametrize("set_name", SETS)
def test_repair_pick_shows_a_repaired_token(student, sets, set_name):
    utts = sets[set_name]
    pick = pc.pick_repair(student, utts, p_thr=0.99, K=2)
    assert pick.found and utts[pick.index].id in pick.line
    u = utts[pick.index]
    _, trace = maskctc(student, run_encoder(student, u), p_thr=0.99, K=2)
    fixed = mk.repairs(mk.mask_changes(student, u.text, trace))
    assert fixed
    final = mk.final_tokens(trace)
    right_before = mk.token_correct(student, u.text, trace.ctc_tokens)
    right_after = mk.token_correct(student, u.text, final)
    for c in fixed:  # masked, changed by the CMLM, wrong before and right after
        p = c.position
        assert trace.initial_mask[p] and final[p] != trace.ctc_tokens[p]
        assert not right_before[p] and right_after[p]


def test_repair_pick_falls_back_without_a_repair(student, sets):
    none = [u for u in sets["test-clean"][:8] if pc.repair_counts(student, u, 0.99, 2)[0] == 0]
    assert none
    pick = pc.pick_repair(student, none, p_thr=0.99, K=2)
    assert not pick.found and pick.line.startswith(pc.NO_CASE)


# ---------------------------------------------------------------- 02: steps 2-4 and the solutions
def test_mask_ctc_keeps_the_token_count_and_the_unmasked_tokens(student, sets):
    """Step 2 / 4 and the summary: the token count stays, only masks change; word-level I or D can move."""
    moved = 0
    for utts in sets.values():
        for u in utts:
            _, trace = maskctc(student, run_encoder(student, u), p_thr=0.99, K=2)
            line = mk.length_line(student, u.text, trace)
            n = len(trace.ctc_tokens)
            assert f"greedy CTC {n}, Mask-CTC {n}; changed outside the masks: 0." in line
            a = mk.word_errors(student, u.text, trace.ctc_tokens)
            b = mk.word_errors(student, u.text, mk.final_tokens(trace))
            assert line.endswith("yes" if (a.ins, a.dele) != (b.ins, b.dele) else "no")
            moved += line.endswith("yes")
    assert moved > 0, "the prose says word-level I/D can change: the check sets show it"


def test_higher_threshold_never_masks_fewer(student, sets):
    thresholds = [0.5, 0.6, 0.7, 0.8, 0.9, 0.95, 0.98, 0.99, 0.995, 0.999]
    for u in sets["test-clean"][:5]:
        _, trace = maskctc(student, run_encoder(student, u), p_thr=0.99, K=2)
        counts = mk.mask_counts(trace.confidences, thresholds)
        assert counts == sorted(counts)


@pytest.mark.parametrize("K", [1, 2, 3, 10])
def test_iterations_needed_is_the_search_iteration_count(student, sets, K):
    for u in sets["test-clean"][:4]:
        _, trace = maskctc(student, run_encoder(student, u), p_thr=0.99, K=K)
        assert mk.iterations_needed(sum(trace.initial_mask), K) == len(trace.iterations)


def test_solution_lines(student, sets):
    u = sets["test-clean"][pc.pick_repair(student, sets["test-clean"]).index]
    out = run_encoder(student, u)
    rows = mk.decode_settings(student, out, u.text, [(0.99, 1), (0.99, 10)])
    assert [r.iterations for r in rows] == [rows[0].n_masked, mk.iterations_needed(rows[1].n_masked, 10)]
    lines = mk.settings_lines(rows)
    assert lines[-1].endswith("yes" if rows[0].hypothesis != rows[1].hypothesis else "no")
    _, trace = maskctc(student, out, p_thr=0.99, K=2)
    kept = mk.kept_lines(student, u.text, trace)
    right = mk.token_correct(student, u.text, trace.ctc_tokens)
    n = sum(h and r for h, r in zip(trace.initial_mask, right, strict=True))
    assert kept[-1].startswith(f"{n} masked tokens were right") if n else kept[0].startswith("no masked token")
    a, b = (mk.student_summary(load_model(s), sets["test-clean"][:3], 0.99, 2)
            for s in ("mini-en/student-same-ljca", STUDENT))
    verdict = mk.students_lines(a, b)[-1]
    assert f"higher mean confidence: {a.name if a.confidence > b.confidence else b.name}" in verdict


# ---------------------------------------------------------------- the prose itself
@pytest.mark.parametrize("path", [NB01, NB02], ids=["01", "02"])
def test_prose_holds_no_hand_written_result_numbers(path):
    """Numbers that state a result (percentages, "N of M") are printed by code, never written in the prose."""
    for text in _cells(path, "markdown"):
        assert not re.search(r"\d+(\.\d+)?\s?%", text), text[:80]
        assert not re.search(r"\b\d+ of \d+\b", text), text[:80]


@pytest.mark.parametrize("path", [NB01, NB02], ids=["01", "02"])
def test_defaults_are_chosen_by_computation_and_solutions_exist(path):
    code, prose = _cells(path, "code"), _cells(path, "markdown")
    assert "INDEX = None" in code[0]
    assert "pc.pick_" in code[1] and "print(pick.line)" in code[1]
    assert any(t.startswith("## Solutions") for t in prose)


def test_retired_claims_are_gone():
    text = "\n".join(_cells(NB01, "markdown") + _cells(NB02, "markdown"))
    assert "almost all their mass on blank" not in text
    assert "repairs substitutions, not insertions or deletions" not in text
