"""The training stages of ``kdlab reproduce`` and their dependency graph.

Stages (jobs of :mod:`kdlab.reproduce.jobs`)::

    prepare (tokenizer + CMVN into ar/) ─┬─ ar (AR teacher) ─┬─ nbest (teacher N-best cache) ─┐
                                         │                   ├─ nar-same-fkd ─────────────────┴─ nar-same-skd
                                         │                   └─ nar-smaller-fkd ──────────────── nar-smaller-skd
                                         ├─ nar-same-ljca                          (skd also waits for nbest)
                                         └─ nar-smaller-ljca

With the preset's ``teacher_from`` (a shipped teacher, :mod:`kdlab.reproduce.adopt`) prepare and ar copy it
in instead of fitting and training.

The paper's students (Section 4.2) train in two stages: stage 1, L_jca + F-KD from scratch for 80 epochs;
stage 2, ++S-KD fine-tuning of the stage-1 model for 20 epochs. The L_jca baseline trains for 80 + 20
epochs, and on the way it keeps a **stage-1 checkpoint** (``avg-stage1.pt``: the average of the last
``average_last`` epoch checkpoints after ``student_epochs`` epochs), so that Table 1 compares +F-KD with
the baseline at stage 1's length and ++S-KD with the full-length baseline. While the learning curves are
still steep (the mini presets), a baseline trained 25 % longer than the F-KD student would otherwise
hide, or reverse, what F-KD gains. For the same reason stage 2 by default *continues* stage 1's run
(preset field ``stage2="continue"``, :func:`seed_from_stage1`): the same optimiser state and learning-rate
schedule as the baseline's epochs 81–100, so that the two differ by the loss alone.

Every stage is resumable: a finished stage (its ``DONE`` marker) is skipped, an interrupted training run
resumes from its last epoch checkpoint. A stage runs as ``python -m kdlab.reproduce.stages KIND --config
CFG.yaml --out FOLDER`` (KIND: prepare | train | nbest | adopt); its experiment config ``CFG.yaml`` and its log sit
side by side in the stage's folder (``ar/train.yaml`` and ``ar/train.log``, ``ar/nbest.yaml`` …).
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from kdlab.data.files import write_text_atomic
from kdlab.reproduce.jobs import Job, log
from kdlab.reproduce.presets import ReproducePreset

if TYPE_CHECKING:
    from kdlab.config import ExperimentConfig

DONE = "DONE"
STAGE1_FILE = "avg-stage1.pt"  # in an L_jca run folder: the baseline at stage 1's length
STAGE1_SUFFIX = "-stage1"  # model key of that checkpoint: nar-<size>-ljca-stage1 (decode/<key>/<set>/)
PREPARED = "PREPARED"  # in the teacher's folder: tokenizer and CMVN are fitted
NBEST_FILE = "nbest.jsonl"  # in the teacher's folder: the teacher's N-best lists for S-KD
TEACHER = "ar"  # the teacher's stage and run-folder name

# Per-epoch cost relative to an epoch of the teacher, for ordering the ready stages (rough, CPU-measured):
EPOCH_OVERHEAD = 0.1  # data loading and optimiser steps, whatever the model
KD_TEACHER_SHARE = 0.35  # the frozen teacher's live forward pass in a KD step


@dataclass(frozen=True)
class StudentRun:
    """One row of Table 1: a NAR student ``size`` ("same" | "smaller") trained with ``criterion``."""

    size: str
    criterion: str  # ljca | fkd | skd

    @property
    def name(self) -> str:
        return f"nar-{self.size}-{self.criterion}"


CRITERIA = ("ljca", "fkd", "skd")
CRITERION_LABEL = {"ljca": "L_jca", "fkd": "+L_F-KD", "skd": "++L_S-KD"}


def model_names(preset: ReproducePreset) -> list[str]:
    """The trained models (run folders): the teacher, then every student size × criterion."""
    return [TEACHER] + [StudentRun(size, c).name for size in preset.students for c in CRITERIA]


def stage1_name(size: str) -> str:
    """Model key of the L_jca baseline at stage 1's length: ``nar-<size>-ljca-stage1``."""
    return StudentRun(size, "ljca").name + STAGE1_SUFFIX


def is_stage1(name: str) -> bool:
    return name.endswith(STAGE1_SUFFIX)


def run_of(name: str) -> str:
    """The run folder of a model key (``nar-same-ljca-stage1`` → ``nar-same-ljca``; others: itself)."""
    return name.removesuffix(STAGE1_SUFFIX)


def eval_names(preset: ReproducePreset) -> list[str]:
    """The decoded models, in Table 1's order: the teacher, then per student size the full-length L_jca,
    the stage-1-length L_jca (``nar-<size>-ljca-stage1``), +F-KD and ++S-KD."""
    names = [TEACHER]
    for size in preset.students:
        runs = [StudentRun(size, c).name for c in CRITERIA]
        names += [runs[0], stage1_name(size), *runs[1:]]
    return names


def run_model(preset: ReproducePreset, name: str) -> str:
    """The model preset of a run (``ar`` → the teacher's, ``nar-<size>-…`` → that student size's)."""
    return preset.teacher if name == TEACHER else preset.students[name.split("-")[1]]


def is_done(folder: Path, marker: str = DONE) -> bool:
    return (folder / marker).is_file()


def mark_done(folder: Path, info: dict, marker: str = DONE) -> None:
    write_text_atomic(folder / marker, json.dumps(info, indent=1))


def checkpoint_of(run_dir: Path) -> Path:
    """The averaged checkpoint of a finished training stage (from its ``DONE`` marker)."""
    return Path(json.loads((run_dir / DONE).read_text())["checkpoint"])


def stage1_checkpoint_of(run_dir: Path) -> Path | None:
    """An L_jca run's stage-1 checkpoint: the one its ``DONE`` marker records, else ``<run>/avg-stage1.pt``
    (also one placed there by hand, to complete a run finished before the stage-1 checkpoint was kept);
    None when there is none."""
    marker = run_dir / DONE
    if marker.is_file():
        recorded = json.loads(marker.read_text()).get("stage1_checkpoint")
        if recorded and Path(recorded).is_file():
            return Path(recorded)
    path = run_dir / STAGE1_FILE
    return path if path.is_file() else None


def model_checkpoint(root: Path, name: str) -> Path:
    """The checkpoint a model key names: a run's averaged one, or (``…-ljca-stage1``) its stage-1 one."""
    if not is_stage1(name):
        return checkpoint_of(root / name)
    ckpt = stage1_checkpoint_of(root / run_of(name))
    if ckpt is None:
        raise FileNotFoundError(f"{root / run_of(name)}: no stage-1 checkpoint ({STAGE1_FILE})")
    return ckpt


def baseline_done(run_dir: Path) -> bool:
    """An L_jca run is finished when it is trained to full length and has its stage-1 checkpoint."""
    return is_done(run_dir) and stage1_checkpoint_of(run_dir) is not None


def prepare_corpus(preset: ReproducePreset, data_root: Path | None, cache: Path) -> Path:
    """The corpus folder (train/dev/test.jsonl …): synthesised, or prepared from ``data_root``."""
    spec = preset.corpus
    if spec.kind == "synth":
        from kdlab.data.synth import synthesize_corpus

        out = cache / "corpora" / f"{preset.name}-{spec.hours:g}h"
        log(f"corpus: synthesising {spec.lang} ({spec.hours:g} h train) into {out}")
        synthesize_corpus(out, spec.lang, seed=spec.seed, train_hours=spec.hours, n_dev=spec.n_dev,
                          n_test=spec.n_test, engines=spec.engines or None)
        return out
    if data_root is None:
        from kdlab.errors import UserError

        raise UserError(f"preset {preset.name}: give --data-root pointing at the {spec.kind} corpus")
    from kdlab.data import prepare

    out = cache / "corpora" / preset.name
    if not (out / "train.jsonl").is_file():
        log(f"corpus: preparing {spec.kind} from {data_root} into {out}")
        fn = prepare.prepare_librispeech if spec.kind == "librispeech" else prepare.prepare_aishell
        fn(data_root, out)
    return out


# ----------------------------------------------------------------------------- configs


def base_config(preset: ReproducePreset, corpus: Path, kind: str, model: str, epochs: int) -> dict:
    """Experiment config (nested dict) shared by the teacher and the students."""
    return {
        "data": {"corpus": str(corpus), "tokenizer": preset.tokenizer, "vocab_size": max(preset.vocab_size, 1),
                 "speed_perturb": preset.speed_perturb, "specaug": preset.specaug,
                 "feature_cache": str(corpus / "fbank-cache"), **preset.data},
        "model": {"kind": kind, "preset": model},
        "train": {"epochs": epochs, "lr": preset.lr, "warmup_steps": preset.warmup_steps,
                  "max_frames": preset.max_frames, "average_last": preset.average_last,
                  "keep_last": max(preset.average_last, 1), **preset.train},
    }


def teacher_config(preset: ReproducePreset, corpus: Path) -> dict:
    return base_config(preset, corpus, "ar", preset.teacher, preset.teacher_epochs)


STAGE2_MODES = ("continue", "finetune")


def student_epochs(preset: ReproducePreset, criterion: str) -> int:
    """The epochs a student's run trains: L_jca as long as stage 1 + stage 2 together (keeping its stage-1
    checkpoint on the way, see :func:`keep_stage1`); F-KD is stage 1, S-KD stage 2 (Section 4.2: 80 + 20
    epochs). See :func:`run_epochs` for the last epoch number of a run."""
    return {"ljca": preset.student_epochs + preset.finetune_epochs, "fkd": preset.student_epochs,
            "skd": preset.finetune_epochs}[criterion]


def run_epochs(preset: ReproducePreset, criterion: str) -> int:
    """``train.epochs`` of a student's run: the number of its last epoch. Stage 2 in the preset's
    "continue" mode numbers its epochs on from stage 1's (:func:`seed_from_stage1`)."""
    if criterion == "skd" and preset.stage2 == "continue":
        return preset.student_epochs + preset.finetune_epochs
    return student_epochs(preset, criterion)


def kd_section(preset: ReproducePreset, teacher_ckpt: Path, criterion: str) -> dict:
    """The ``kd:`` config of stage 1 (F-KD, :meth:`KDConfig.stage1`) or stage 2 (S-KD, :meth:`KDConfig.stage2`)
    with the paper's weights (eq 10, 13)."""
    from kdlab.config import to_dict
    from kdlab.kd.config import KDConfig

    search = {"nbest": preset.nbest, "beam": max(preset.nbest, 10), "nbest_max_frames": preset.nbest_max_frames}
    changes = kd_changes(preset, criterion)
    if criterion == "fkd":
        return to_dict(KDConfig.stage1(str(teacher_ckpt), **search, **changes))
    return to_dict(KDConfig.stage2(str(teacher_ckpt), **search, nbest_cache=str(teacher_ckpt.parent / NBEST_FILE),
                                   **changes))


def check_preset(preset: ReproducePreset) -> None:
    """One-line :class:`UserError` for a stage setting that would fail only when its stage starts."""
    from kdlab.errors import UserError

    if preset.stage2 not in STAGE2_MODES:
        raise UserError(f"preset {preset.name}: stage2={preset.stage2!r}; choose one of {list(STAGE2_MODES)}")
    for criterion in ("fkd", "skd"):
        kd_changes(preset, criterion)


def kd_changes(preset: ReproducePreset, criterion: str) -> dict:
    """The preset's changes to the paper's KD weights of a stage (``fkd`` / ``skd``); a one-line
    :class:`UserError` for a name that is no KDConfig field."""
    from dataclasses import fields

    from kdlab.errors import UserError
    from kdlab.kd.config import KDConfig

    changes = dict(getattr(preset, criterion))
    known = {f.name for f in fields(KDConfig)} - {"teacher", "enabled", "nbest_cache"}
    unknown = sorted(set(changes) - known)
    if unknown:
        raise UserError(f"preset {preset.name}: {criterion}={changes}: {unknown[0]!r} is not a KD setting "
                        f"(one of {sorted(known)})")
    return changes


def student_config(preset: ReproducePreset, corpus: Path, run: StudentRun, teacher_dir: Path,
                   teacher_ckpt: Path | None = None, fkd_ckpt: Path | None = None) -> dict:
    """L_jca baseline, stage 1 (+F-KD from scratch) or stage 2 (++S-KD fine-tuning of ``fkd_ckpt``).

    The tokenizer and CMVN come from the teacher's folder; KD needs ``teacher_ckpt``.
    """
    cfg = base_config(preset, corpus, "maskctc", preset.students[run.size], run_epochs(preset, run.criterion))
    if preset.student_model:
        cfg["model"]["config"] = dict(preset.student_model)
    cfg["train"]["max_frames"] = preset.student_max_frames or preset.max_frames
    cfg["data"]["tokenizer_from"] = str(teacher_dir)
    cfg["data"]["cmvn_from"] = str(teacher_dir)
    if run.criterion != "ljca":
        if teacher_ckpt is None:
            raise ValueError(f"{run.name}: knowledge distillation needs the teacher's checkpoint")
        cfg["kd"] = kd_section(preset, teacher_ckpt, run.criterion)
    if run.criterion == "skd" and fkd_ckpt is not None and preset.stage2 == "finetune":
        cfg["train"].update(init_from=str(fkd_ckpt), lr=preset.finetune_lr, warmup_steps=0)
    return cfg


def one_thread(cfg: dict) -> dict:
    """``cfg`` for a stage subprocess: one torch thread, no progress bars (its output goes to a log file)."""
    return {**cfg, "train": {**cfg.get("train", {}), "num_threads": 1, "progress": False}}


def write_stage_config(cfg: dict, path: Path) -> Path:
    """Write a stage's config (YAML) atomically; returns ``path``."""
    import yaml

    return write_text_atomic(path, yaml.safe_dump(cfg, sort_keys=False))


# ----------------------------------------------------------------------------- what a stage does


def prepare_stage(cfg_dict: dict, teacher_dir: Path) -> None:
    """Fit (or copy) the tokenizer and CMVN into the teacher's folder, once, before any training."""
    from kdlab.config import config_from_dict
    from kdlab.training.rundir import prepare_run

    started = time.perf_counter()
    prepare_run(config_from_dict(cfg_dict), teacher_dir)
    mark_done(teacher_dir, {"seconds": round(time.perf_counter() - started, 1)}, PREPARED)


def train_stage(name: str, cfg_dict: dict, run_dir: Path, stage1_epochs: int = 0,
                continue_from: Path | None = None) -> Path:
    """Train (or resume, or skip) one run; returns its averaged checkpoint.

    ``stage1_epochs`` > 0 (the L_jca baseline): train to that many epochs first and keep the stage-1
    checkpoint (:func:`keep_stage1`), then continue in the same folder to ``train.epochs``. The schedule
    is step-based and the sampler's order depends on the epoch number only, so raising ``train.epochs``
    on the resumed run continues it exactly as one run of the full length would go on.
    ``continue_from`` (stage 2 in "continue" mode): the stage-1 run this run resumes
    (:func:`seed_from_stage1`).
    """
    from kdlab.checkpoint import epoch_checkpoints
    from kdlab.config import config_from_dict
    from kdlab.training.fit import fit

    if is_done(run_dir) and (not stage1_epochs or stage1_checkpoint_of(run_dir) is not None):
        log(f"{name}: done already, skipping")
        if stage1_epochs:
            record_stage1(run_dir, stage1_checkpoint_of(run_dir))
        return checkpoint_of(run_dir)
    cfg = config_from_dict({"name": name, **cfg_dict})
    started = time.perf_counter()
    if continue_from is not None:
        seed_from_stage1(continue_from, run_dir)
    stage1 = keep_stage1(cfg, run_dir, stage1_epochs) if stage1_epochs else None
    if is_done(run_dir):  # a finished run that lacked its stage-1 checkpoint (kept epochs averaged now)
        return record_stage1(run_dir, stage1)
    log(f"{name}: training {cfg.model.kind} {cfg.model.preset} for {cfg.train.epochs} epochs in {run_dir}")
    result = fit(cfg, run_dir, resume=True)
    ckpt = Path(result.get("averaged") or epoch_checkpoints(run_dir)[-1])  # epoch-10 after epoch-9
    info = {"checkpoint": str(ckpt), "seconds": round(time.perf_counter() - started, 1),
            "dev_loss": result.get("dev_loss"), "dev_acc": result.get("dev_acc")}
    if stage1 is not None:
        info.update(stage1_checkpoint=str(stage1), stage1_epochs=stage1_epochs)
    mark_done(run_dir, info)
    return ckpt


def seed_from_stage1(stage1_dir: Path, run_dir: Path) -> None:
    """Stage 2 in "continue" mode: copy stage 1's kept epoch checkpoints and metrics into a stage-2 run folder
    that has no checkpoint yet, so that training resumes from stage 1's last epoch (its optimiser, schedule
    step and RNG included) with the stage-2 losses, and the final average takes the last ``average_last``
    epochs of both stages, as the L_jca baseline's one run does. Each file is copied atomically, stage 1's
    last checkpoint last: until it is there (an interrupted copy) the copy is done again."""
    from kdlab.checkpoint import epoch_checkpoints, epoch_number
    from kdlab.data.files import atomic_file

    sources = epoch_checkpoints(stage1_dir)
    if not sources:
        raise FileNotFoundError(f"{stage1_dir}: no epoch checkpoint of stage 1 to continue from")
    have = epoch_checkpoints(run_dir)
    if have and epoch_number(have[-1]) >= epoch_number(sources[-1]):
        return  # seeded already (and maybe trained on)
    for src in [stage1_dir / "metrics.csv", *sources]:
        if src.is_file():
            with open(src, "rb") as fin, atomic_file(run_dir / src.name, "wb") as fout:
                shutil.copyfileobj(fin, fout)
    log(f"{run_dir.name}: continues {stage1_dir.name} from {sources[-1].name}")


def record_stage1(run_dir: Path, stage1: Path | None) -> Path:
    """Add the stage-1 checkpoint to a finished run's ``DONE`` marker (when missing); returns the run's
    averaged checkpoint."""
    info = json.loads((run_dir / DONE).read_text())
    if stage1 is not None and info.get("stage1_checkpoint") != str(stage1):
        mark_done(run_dir, {**info, "stage1_checkpoint": str(stage1)})
    return Path(info["checkpoint"])


def stage1_window(run_dir: Path, epochs: int, average_last: int) -> list[Path]:
    """The epoch checkpoints that the stage-1 checkpoint averages: the last ``average_last`` (≥ 1) up to
    epoch ``epochs``."""
    first = max(epochs - max(average_last, 1), 0) + 1
    return [run_dir / f"epoch-{e}.pt" for e in range(first, epochs + 1)]


def keep_stage1(cfg: ExperimentConfig, run_dir: Path, epochs: int) -> Path:
    """Train ``run_dir`` to ``epochs`` epochs (resuming) and average its last ``average_last`` epoch
    checkpoints into ``<run>/avg-stage1.pt`` (atomically); kept as it is when present.

    The paper's L_jca baseline runs as long as stage 1 (F-KD, 80 epochs) and stage 2 (+S-KD, 20 epochs)
    together (Section 4.2); this checkpoint is the same baseline at stage 1's length, the fair reference
    of the +F-KD student (same epochs, same averaging).
    """
    import dataclasses

    from kdlab.checkpoint import CheckpointError, average_checkpoints, epoch_checkpoints, epoch_number
    from kdlab.training.fit import fit

    out = run_dir / STAGE1_FILE
    if out.is_file():
        return out
    window = stage1_window(run_dir, epochs, cfg.train.average_last)
    if not all(p.is_file() for p in window):
        kept = epoch_checkpoints(run_dir)
        last = epoch_number(kept[-1]) if kept else 0
        if last >= epochs:
            raise CheckpointError(
                f"{run_dir}: trained to epoch {last} without {STAGE1_FILE}, and the epoch checkpoints of stage 1 "
                f"({', '.join(p.name for p in window)}) are gone; put the average of those epochs there as "
                f"{STAGE1_FILE}, or delete the folder to train it again")
        log(f"{cfg.name}: stage 1, training to epoch {epochs} in {run_dir}")
        fit(dataclasses.replace(cfg, train=dataclasses.replace(cfg.train, epochs=epochs)), run_dir, resume=True)
    log(f"{cfg.name}: stage-1 checkpoint {out} (average of {', '.join(p.name for p in window)})")
    return average_checkpoints(window, out)


def nbest_stage(cfg_dict: dict, teacher_dir: Path) -> None:
    """Search the teacher's N-best lists for S-KD (``cfg_dict``: an S-KD student's config) into its cache.

    One stage builds the cache, so the two S-KD students never search it concurrently; they only read it.
    A stale cache (another teacher or setting) is searched again.
    """
    import dataclasses

    from kdlab.config import config_from_dict
    from kdlab.kd import build_distiller
    from kdlab.training.runtime import setup_runtime

    cfg = config_from_dict(cfg_dict)
    kd = dataclasses.replace(cfg.kd, on_mismatch="recompute")
    build_distiller(kd, teacher_dir, cfg.data.manifest("train"), setup_runtime(cfg.train).device, log)


def adopt_stage(cfg_dict: dict, teacher_dir: Path) -> None:
    """The shipped teacher ``cfg_dict["teacher_from"]`` as the finished teacher stage (:mod:`.adopt`)."""
    from kdlab.reproduce.adopt import adopt_teacher

    cfg = dict(cfg_dict)
    spec, corpus_name = cfg.pop("teacher_from"), cfg.pop("corpus_name")
    log(f"{TEACHER}: the shipped teacher {spec} ({adopt_teacher(spec, corpus_name, cfg, teacher_dir)})")


STAGES: dict[str, Callable[[dict, Path], object]] = {"prepare": prepare_stage, "nbest": nbest_stage,
                                                     "adopt": adopt_stage}


def run_stage(kind: str, cfg_dict: dict, out: Path) -> None:
    """Run one stage of ``kind`` with its experiment config (``name`` included)."""
    if kind == "train":
        cfg = dict(cfg_dict)
        continue_from = cfg.pop("continue_from", None)
        train_stage(cfg.pop("name"), cfg, out, int(cfg.pop("stage1_epochs", 0)),
                    Path(continue_from) if continue_from else None)
    else:
        STAGES[kind](cfg_dict, out)


# ----------------------------------------------------------------------------- stages as jobs


def stage_job(kind: str, name: str, folder: Path, log_path: Path, make_config: Callable[[], dict],
              done: Callable[[], bool], deps: tuple[str, ...], cost: float) -> Job:
    """A job running ``run_stage(kind, make_config(), folder)``: as a one-thread subprocess, or in process.

    ``make_config`` is called when the job starts (the checkpoints of its dependencies exist by then).
    """
    def command() -> list[str]:
        path = write_stage_config(one_thread(make_config()), log_path.with_suffix(".yaml"))
        return [sys.executable, "-m", "kdlab.reproduce.stages", kind, "--config", str(path), "--out", str(folder)]

    return Job(name, command, log_path, done, deps, cost, inline=lambda: run_stage(kind, make_config(), folder))


def model_cost(preset: ReproducePreset, model: str) -> float:
    """Rough compute of one epoch of ``model`` relative to the teacher (d·(ffn + 4d) per block)."""
    from kdlab.models.config import get_preset

    def weight(name: str) -> float:
        m = get_preset(name)
        return m.d_model * (m.ffn_dim + 4 * m.d_model) * (m.enc_blocks + m.dec_blocks)

    return weight(model) / weight(preset.teacher) + EPOCH_OVERHEAD


def student_cost(preset: ReproducePreset, run: StudentRun) -> float:
    kd = KD_TEACHER_SHARE if run.criterion != "ljca" else 0.0
    return student_epochs(preset, run.criterion) * (model_cost(preset, preset.students[run.size]) + kd)


def student_deps(run: StudentRun) -> tuple[str, ...]:
    """L_jca needs only the tokenizer/CMVN; F-KD the teacher; S-KD its F-KD model and the N-best cache."""
    return {"ljca": ("prepare",), "fkd": (TEACHER,),
            "skd": (StudentRun(run.size, "fkd").name, "nbest")}[run.criterion]


def student_job(preset: ReproducePreset, corpus: Path, root: Path, run: StudentRun) -> Job:
    teacher_dir, run_dir = root / TEACHER, root / run.name

    baseline = run.criterion == "ljca"

    def make_config() -> dict:
        teacher = checkpoint_of(teacher_dir) if not baseline else None
        fkd_dir = root / StudentRun(run.size, "fkd").name
        fkd = checkpoint_of(fkd_dir) if run.criterion == "skd" else None
        stage1 = {"stage1_epochs": preset.student_epochs} if baseline else {}
        if run.criterion == "skd" and preset.stage2 == "continue":
            stage1 = {"continue_from": str(fkd_dir)}
        return {"name": run.name, **stage1, **student_config(preset, corpus, run, teacher_dir, teacher, fkd)}

    done = (lambda: baseline_done(run_dir)) if baseline else (lambda: is_done(run_dir))
    return stage_job("train", run.name, run_dir, run_dir / "train.log", make_config, done,
                     student_deps(run), student_cost(preset, run))


def teacher_jobs(preset: ReproducePreset, corpus: Path, root: Path) -> list[Job]:
    """prepare (tokenizer + CMVN), the teacher's training, and its N-best cache for S-KD; with the preset's
    ``teacher_from``, prepare and teacher adopt that shipped teacher instead (:mod:`kdlab.reproduce.adopt`)."""
    folder = root / TEACHER
    first_size = next(iter(preset.students))

    def teacher() -> dict:
        return {"name": TEACHER, **teacher_config(preset, corpus)}

    def nbest_config() -> dict:
        run = StudentRun(first_size, "skd")
        return {"name": "nbest", **student_config(preset, corpus, run, folder, checkpoint_of(folder))}

    nbest = stage_job("nbest", "nbest", folder, folder / "nbest.log", nbest_config,
                      lambda: (folder / NBEST_FILE).is_file(), (TEACHER,), 1.0)
    if preset.teacher_from:  # a shipped teacher: "prepare" adopts it, the teacher stage then finds it done
        def adopt() -> dict:
            return {**teacher(), "teacher_from": preset.teacher_from, "corpus_name": preset.name}

        return [stage_job("adopt", name, folder, folder / "adopt.log", adopt, lambda: is_done(folder), deps, 0.1)
                for name, deps in (("prepare", ()), (TEACHER, ("prepare",)))] + [nbest]
    return [
        stage_job("prepare", "prepare", folder, folder / "prepare.log", teacher,
                  lambda: is_done(folder, PREPARED) or is_done(folder), (), 0.1),
        stage_job("train", TEACHER, folder, folder / "train.log", teacher, lambda: is_done(folder),
                  ("prepare",), preset.teacher_epochs * model_cost(preset, preset.teacher)),
        nbest,
    ]


def training_jobs(preset: ReproducePreset, corpus: Path, root: Path) -> list[Job]:
    """The whole training graph: teacher stages, then every student size × criterion."""
    students = [student_job(preset, corpus, root, StudentRun(size, c)) for size in preset.students for c in CRITERIA]
    return teacher_jobs(preset, corpus, root) + students


def main(argv: list[str] | None = None) -> int:
    """``python -m kdlab.reproduce.stages KIND --config STAGE.yaml --out FOLDER``: one stage, in this process."""
    import yaml

    parser = argparse.ArgumentParser(prog="python -m kdlab.reproduce.stages", description=main.__doc__)
    parser.add_argument("kind", choices=["train", *STAGES])
    parser.add_argument("--config", type=Path, required=True)
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args(argv)
    run_stage(args.kind, yaml.safe_load(args.config.read_text()), args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
