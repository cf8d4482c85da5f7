"""Notebook 05's CPU setup: the shipped teacher is adopted (not trained) and every student starts from one
shipped checkpoint, so the runs differ by their loss alone. (The whole CPU path, minutes long, is measured in
docs/RESULTS.md; here its two mechanisms run on the tiny corpus.)"""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")

from pathlib import Path

import torch

from kdlab.checkpoint import load_model_from_checkpoint
from kdlab.explore import training
from kdlab.widgets.training import LiveCurves


def test_cpu_setup_adopts_the_teacher_and_starts_every_student_from_one_checkpoint(tiny_corpus_en: Path,
                                                                                    tmp_path: Path) -> None:
    setup = training.choose_setup(device="cpu")
    assert setup.preset.teacher_from == training.CPU_TEACHER and setup.student_init == training.CPU_STUDENT_INIT
    assert "adopted, not trained" in setup.describe()
    lab = training.TrainingLab(setup, tiny_corpus_en, tmp_path / "runs")
    live = LiveCurves("teacher")
    teacher = lab.train_teacher(on_epoch=live)
    assert live.calls == 1 and lab.metrics("ar") == []  # nothing trained: no learning curves
    adopted = load_model_from_checkpoint(str(teacher.checkpoint), device="cpu")[0].state_dict()
    shipped = load_model_from_checkpoint(training.CPU_TEACHER, device="cpu")[0].state_dict()
    assert adopted.keys() == shipped.keys() and all(torch.equal(adopted[k], shipped[k]) for k in shipped)
    assert lab.train_teacher() == teacher  # adopted once; the same run folder afterwards
    for criterion in ("ljca", "fkd"):
        assert lab.student_config(criterion)["train"]["init_from"] == training.CPU_STUDENT_INIT
