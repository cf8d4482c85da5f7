"""The training stages of ``kdlab reproduce``: corpus, AR teacher, NAR students (L_jca, +F-KD, ++S-KD).

Every stage is resumable: a finished stage (its ``DONE`` marker) is skipped, an interrupted training run
resumes from its last epoch checkpoint.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from pathlib import Path

from kdlab.reproduce_presets import ReproducePreset

DONE = "DONE"


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


def log(msg: str) -> None:
    print(f"[reproduce {time.strftime('%H:%M:%S')}] {msg}", flush=True)


def is_done(folder: Path) -> bool:
    return (folder / DONE).is_file()


def mark_done(folder: Path, info: dict) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    tmp = folder / (DONE + ".tmp")
    tmp.write_text(json.dumps(info, indent=1))
    tmp.replace(folder / DONE)


def prepare_corpus(preset: ReproducePreset, data_root: Path | None, cache: Path) -> Path:
    """The corpus folder (train/dev/test.jsonl): synthesised, or prepared from ``data_root``."""
    spec = preset.corpus
    if spec.kind == "synth":
        from kdlab.data.synth import synthesize_corpus

        out = cache / "corpora" / f"{preset.name}-{spec.hours:g}h"
        log(f"corpus: synthesising {spec.lang} ({spec.hours:g} h train) into {out}")
        synthesize_corpus(out, spec.lang, seed=spec.seed, train_hours=spec.hours, n_dev=spec.n_dev,
                          n_test=spec.n_test)
        return out
    if data_root is None:
        raise SystemExit(f"preset {preset.name}: give --data-root pointing at the {spec.kind} corpus")
    from kdlab.data import prepare

    out = cache / "corpora" / preset.name
    if not (out / "train.jsonl").is_file():
        log(f"corpus: preparing {spec.kind} from {data_root} into {out}")
        fn = prepare.prepare_librispeech if spec.kind == "librispeech" else prepare.prepare_aishell
        fn(data_root, out)
    return out


def base_config(preset: ReproducePreset, corpus: Path, kind: str, model: str, epochs: int) -> dict:
    """Experiment config (nested dict) shared by the teacher and the students."""
    return {
        "data": {"corpus": str(corpus), "tokenizer": preset.tokenizer, "vocab_size": max(preset.vocab_size, 1),
                 "speed_perturb": preset.speed_perturb, "specaug": preset.specaug,
                 "feature_cache": str(corpus / "fbank-cache")},
        "model": {"kind": kind, "preset": model},
        "train": {"epochs": epochs, "lr": preset.lr, "warmup_steps": preset.warmup_steps,
                  "max_frames": preset.max_frames, "average_last": preset.average_last,
                  "keep_last": max(preset.average_last, 1), **preset.train},
    }


def train_stage(name: str, cfg_dict: dict, run_dir: Path) -> Path:
    """Train (or resume, or skip) one run; returns its averaged checkpoint."""
    from kdlab.checkpoint import epoch_checkpoints
    from kdlab.config import config_from_dict
    from kdlab.train import fit

    if is_done(run_dir):
        log(f"{name}: done already, skipping")
        return Path(json.loads((run_dir / DONE).read_text())["checkpoint"])
    cfg = config_from_dict({"name": name, **cfg_dict})
    log(f"{name}: training {cfg.model.kind} {cfg.model.preset} for {cfg.train.epochs} epochs in {run_dir}")
    started = time.perf_counter()
    result = fit(cfg, run_dir, resume=True)
    ckpt = Path(result.get("averaged") or epoch_checkpoints(run_dir)[-1])  # epoch-10 after epoch-9
    mark_done(run_dir, {"checkpoint": str(ckpt), "seconds": round(time.perf_counter() - started, 1),
                        "dev_loss": result.get("dev_loss"), "dev_acc": result.get("dev_acc")})
    return ckpt


def teacher_stage(preset: ReproducePreset, corpus: Path, root: Path) -> Path:
    cfg = base_config(preset, corpus, "ar", preset.teacher, preset.teacher_epochs)
    return train_stage("ar", cfg, root / "ar")


def student_config(preset: ReproducePreset, corpus: Path, run: StudentRun, teacher: Path,
                   fkd_ckpt: Path | None) -> dict:
    """L_jca baseline, stage 1 (+F-KD from scratch) or stage 2 (++S-KD fine-tuning of stage 1)."""
    model = preset.students[run.size]
    epochs = {"ljca": preset.student_epochs + preset.finetune_epochs, "fkd": preset.student_epochs,
              "skd": preset.finetune_epochs}[run.criterion]
    cfg = base_config(preset, corpus, "maskctc", model, epochs)
    cfg["data"]["tokenizer_from"] = str(teacher.parent)
    cfg["data"]["cmvn_from"] = str(teacher.parent)
    kd_common = {"enabled": True, "teacher": str(teacher), "nbest": preset.nbest, "beam": max(preset.nbest, 10)}
    if run.criterion == "fkd":  # paper stage 1: beta_F=1, beta_S=0, gamma_enc=0.5, gamma_dec=0.3
        cfg["kd"] = {**kd_common, "beta_f": 1.0, "beta_s": 0.0, "gamma_enc": 0.5, "gamma_dec": 0.3}
    elif run.criterion == "skd":  # paper stage 2: beta_F=beta_S=1, gamma_enc=gamma_dec=0.5
        cfg["kd"] = {**kd_common, "beta_f": 1.0, "beta_s": 1.0, "gamma_enc": 0.5, "gamma_dec": 0.5,
                     "nbest_cache": str(teacher.parent / "nbest.jsonl")}
        cfg["train"].update(init_from=str(fkd_ckpt), lr=preset.finetune_lr, warmup_steps=0)
    return cfg


def student_stages(preset: ReproducePreset, corpus: Path, root: Path, teacher: Path) -> dict[str, Path]:
    """Train the six students of Table 1; returns {run name: averaged checkpoint}."""
    ckpts: dict[str, Path] = {}
    for size in preset.students:
        for criterion in CRITERIA:
            run = StudentRun(size, criterion)
            fkd = ckpts.get(StudentRun(size, "fkd").name)
            cfg = student_config(preset, corpus, run, teacher, fkd)
            ckpts[run.name] = train_stage(run.name, cfg, root / run.name)
    return ckpts
