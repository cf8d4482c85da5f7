"""``kdlab reproduce`` end to end on a tiny synthesised corpus: every stage, both tables, resumability.

The end-to-end run uses ``jobs=1`` (stages in process: on a tiny corpus the subprocesses' start-up would
dominate); the stage subprocesses of the parallel mode are exercised by a partial re-run with ``jobs=2``.
"""

from __future__ import annotations

import json
import shutil

import pytest

from kdlab.reproduce import reproduce_cli as reproduce
from kdlab.reproduce.presets import get_preset

TINY = ["corpus={hours: 0.015, n_dev: 6, n_test: 6}", "teacher_epochs=2", "student_epochs=1",
        "finetune_epochs=1", "average_last=1", "nbest=3", "max_frames=6000", "beams=[1, 3]"]


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory):
    root = tmp_path_factory.mktemp("reproduce")
    preset = reproduce.apply_overrides(get_preset("mini-en"), TINY)
    md = reproduce.run(preset, root / "run", None, root / "cache", jobs=1)
    return root / "run", md


def test_reproduce_writes_both_tables(tiny_run):
    root, md = tiny_run
    records = json.loads((root / "results" / "results.json").read_text())["records"]
    t1 = [r for r in records if r["table"] == 1]
    t3 = [r for r in records if r["table"] == 3]
    assert [r["criterion"] for r in t1] == ["L_jca"] + ["L_jca", "+L_F-KD", "++L_S-KD"] * 2
    # the same-size student has the teacher's architecture; its CMLM's relative positions add 1.5 %
    assert abs(t1[1]["params"] - t1[0]["params"]) <= 0.02 * t1[0]["params"]
    assert t1[0]["params"] > 5 * t1[4]["params"]  # the smaller student is several times smaller
    for r in t1:
        assert 0 <= r["dev_i_plus_d"] and r["dev_error"] >= 0 and r["test_error"] >= 0
    assert {r["beam"] for r in t3 if r["model"] != "AR"} == {1, 3}
    assert all(r["rtf"] > 0 for r in t3)
    for name in ("table1.csv", "table3.csv", "results.md", "learning_curves.png"):
        assert (root / "results" / name).stat().st_size > 0
    assert "Table 1 analogue" in md and "Table 3 analogue" in md


def test_reproduce_reports_every_eval_set_diagnostics_and_stage_times(tiny_run):
    root, md = tiny_run
    results = json.loads((root / "results" / "results.json").read_text())
    assert results["sets"] == {"dev": "dev-clean", "test": "test-clean", "dev-other": "dev-other",
                               "test-other": "test-other"}
    t1 = [r for r in results["records"] if r["table"] == 1]
    t3 = [r for r in results["records"] if r["table"] == 3]
    assert all(r["dev_other_error"] >= 0 and r["test_other_i_plus_d"] >= 0 for r in t1)
    assert all(r["test_other_error"] >= 0 and r["test_error"] >= 0 for r in t3)
    diag = {r["run"]: r for r in results["diagnostics"]}
    assert set(diag) == {r["run"] for r in t1} and diag["ar"]["masked_pct"] is None
    for name, row in diag.items():
        assert 0 <= row["dev_acc_pct"] <= 100
        if name != "ar":  # no greedy CTC token at all (an all-blank tiny student): no share
            assert row["ctc_tokens_per_utt"] == 0 if row["masked_pct"] is None else 0 <= row["masked_pct"] <= 100
    stages = results["timing"]["stages_s"]
    assert {"prepare", "nbest", "ar", "nar-smaller-skd", "decode-ar-test-other"} <= set(stages)
    assert all(s > 0 for s in stages.values()) and results["timing"]["total_s"] > 0
    assert "dev-clean / test-clean" in md and "dev-other / test-other" in md and "Diagnostics" in md


def test_reproduce_teacher_nbest_cached_and_skd_initialised_from_fkd(tiny_run):
    root, _ = tiny_run
    nbest = list(root.glob("ar/nbest*"))
    assert nbest, "stage 2 must cache the teacher's N-best lists next to the teacher"
    skd_cfg = (root / "nar-smaller-skd" / "config.yaml").read_text()
    assert "nar-smaller-fkd" in skd_cfg and "beta_s: 1.0" in skd_cfg


def test_reproduce_rerun_skips_finished_stages(tiny_run, capsys):
    root, _ = tiny_run
    before = {p: p.stat().st_mtime for p in root.glob("*/avg-*.pt")}
    preset = reproduce.apply_overrides(get_preset("mini-en"), TINY)
    reproduce.run(preset, root, None, root.parent / "cache")
    assert "done already, skipping" in capsys.readouterr().out
    assert before == {p: p.stat().st_mtime for p in root.glob("*/avg-*.pt")}


def test_reproduce_parallel_rerun_resumes_stages_in_subprocesses(tiny_run, capsys):
    root, _ = tiny_run
    (root / "nar-smaller-skd" / "DONE").unlink()  # as if interrupted after its last checkpoint
    (root / "ar" / "nbest.jsonl").unlink()
    shutil.rmtree(root / "decode" / "nar-smaller-skd" / "test-other")
    preset = reproduce.apply_overrides(get_preset("mini-en"), TINY)
    reproduce.run(preset, root, None, root.parent / "cache", jobs=2)
    out = capsys.readouterr().out
    for stage in ("nbest", "nar-smaller-skd", "decode-nar-smaller-skd-test-other"):
        assert f"{stage}: started (log:" in out and f"{stage}: finished in" in out
    assert "nar-same-skd: done already, skipping" in out
    assert (root / "ar" / "nbest.jsonl").is_file() and (root / "nar-smaller-skd" / "DONE").is_file()
    assert "num_threads: 1" in (root / "nar-smaller-skd" / "train.yaml").read_text()
    assert "maskctc_beam10" in (root / "decode" / "nar-smaller-skd" / "test-other" / "decode.log").read_text()


def test_ship_exports_the_runs_models_with_reverifiable_check_figures(tiny_run, tmp_path):
    from kdlab.pretrained import store as pretrained
    from kdlab.pretrained.check import verify
    from kdlab.pretrained.ship import ship_run

    root, _ = tiny_run
    preset = reproduce.apply_overrides(get_preset("mini-en"), TINY)
    ship_run(root, preset, n_check=2, models_root=tmp_path)
    names = ["student-same-ljca", "student-same-skd", "student-smaller-ljca", "student-smaller-skd", "teacher"]
    assert pretrained.available(tmp_path) == [f"mini-en/{n}" for n in names]
    card = pretrained.card("mini-en", "teacher", root=tmp_path)
    full = json.loads((root / "decode" / "ar" / "test" / "summary.json").read_text())["attention_beam10"]
    assert card["results"]["test-clean"]["attention_beam10"]["rate"] == full["rate"]
    assert set(card["results"]) >= {"dev-clean", "test-other", "check/test-clean", "check/test-other"}
    assert card["corpus_seed"] == 0 and "reproduce --preset mini-en" in card["recipe"]
    rows = verify("mini-en/student-smaller-skd", root=tmp_path)
    assert {(r.set, r.method) for r in rows} == {(s, m) for s in ("check/test-clean", "check/test-other")
                                                 for m in ("maskctc_beam10", "ctc_greedy")}
    assert all(r.agrees(0.0) for r in rows)


def test_reproduce_rejects_unknown_override():
    with pytest.raises(SystemExit, match="FIELD=VALUE"):
        reproduce.apply_overrides(get_preset("mini-en"), ["no_such_field=1"])
