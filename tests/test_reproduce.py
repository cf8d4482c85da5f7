"""``kdlab reproduce`` end to end on a tiny synthesised corpus: every stage, both tables, resumability.

The end-to-end run uses ``jobs=1`` (stages in process: on a tiny corpus the subprocesses' start-up would
dominate); the stage subprocesses of the parallel mode are exercised by a partial re-run with ``jobs=2``.
The L_jca baseline's stage-1 checkpoint (Table 1 compares +F-KD with the baseline at stage 1's length, the
paper's 80 of 80 + 20 epochs) is checked end to end, on a run folder completed by hand, and in both phases
of an interrupted baseline run.
"""

from __future__ import annotations

import json
import shlex
import shutil
from pathlib import Path

import pytest
import torch

from kdlab.reproduce import reproduce_cli as reproduce
from kdlab.reproduce.presets import PresetError, get_preset

TINY = ["corpus={hours: 0.015, n_dev: 6, n_test: 6}", "teacher_epochs=2", "student_epochs=1",
        "finetune_epochs=1", "average_last=1", "nbest=3", "max_frames=6000", "beams=[1, 3]"]


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory):
    root = tmp_path_factory.mktemp("reproduce")
    preset = reproduce.apply_overrides(get_preset("mini-en"), TINY)
    md = reproduce.run(preset, root / "run", None, root / "cache", jobs=1, overrides=TINY)
    return root / "run", md


def test_reproduce_writes_both_tables(tiny_run):
    root, md = tiny_run
    records = json.loads((root / "results" / "results.json").read_text())["records"]
    t1 = [r for r in records if r["table"] == 1]
    t3 = [r for r in records if r["table"] == 3]
    assert [r["criterion"] for r in t1] == ["L_jca"] + ["L_jca", "L_jca", "+L_F-KD", "++L_S-KD"] * 2
    # the same-size student has the teacher's architecture; its CMLM's relative positions add 1.5 %
    assert abs(t1[1]["params"] - t1[0]["params"]) <= 0.02 * t1[0]["params"]
    assert t1[0]["params"] > 5 * t1[5]["params"]  # the smaller student is several times smaller
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
                               "test-other": "test-other", "dev-unseen": "dev-unseen", "test-unseen": "test-unseen"}
    t1 = [r for r in results["records"] if r["table"] == 1]
    t3 = [r for r in results["records"] if r["table"] == 3]
    assert all(r["dev_other_error"] >= 0 and r["test_other_i_plus_d"] >= 0 for r in t1)
    assert all(r["test_unseen_error"] >= 0 and r["dev_unseen_i_plus_d"] >= 0 for r in t1)
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
    assert "dev-unseen / test-unseen" in md


def test_reproduce_keeps_the_baselines_stage1_checkpoint(tiny_run):
    root, _ = tiny_run
    for size in ("same", "smaller"):
        run = root / f"nar-{size}-ljca"
        done = json.loads((run / "DONE").read_text())
        assert done["stage1_checkpoint"] == str(run / "avg-stage1.pt") and done["stage1_epochs"] == 1
        stage1 = torch.load(run / "avg-stage1.pt", weights_only=True)
        assert stage1["averaged"] == ["epoch-1.pt"] and stage1["epoch"] == 1  # average_last=1 after epoch 1
        assert torch.load(done["checkpoint"], weights_only=True)["epoch"] == 2  # then on to 1 + 1 epochs
        assert (root / "decode" / f"nar-{size}-ljca-stage1" / "test-other" / "summary.json").is_file()


def test_table1_compares_each_kd_student_with_the_baseline_of_its_length(tiny_run):
    root, md = tiny_run
    t1 = [r for r in json.loads((root / "results" / "results.json").read_text())["records"] if r["table"] == 1]
    rows = {r["run"]: r for r in t1}
    assert [r["row"] for r in t1[1:5]] == ["L_jca (1+1 epochs)", "L_jca (stage-1 length, 1 epoch)", "+L_F-KD",
                                          "++L_S-KD"]
    assert [r["epochs"] for r in t1[1:5]] == [2, 1, 1, 2]
    for size in ("same", "smaller"):
        fkd, skd, stage1, full = (rows[f"nar-{size}-{c}"] for c in ("fkd", "skd", "ljca-stage1", "ljca"))
        assert fkd["rel_to"] == stage1["run"] and skd["rel_to"] == full["run"]
        assert stage1["rel_to"] is None and "test_rel_reduction" not in stage1
        for split in ("dev", "test_other"):
            for row, ref in ((fkd, stage1), (skd, full)):
                base, err = ref[f"{split}_error"], row[f"{split}_error"]
                if base > 0:  # rel. = 100 (base - new) / base, from the rounded rates up to rounding
                    assert abs(row[f"{split}_rel_reduction"] - 100 * (base - err) / base) < 0.1 * 100 / base + 0.01
    table = md[md.index("Table 1 analogue, dev-clean"):md.index("Table 1 analogue, dev-other")]
    assert "+L_F-KD (1 epochs) vs the L_jca checkpoint at stage-1 length" in table
    lines = [ln for ln in table.splitlines() if ln.startswith("| NAR (smaller)")]
    assert [ln.split(" | ")[1] for ln in lines] == ["L_jca (1+1 epochs)", "L_jca (stage-1 length, 1 epoch)",
                                                    "+L_F-KD", "++L_S-KD"]
    csv_text = (root / "results" / "table1.csv").read_text()
    assert "nar-smaller-ljca-stage1" in csv_text and "L_jca (stage-1 length, 1 epoch)" in csv_text
    diag = md[md.index("## Diagnostics"):]
    assert "L_jca (stage-1 length, 1 epoch)" in diag


def test_reproduce_teacher_nbest_cached_and_skd_continues_the_fkd_run(tiny_run):
    """Stage 2 (preset stage2="continue") resumes stage 1's run: stage 1's epoch rows, then its own epoch
    numbered on, the optimiser step count going on, as the L_jca baseline's one run of 1 + 1 epochs."""
    import csv

    root, _ = tiny_run
    nbest = list(root.glob("ar/nbest*"))
    assert nbest, "stage 2 must cache the teacher's N-best lists next to the teacher"
    skd, fkd = root / "nar-smaller-skd", root / "nar-smaller-fkd"
    assert "beta_s: 1.0" in (skd / "config.yaml").read_text()

    def epochs(run: Path) -> list[dict]:
        with open(run / "metrics.csv") as f:
            return [r for r in csv.DictReader(f) if r["kind"] == "epoch"]

    stage1, stage2 = epochs(fkd), epochs(skd)
    assert [r["epoch"] for r in stage2] == ["1", "2"]
    assert {k: stage2[0][k] for k in stage1[0]} == stage1[0]  # stage 2 adds the S-KD columns
    assert int(stage2[1]["step"]) > int(stage1[0]["step"]) > 0
    assert sorted(p.name for p in skd.glob("epoch-*.pt")) == ["epoch-2.pt"]


def test_reproduce_rerun_skips_finished_stages(tiny_run, capsys):
    root, _ = tiny_run
    before = {p: p.stat().st_mtime for p in root.glob("*/avg-*.pt")}
    preset = reproduce.apply_overrides(get_preset("mini-en"), TINY)
    reproduce.run(preset, root, None, root.parent / "cache", overrides=TINY)
    assert "done already, skipping" in capsys.readouterr().out
    assert before == {p: p.stat().st_mtime for p in root.glob("*/avg-*.pt")}


def test_reproduce_parallel_rerun_resumes_stages_in_subprocesses(tiny_run, capsys):
    root, _ = tiny_run
    (root / "nar-smaller-skd" / "DONE").unlink()  # as if interrupted after its last checkpoint
    (root / "ar" / "nbest.jsonl").unlink()
    shutil.rmtree(root / "decode" / "nar-smaller-skd" / "test-other")
    shutil.rmtree(root / "decode" / "nar-same-ljca-stage1" / "test")  # a stage-1 decoding, with mask share
    preset = reproduce.apply_overrides(get_preset("mini-en"), TINY)
    reproduce.run(preset, root, None, root.parent / "cache", jobs=2, overrides=TINY)
    out = capsys.readouterr().out
    for stage in ("nbest", "nar-smaller-skd", "decode-nar-smaller-skd-test-other", "decode-nar-same-ljca-stage1-test"):
        assert f"{stage}: started (log:" in out and f"{stage}: finished in" in out
    assert "nar-same-skd: done already, skipping" in out
    assert (root / "ar" / "nbest.jsonl").is_file() and (root / "nar-smaller-skd" / "DONE").is_file()
    assert "num_threads: 1" in (root / "nar-smaller-skd" / "train.yaml").read_text()
    assert "maskctc_beam10" in (root / "decode" / "nar-smaller-skd" / "test-other" / "decode.log").read_text()
    stage1 = root / "decode" / "nar-same-ljca-stage1" / "test"
    assert "--stage1" in (stage1 / "decode.log").read_text() and (stage1 / "mask_share.json").is_file()


def test_reproduce_completes_a_finished_run_given_a_hand_placed_stage1_checkpoint(tiny_run, capsys):
    from kdlab.checkpoint import CheckpointError
    from kdlab.config import load_config
    from kdlab.reproduce import stages as st

    root, _ = tiny_run
    run = root / "nar-smaller-ljca"
    kept = root.parent / "avg-stage1-kept.pt"
    shutil.move(run / "avg-stage1.pt", kept)  # a run finished before the stage-1 checkpoint was kept
    done = json.loads((run / "DONE").read_text())
    (run / "DONE").write_text(json.dumps({k: v for k, v in done.items() if not k.startswith("stage1")}))
    shutil.rmtree(root / "decode" / "nar-smaller-ljca-stage1")
    preset = reproduce.apply_overrides(get_preset("mini-en"), TINY)
    corpus = Path(load_config(root / "ar" / "config.yaml").data.corpus)
    cfg = st.student_config(preset, corpus, st.StudentRun("smaller", "ljca"), root / "ar")
    with pytest.raises(CheckpointError, match="avg-stage1.pt"):  # epoch 1 is pruned: it cannot be rebuilt
        st.train_stage("nar-smaller-ljca", cfg, run, stage1_epochs=1)
    shutil.copy2(kept, run / "avg-stage1.pt")  # placed by hand
    trained = {p: p.stat().st_mtime for p in run.glob("*.pt")}
    md = reproduce.run(preset, root, None, root.parent / "cache", jobs=1, overrides=TINY)
    out = capsys.readouterr().out
    assert "nar-smaller-ljca: done already, skipping" in out and "nar-smaller-fkd: done already, skipping" in out
    assert "decode-nar-smaller-ljca-stage1-test-other: finished in" in out
    assert "decode-nar-smaller-ljca-test: done already, skipping" in out  # only the missing decodings run
    assert trained == {p: p.stat().st_mtime for p in run.glob("*.pt")}  # nothing trained again
    assert st.stage1_checkpoint_of(run) == run / "avg-stage1.pt"  # accepted beside a DONE marker without it
    rows = {r["run"]: r for r in json.loads((root / "results" / "results.json").read_text())["records"]
            if r["table"] == 1}
    assert rows["nar-smaller-fkd"]["rel_to"] == "nar-smaller-ljca-stage1"
    assert "nar-smaller-ljca-stage1" in rows and "L_jca (stage-1 length, 1 epoch)" in md


def _weights(path):
    return torch.load(path, weights_only=True)["model"]


def test_baseline_run_keeps_stage1_and_resumes_in_both_phases(tiny_run, tmp_path):
    """L_jca for 2 + 1 epochs, averaging 2: avg-stage1.pt averages epochs 1-2; an interruption in stage 2
    and one in stage 1 both resume to the same checkpoints (one thread: bit-exact)."""
    from kdlab.checkpoint import average_state_dicts
    from kdlab.config import load_config
    from kdlab.reproduce import stages as st

    root, _ = tiny_run
    preset = reproduce.apply_overrides(get_preset("mini-en"), [*TINY, "student_epochs=2", "average_last=2"])
    corpus = load_config(root / "ar" / "config.yaml").data.corpus
    cfg = st.student_config(preset, Path(corpus), st.StudentRun("smaller", "ljca"), root / "ar")
    cfg["train"]["keep_last"] = 0  # keep every epoch checkpoint to check the average
    run = tmp_path / "nar-smaller-ljca"
    ckpt = st.train_stage("nar-smaller-ljca", cfg, run, stage1_epochs=2)
    stage1 = torch.load(run / "avg-stage1.pt", weights_only=True)
    assert stage1["averaged"] == ["epoch-1.pt", "epoch-2.pt"] and stage1["epoch"] == 2
    mean = average_state_dicts([_weights(run / f"epoch-{e}.pt") for e in (1, 2)])
    assert all(torch.equal(stage1["model"][k], mean[k]) for k in mean)
    assert torch.load(ckpt, weights_only=True)["averaged"] == ["epoch-2.pt", "epoch-3.pt"]
    first = {f: _weights(run / f) for f in ("avg-stage1.pt", "epoch-3.pt")}
    steps = [torch.load(run / f"epoch-{e}.pt", weights_only=True)["step"] for e in (1, 2, 3)]
    assert steps[0] < steps[1] < steps[2]  # stage 2 continues the step count (the schedule is step-based)

    (run / "DONE").unlink()  # killed during epoch 3 (stage 2)
    (run / "epoch-3.pt").unlink()
    stage1_mtime = (run / "avg-stage1.pt").stat().st_mtime
    st.train_stage("nar-smaller-ljca", cfg, run, stage1_epochs=2)
    assert (run / "avg-stage1.pt").stat().st_mtime == stage1_mtime
    assert all(torch.allclose(first["epoch-3.pt"][k].float(), v.float(), atol=1e-6)
               for k, v in _weights(run / "epoch-3.pt").items())

    for name in ("DONE", "avg-stage1.pt", "epoch-2.pt", "epoch-3.pt"):  # killed during epoch 2 (stage 1)
        (run / name).unlink()
    st.train_stage("nar-smaller-ljca", cfg, run, stage1_epochs=2)
    done = json.loads((run / "DONE").read_text())
    assert done["stage1_checkpoint"] == str(run / "avg-stage1.pt") and done["stage1_epochs"] == 2
    for name, before in first.items():
        assert all(torch.allclose(before[k].float(), v.float(), atol=1e-6) for k, v in _weights(run / name).items())


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
    sets = "".join(f" --set {shlex.quote(item)}" for item in TINY)  # the run's --set items (results.json)
    assert card["corpus_seed"] == 0 and card["recipe"] == f"kdlab reproduce --preset mini-en{sets} (ar stage)"
    assert card["command"] == f"./run.sh reproduce --preset mini-en{sets}"
    rows = verify("mini-en/student-smaller-skd", root=tmp_path)
    assert {(r.set, r.method) for r in rows} == {(s, m) for s in ("check/test-clean", "check/test-other",
                                                              "check/test-unseen")
                                                 for m in ("maskctc_beam10", "ctc_greedy")}
    unseen = pretrained.pretrained_root(tmp_path) / "mini-en" / "check" / "test-unseen.jsonl"
    assert len(unseen.read_text().splitlines()) == 3  # ⌈2 / 3⌉ = 1 utterance of each synthesizer
    assert (tmp_path / "mini-en" / "teacher" / "tokenizer").is_symlink()  # one tokenizer folder per corpus
    assert all(r.agrees(0.0) for r in rows)


def test_ship_teacher_only_exports_just_the_teacher(tiny_run, tmp_path):
    """``ship --teacher-only``: a run whose students are not trained yet ships its teacher alone."""
    from kdlab.pretrained import store as pretrained
    from kdlab.pretrained.ship import ship_run

    root, _ = tiny_run
    preset = reproduce.apply_overrides(get_preset("mini-en"), TINY)
    ship_run(root, preset, n_check=2, models_root=tmp_path, teacher_only=True)
    assert pretrained.available(tmp_path) == ["mini-en/teacher"]
    assert "check/test-clean" in pretrained.card("mini-en", "teacher", root=tmp_path)["results"]


def test_reproduce_distils_students_from_a_shipped_teacher(tiny_run, tmp_path, monkeypatch):
    """``--set teacher_from=pretrained:mini-en/teacher``: no teacher is trained; the shipped one (float32 of
    its float16 weights) searches the N-best lists and teaches F-KD / S-KD, and shipping the run exports
    its students only."""
    from kdlab.checkpoint import sha256_file
    from kdlab.config import load_config
    from kdlab.errors import UserError
    from kdlab.pretrained import store as pretrained
    from kdlab.pretrained.ship import ship_run
    from kdlab.reproduce.adopt import check_folder, check_teacher_from
    from kdlab.reproduce.stages import checkpoint_of

    root, _ = tiny_run
    models = tmp_path / "models"
    ship_run(root, reproduce.apply_overrides(get_preset("mini-en"), TINY), n_check=2, models_root=models,
             teacher_only=True)
    monkeypatch.setenv("KDLAB_PRETRAINED", str(models))
    spec = "pretrained:mini-en/teacher"
    sets = [*TINY, f"teacher_from={spec}"]
    preset = reproduce.apply_overrides(get_preset("mini-en"), sets)
    run = tmp_path / "run"
    reproduce.run(preset, run, None, root.parent / "cache", jobs=1, overrides=sets)
    teacher = checkpoint_of(run / "ar")
    assert teacher.name == "pretrained.pt" and not (run / "ar" / "train.log").exists()
    shipped = torch.load(models / "mini-en" / "teacher" / "model.pt", weights_only=True)["model"]
    assert all(torch.equal(v, shipped[k].float()) for k, v in _weights(teacher).items())
    header = json.loads((run / "ar" / "nbest.jsonl").read_text().splitlines()[0])
    assert header["teacher_sha256"] == sha256_file(teacher)
    for name in ("nar-same-fkd", "nar-smaller-skd"):
        assert load_config(run / name / "config.yaml").kd.teacher == str(teacher)
    sha = pretrained.card("mini-en", "teacher", root=models)["sha256"]
    ship_run(run, preset, n_check=2, models_root=models, force=True)
    assert pretrained.card("mini-en", "teacher", root=models)["sha256"] == sha  # not re-exported
    assert f"teacher_from={spec}" in pretrained.card("mini-en", "student-same-skd", root=models)["command"]
    with pytest.raises(UserError, match="not an AR teacher"):
        check_teacher_from("pretrained:mini-en/student-same-skd", "mini-en")
    with pytest.raises(UserError, match="trained on corpus mini-en, but this run's corpus is mini-zh"):
        check_teacher_from(spec, "mini-zh")
    check_folder(run / "ar", spec)  # the same teacher: the run resumes
    with pytest.raises(UserError, match="holds the teacher trained there"):
        check_folder(root / "ar", spec)


def test_reproduce_rejects_unknown_override():
    with pytest.raises(PresetError, match="FIELD=VALUE"):
        reproduce.apply_overrides(get_preset("mini-en"), ["no_such_field=1"])


@pytest.mark.parametrize("item, match", [
    ("teacher_epochs=abc", "teacher_epochs: expected int, got 'abc'"),
    ("teacher_epochs=0", "teacher_epochs: must be >= 1"),
    ("lr=.nan", "lr: must be a finite number"),
    ("finetune_lr=-1", "finetune_lr: must be > 0"),
    ("specaug=maybe", "specaug: expected bool"),
    ("beams=[1, 0]", "beams: expected a list of positive integers"),
    ("corpus={hours: abc}", "corpus.hours: expected float"),
    ("corpus={hourz: 1}", "unknown config key 'corpus.hourz'"),
    ("corpus=3", "corpus: expected a mapping"),
    ("train={lr: .nan}", "train.lr: must be a finite number"),
    ("train={grad_clip: .nan}", "train.grad_clip: must be a finite number"),
    ("data={num_workers: two}", "data.num_workers: expected int"),
    ("fkd={gamma_dec: x}", "fkd.gamma_dec: expected float"),
    ("student_model={dropout: .inf}", "student_model.dropout: must be a finite number"),
])
def test_every_set_value_is_type_checked_before_any_stage(item, match):
    with pytest.raises(PresetError, match=match):
        reproduce.apply_overrides(get_preset("mini-en"), [item])


def test_typed_overrides_keep_their_values():
    preset = reproduce.apply_overrides(get_preset("mini-en"), TINY + ["lr=1e-3", "train={grad_clip: 0}"])
    assert preset.beams == (1, 3) and preset.lr == 1e-3 and preset.corpus.hours == 0.015
    assert preset.corpus.n_dev == 6 and preset.train == {"grad_clip": 0.0} and preset.teacher_epochs == 2


def test_preset_kd_changes_reach_their_stage_and_a_misspelt_one_fails_in_one_line(tmp_path):
    """``fkd`` / ``skd`` change the paper's weights of one stage only (eq 13); an unknown name is refused."""
    from kdlab.errors import UserError
    from kdlab.reproduce import stages as st

    preset = reproduce.apply_overrides(get_preset("mini-en"), ["fkd={gamma_dec: 0.05}", "skd={gamma_enc: 0.7}"])
    kd = {c: st.student_config(preset, tmp_path / "c", st.StudentRun("same", c), tmp_path / "ar",
                               tmp_path / "t.pt")["kd"] for c in ("fkd", "skd")}
    assert (kd["fkd"]["gamma_dec"], kd["fkd"]["gamma_enc"], kd["fkd"]["beta_s"]) == (0.05, 0.5, 0.0)
    assert (kd["skd"]["gamma_dec"], kd["skd"]["gamma_enc"], kd["skd"]["beta_s"]) == (0.5, 0.7, 1.0)
    with pytest.raises(UserError, match="unknown config key 'fkd.gama_dec'"):  # refused before any stage
        reproduce.apply_overrides(get_preset("mini-en"), ["fkd={gama_dec: 0.1}"])
    with pytest.raises(UserError, match="stage2='restart'; choose one of"):
        st.check_preset(reproduce.apply_overrides(get_preset("mini-en"), ["stage2=restart"]))


def test_stage2_seeding_copies_stage1_once_and_redoes_an_interrupted_copy(tmp_path):
    from kdlab.reproduce.stages import seed_from_stage1

    fkd, skd = tmp_path / "fkd", tmp_path / "skd"
    fkd.mkdir()
    for name in ("epoch-3.pt", "epoch-4.pt", "metrics.csv"):
        (fkd / name).write_text(name)
    skd.mkdir()
    (skd / "epoch-3.pt").write_text("partial")  # a copy killed before stage 1's last checkpoint
    seed_from_stage1(fkd, skd)
    assert sorted(p.name for p in skd.iterdir()) == ["epoch-3.pt", "epoch-4.pt", "metrics.csv"]
    assert (skd / "epoch-3.pt").read_text() == "epoch-3.pt"
    (skd / "epoch-5.pt").write_text("stage 2")  # trained on: never seeded again
    (skd / "metrics.csv").write_text("stage 2 rows")
    seed_from_stage1(fkd, skd)
    assert (skd / "metrics.csv").read_text() == "stage 2 rows"
    with pytest.raises(FileNotFoundError, match="no epoch checkpoint of stage 1"):
        seed_from_stage1(tmp_path / "missing", skd)


def test_stage2_modes_continue_stage1_or_finetune_its_average(tmp_path):
    """"continue": the S-KD run's last epoch is stage 1's + stage 2's, no init_from (the folder is seeded
    from stage 1's run); "finetune": stage 2's epochs alone from stage 1's averaged model at finetune_lr."""
    from kdlab.reproduce import stages as st

    args = (tmp_path / "c", st.StudentRun("same", "skd"), tmp_path / "ar", tmp_path / "t.pt", tmp_path / "f.pt")
    cont_cfg = st.student_config(get_preset("mini-en"), *args)
    cont = cont_cfg["train"]
    assert cont["epochs"] == 5 and "init_from" not in cont and cont["lr"] == 3e-3
    # the students' CMLM option is written into their configs; the AR teacher's config has none
    assert cont_cfg["model"]["config"] == {"cmlm_abs_pos": True}
    assert "config" not in st.teacher_config(get_preset("mini-en"), tmp_path / "c")["model"]
    fine = st.student_config(reproduce.apply_overrides(get_preset("mini-en"), ["stage2=finetune"]), *args)["train"]
    assert (fine["epochs"], fine["init_from"], fine["lr"], fine["warmup_steps"]) == (1, str(tmp_path / "f.pt"),
                                                                                     5e-4, 0)


def test_train_only_graph_has_every_training_stage_and_no_decoding(tmp_path):
    """``--train-only`` (e.g. on a GPU machine) keeps the training graph and drops the decodings, which a
    later call adds (finished stages skipped); the large presets pass their loader workers and N-best batch."""
    from kdlab.reproduce import stages as st

    preset = get_preset("mini-en-large")
    splits = ["test-clean", "test-other"]
    full = {j.name for j in reproduce.stage_graph(preset, tmp_path, tmp_path / "c", splits)}
    train = {j.name for j in reproduce.stage_graph(preset, tmp_path, tmp_path / "c", splits, train_only=True)}
    assert train == {j.name for j in st.training_jobs(preset, tmp_path / "c", tmp_path)} and train < full
    assert {"prepare", "ar", "nbest", "nar-same-skd"} <= train and all(n.startswith("decode") for n in full - train)
    cfg = st.student_config(preset, tmp_path / "c", st.StudentRun("same", "skd"), tmp_path / "ar", tmp_path / "t.pt")
    assert cfg["data"]["num_workers"] == 2 and cfg["kd"]["nbest_max_frames"] == 40000
    assert get_preset("mini-zh-large").corpus.lang == "zh" and get_preset("mini-zh-large").tokenizer == "char"


@pytest.fixture(scope="module")
def tiny_families(tiny_run):
    """Every KD family on the tiny run's corpus, beside its AR teacher (one epoch per run)."""
    import dataclasses

    from kdlab.reproduce import families as fam

    root, _ = tiny_run
    preset = reproduce.apply_overrides(get_preset("mini-en"), TINY)
    saved = dict(fam.FAMILY_RUNS)
    fam.FAMILY_RUNS.update({k: [dataclasses.replace(r, epochs=1) for r in runs] for k, runs in saved.items()})
    try:
        md = reproduce.run_families(preset, root, ["all"], None, root.parent / "cache", jobs=1)
    finally:
        fam.FAMILY_RUNS.update(saved)
    return root, preset, md


def test_reproduce_families_train_decode_and_compare_every_family(tiny_families):
    from kdlab.config import load_config
    from kdlab.reproduce.families import FAMILY_RUNS

    root, _, md = tiny_families
    records = json.loads((root / "results" / "families.json").read_text())["records"]
    names = [r.name for runs in FAMILY_RUNS.values() for r in runs]
    assert [r["run"] for r in records] == names
    for r in records:  # every method of every run decoded on both test sets
        assert all(r[f"{s}_{m}"] >= 0 for s in ("test", "test_other")
                   for m in next(x.methods for x in FAMILY_RUNS[r["family"]] if x.name == r["run"]))
    chunks = json.loads((root / "results" / "families.json").read_text())["chunks"]
    assert [(r["run"], r["chunk"]) for r in chunks] == [(n, c) for n in ("stream-none", "stream-token", "stream-layer",
                                                                "stream-layer-token") for c in (2, 4, 8, 16, "full")]
    assert all(r["test"] >= 0 and r["test_other"] >= 0 for r in chunks) and "against chunk size" in md
    trained = next(r for r in chunks if r["run"] == "stream-layer" and r["trained"])
    assert trained["test"] == next(r for r in records if r["run"] == "stream-layer")["test_ctc_greedy"]
    rel = {r["run"]: r.get("test_rel") for r in records}
    assert rel["inter-none"] is None and rel["inter-kd"] is not None and rel["rnnt-teacher"] is None
    assert "### Inter-KD" in md and "### Streaming" in md and "### Transducers" in md
    # the transducer teacher starts from the AR teacher's encoder; the KD students name their teachers
    teacher_cfg = load_config(root / "families" / "rnnt-teacher" / "config.yaml")
    assert teacher_cfg.train.init_encoder_from.endswith("ar/avg-1.pt")
    onebest = load_config(root / "families" / "rnnt-onebest" / "config.yaml")
    assert onebest.kd.method == "onebest" and "families/rnnt-teacher" in onebest.kd.teacher
    layer = load_config(root / "families" / "stream-layer" / "config.yaml")
    assert layer.model.config["chunk_size"] > 0 and layer.kd.method == "layer"


def test_ship_families_exports_reverifiable_family_models(tiny_families, tmp_path):
    from kdlab.pretrained import store as pretrained
    from kdlab.pretrained.check import verify
    from kdlab.pretrained.ship import ship_families

    root, preset, _ = tiny_families
    ship_families(root, preset, ["inter", "rnnt"], n_check=2, models_root=tmp_path)
    shipped = pretrained.available(tmp_path)
    assert "mini-en/inter-kd" in shipped and "mini-en/rnnt-onebest" in shipped
    card = pretrained.card("mini-en", "rnnt-onebest", root=tmp_path)
    assert card["family"] == "rnnt" and "--family rnnt" in card["recipe"]
    assert set(card["results"]["check/test-clean"]) == {"rnnt_greedy", "rnnt_beam4"}
    assert all(r.agrees(0.0) for r in verify("mini-en/inter-kd", root=tmp_path))
