"""Training widgets (kdlab.widgets.training) on a tiny real run: fit's epoch callback drives the live curves,
a finished run is reused, and the panel's decoding settings select what the Table 1 analogue shows."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")

from pathlib import Path

import pytest
from widget_outputs import redrawn

from kdlab.explore import training
from kdlab.widgets.training import LiveCurves, TrainingPanel


@pytest.fixture(scope="module")
def lab(tiny_corpus_en: Path, tmp_path_factory: pytest.TempPathFactory) -> training.TrainingLab:
    setup = training.choose_setup(smoke=True, device="cpu")
    return training.TrainingLab(setup, tiny_corpus_en, tmp_path_factory.mktemp("runs"))


def test_epoch_callback_draws_live_curves(lab):
    live = LiveCurves("teacher")
    run = lab.train_teacher(on_epoch=live)
    epochs = lab.setup.preset.teacher_epochs
    assert run.checkpoint.is_file() and (run.run_dir / "DONE").is_file()
    assert live.calls == epochs and live.progress.value == live.progress.max == epochs
    assert live.last["name"] == "ar" and live.last["epochs"] == epochs
    rows = training.read_metrics(run.run_dir)
    assert live.last["rows"] == len(rows) and live.last["dev_loss"] == rows[-1]["dev_loss"]
    assert len(live.last["figure"].axes) == 3  # no KD terms for the teacher
    live.controls["log_y"].value = True
    assert live.last["log_y"] and live.last["figure"].axes[0].get_yscale() == "log"
    assert redrawn(live.output, "image/png")

    again = LiveCurves()
    assert lab.train_teacher(on_epoch=again) == run  # same config: the finished run is reused
    assert again.calls == 1 and again.label.value == f"ar: epoch {epochs}/{epochs}"


def test_kd_student_curves_show_the_kd_terms(lab):
    lab.train_teacher()  # reused when the first test ran in this process (under xdist it may not have)
    live = LiveCurves()
    run = lab.train_student("fkd", on_epoch=live)
    assert run.weights == training.KDWeights.paper("fkd")
    assert len(live.last["figure"].axes) == 4
    cfg = lab.student_config("fkd", training.KDWeights(0.7, 0.2, 1.0, 0.0))
    assert (cfg["kd"]["gamma_enc"], cfg["kd"]["gamma_dec"], cfg["kd"]["beta_s"]) == (0.7, 0.2, 0.0)
    assert cfg["data"]["tokenizer_from"] == str(lab.teacher.run_dir)


def test_panel_decodes_on_evaluate_only(lab):
    lab.train_teacher()  # the runs the table shows; reused when the tests above ran in this process
    lab.train_student("fkd")
    panel = TrainingPanel(lab)
    assert panel.weights(1) == training.KDWeights.paper("fkd")
    assert panel.controls["beta_s_1"].disabled and panel.weights(2).beta_s == 1.0
    panel.controls["gamma_enc_2"].value = 0.8
    assert panel.last["weights"][1].gamma_enc == 0.8
    panel.controls["beam"].value = 2
    assert panel.last["table"] is None  # nothing decoded with these settings yet
    panel.evaluate()
    table = panel.last["table"]
    assert [r["criterion"] for r in table] == ["L_jca", "+L_F-KD"]  # the teacher, then the stage-1 student
    assert all(0 <= r["test WER"] and 0 <= r["test-other I+D"] for r in table)
    panel.controls["beam"].value = 1
    assert panel.last["table"] is None
    panel.controls["beam"].value = 2
    assert panel.last["table"] == table  # cached: redrawn without decoding
    assert redrawn(panel.output)
