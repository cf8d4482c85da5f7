"""Training runs for the notebooks: the device's setup, a small synthesized corpus, the AR teacher and the
Mask-CTC students of Table 1 (L_jca, +F-KD stage 1, ++S-KD stage 2) trained with :func:`kdlab.training.fit.fit`,
and their Table 1 analogue.

The configs come from ``kdlab reproduce`` (:func:`kdlab.reproduce.stages.teacher_config` /
:func:`~kdlab.reproduce.stages.student_config` over a :class:`~kdlab.reproduce.presets.ReproducePreset`);
this module only shrinks the preset to the machine and sets the KD weights of eq 10 and eq 13:

    L = L_jca + γ_enc (β_F L_F-KD + β_S L_S-KD)_enc + γ_dec (β_F L_F-KD + β_S L_S-KD)_dec

A run folder is named after a digest of its config: training the same config again reuses the finished run,
a changed weight or preset trains a new one.
"""

from __future__ import annotations

import contextlib
import csv
import hashlib
import io
import json
import os
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

from kdlab.pretrained.store import REPO_ROOT
from kdlab.reproduce.presets import MINI_EN, PRESETS, CorpusSpec, ReproducePreset
from kdlab.reproduce.stages import (
    CRITERIA,
    TEACHER,
    StudentRun,
    checkpoint_of,
    is_done,
    mark_done,
    seed_from_stage1,
    student_config,
    teacher_config,
)

CACHE_DIR = REPO_ROOT / "data" / "cache" / "notebook-05"
STAGE2_TEXT = {"continue": "continuing stage 1's run", "finetune": "from stage 1, lr {lr:g}"}
SMOKE_PREFIX = "kdlab-notebook-05-smoke-"  # + process id: the smoke run's temporary folder
TEST_SETS = ("test", "test-other")  # the synthesized corpus's clean and "other" test sets
# A model small enough for a one-epoch smoke run (ModelConfig fields over the presets).
SMOKE_MODEL = {"d_model": 32, "heads": 2, "ffn_dim": 64, "enc_blocks": 1, "dec_blocks": 1, "cnn_kernel": 3,
               "subsample_channels": 8}
# The CPU setup trains no teacher and no student from scratch: from scratch nothing recognises speech within
# minutes (the shipped same-size student needed 16 epochs of 6 h). It adopts the shipped teacher and starts
# every student from the shipped same-size L_jca student, so the runs differ by their loss alone.
CPU_TEACHER = "pretrained:mini-en/teacher"
CPU_STUDENT_INIT = "pretrained:mini-en/student-same-ljca"


@dataclass(frozen=True)
class Setup:
    """What the notebook trains: corpus, model sizes and epochs (a shrunk ``preset``) on ``device``."""

    name: str  # smoke | cpu | gpu
    device: str  # cpu | cuda
    preset: ReproducePreset  # corpus, teacher / student model presets, epochs, learning rates, batches
    size: str = "smaller"  # the student size trained: "same" (the teacher's preset) | "smaller"
    model: dict = field(default_factory=dict)  # ModelConfig fields over every run's preset ({}: none)
    nbest: int = 10  # |Ω| of eq 8-9 and the teacher's beam for the N-best search
    student_init: str = ""  # checkpoint every student starts from (train.init_from; "": from scratch)
    log_interval: int = 10  # optimiser steps between the per-step rows of metrics.csv
    note: str = ""

    def describe(self) -> str:
        """A few lines: the device, the corpus and what is trained how long."""
        p, c = self.preset, self.preset.corpus
        student = p.students[self.size]
        model = f" (every model overridden by {self.model})" if self.model else ""
        return "\n".join([
            f"setup {self.name!r} on {self.device}: {self.note}",
            f"corpus: synthesized mini-{c.lang}, {c.hours:g} h of training audio, {c.n_dev} dev and {c.n_test} "
            f"test utterances per condition",
            (f"teacher: AR {p.teacher}, the shipped {p.teacher_from} (adopted, not trained)" if p.teacher_from
             else f"teacher: AR {p.teacher}, {p.teacher_epochs} epochs")
            + f"; student: Mask-CTC {student} ({self.size}){model}"
            + (f", every student starting from {self.student_init}" if self.student_init else ""),
            f"student epochs: L_jca {p.student_epochs + p.finetune_epochs}, stage 1 (+F-KD) {p.student_epochs}, "
            f"stage 2 (++S-KD) {p.finetune_epochs} ({STAGE2_TEXT.get(p.stage2, p.stage2).format(lr=p.finetune_lr)})",
            f"batches of {p.max_frames} (teacher) / {p.student_max_frames or p.max_frames} (students) feature "
            f"frames; N-best |Ω| = {self.nbest}",
        ])


def _cpu_preset() -> ReproducePreset:
    """mini-en for a few minutes on one CPU thread: the shipped teacher (no teacher training), students that
    continue the shipped same-size L_jca student (:data:`CPU_STUDENT_INIT`) on 0.3 h of synthesized speech,
    2 + 1 epochs at a constant, low learning rate (no warm-up: the start is a trained model), 30 s batches.
    The synthesized test / test-other sets are the first 60 utterances of mini-en's (the shipped check sets
    are their first 20): held out for the teacher and the shipped students alike."""
    return replace(MINI_EN, name="notebook-cpu", corpus=CorpusSpec(kind="synth", lang="en", hours=0.3, n_dev=20,
                                                                  n_test=60),
                   teacher_from=CPU_TEACHER, student_epochs=2, finetune_epochs=1, lr=2e-4, warmup_steps=0,
                   max_frames=3000, student_max_frames=3000, average_last=1)


def _smoke_preset() -> ReproducePreset:
    """A minuscule corpus and one epoch per run: the notebook's code path in seconds."""
    return replace(MINI_EN, name="notebook-smoke", corpus=CorpusSpec(kind="synth", lang="en", hours=0.02, n_dev=4,
                                                                    n_test=4),
                   teacher_epochs=1, student_epochs=1, finetune_epochs=1, warmup_steps=5, max_frames=1500,
                   student_max_frames=1500, average_last=1)


def default_device() -> str:
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"


def choose_setup(smoke: bool = False, device: str | None = None) -> Setup:
    """The run for this machine: ``mini-en-large`` on a GPU, a few-minute shrunk mini-en on a CPU, and a
    one-epoch toy in smoke mode (any device)."""
    device = device or default_device()
    if smoke:
        return Setup("smoke", device, _smoke_preset(), model=dict(SMOKE_MODEL), nbest=2, log_interval=1,
                     note="smoke mode: a toy corpus and a toy model, one epoch each (checks the code path only)")
    if device.startswith("cuda"):
        return Setup("gpu", device, PRESETS["mini-en-large"], size="same", nbest=10, log_interval=10,
                     note="a GPU is present: the mini-en-large preset of kdlab reproduce")
    return Setup("cpu", device, _cpu_preset(), size="same", nbest=4, log_interval=5,
                 student_init=CPU_STUDENT_INIT,
                 note="no GPU: the shipped teacher, and students continuing the shipped L_jca student for a few "
                      "minutes with and without KD (same start, same batches, different loss)")


# ----------------------------------------------------------------------------- corpus


def workspace(setup: Setup) -> Path:
    """Where corpus and runs go: ``data/cache/notebook-05`` (kept, so finished runs are reused), or in smoke
    mode a fresh temporary folder of this process (those of finished processes are removed)."""
    if setup.name != "smoke":
        return CACHE_DIR
    import shutil
    import tempfile

    for old in Path(tempfile.gettempdir()).glob(f"{SMOKE_PREFIX}*"):
        pid = old.name.removeprefix(SMOKE_PREFIX)
        if not pid.isdigit() or int(pid) == os.getpid() or not _alive(int(pid)):
            shutil.rmtree(old, ignore_errors=True)
    folder = Path(tempfile.gettempdir()) / f"{SMOKE_PREFIX}{os.getpid()}"
    folder.mkdir()
    return folder


def _alive(pid: int) -> bool:
    """Whether process ``pid`` exists (signal 0 checks without sending anything)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's process
        return True
    return True


def corpus_dir(setup: Setup, cache: str | Path | None = None) -> Path:
    """``<cache>/corpora/<preset>-<hours>h`` (cache: ``data/cache/notebook-05``)."""
    spec = setup.preset.corpus
    return Path(cache or CACHE_DIR) / "corpora" / f"{setup.preset.name}-{spec.hours:g}h"


def make_corpus(setup: Setup, cache: str | Path | None = None) -> Path:
    """Synthesize the setup's corpus (kept when already complete); returns its folder."""
    from kdlab.data.synth import synthesize_corpus

    spec, out = setup.preset.corpus, corpus_dir(setup, cache)
    workers = 1 if setup.device == "cpu" else max(1, min(8, (os.cpu_count() or 2) - 1))
    synthesize_corpus(out, spec.lang, seed=spec.seed, train_hours=spec.hours, n_dev=spec.n_dev,
                      n_test=spec.n_test, workers=workers, engines=spec.engines or None)
    return out


def corpus_summary(corpus: str | Path) -> list[dict]:
    """One row per split of a synthesized corpus: utterances, hours, voices (from its info.json)."""
    info = json.loads((Path(corpus) / "info.json").read_text())
    return [{"split": name, "utterances": s["utterances"], "hours": round(s["hours"], 3),
             "voices": len(s.get("voices", []))} for name, s in info["splits"].items()]


# ----------------------------------------------------------------------------- KD weights


@dataclass(frozen=True)
class KDWeights:
    """The weights of eq 10 and eq 13 for one stage."""

    gamma_enc: float
    gamma_dec: float
    beta_f: float
    beta_s: float

    @classmethod
    def paper(cls, criterion: str) -> KDWeights:
        """Section 4.2: stage 1 (``fkd``) β_F 1, β_S 0, γ_enc 0.5, γ_dec 0.3; stage 2 (``skd``) all 1 / 0.5."""
        from kdlab.kd.config import KDConfig

        stage = KDConfig.stage1 if criterion == "fkd" else KDConfig.stage2
        kd = stage("<teacher>")
        return cls(kd.gamma_enc, kd.gamma_dec, kd.beta_f, kd.beta_s)

    def label(self) -> str:
        return f"γ_enc {self.gamma_enc:g}, γ_dec {self.gamma_dec:g}, β_F {self.beta_f:g}, β_S {self.beta_s:g}"


# ----------------------------------------------------------------------------- runs


@dataclass(frozen=True)
class RunInfo:
    """A finished (or reused) training run."""

    name: str  # ar | nar-<size>-<criterion>
    criterion: str  # ljca for the teacher and the baseline | fkd | skd
    run_dir: Path
    checkpoint: Path
    weights: KDWeights | None = None
    label: str = ""  # unique within a TrainingLab: the name, its KD weights, and the folder when ambiguous


def run_label(name: str, weights: KDWeights | None) -> str:
    return name if weights is None else f"{name} ({weights.label()})"


@dataclass(frozen=True)
class Progress:
    """What an epoch callback receives: the run, the epoch just finished and every metrics.csv row so far."""

    name: str
    epoch: int
    epochs: int
    rows: list[dict]


EpochCallback = Callable[[Progress], None]


def read_metrics(run_dir: str | Path) -> list[dict]:
    """metrics.csv rows with numbers as floats (``kind``: step | epoch; empty cells left out)."""
    path = Path(run_dir) / "metrics.csv"
    if not path.is_file():
        return []
    with path.open(newline="") as f:
        return [_numbers(r) for r in csv.DictReader(f)]


def _numbers(row: dict) -> dict:
    out: dict = {"kind": row["kind"]}
    for k, v in row.items():
        if k != "kind" and v not in ("", None):
            out[k] = float(v)
    return out


def config_digest(cfg: dict) -> str:
    """Eight hex digits of the config's sha1 (run-folder suffix)."""
    return hashlib.sha1(json.dumps(cfg, sort_keys=True, default=str).encode()).hexdigest()[:8]


def train_run(name: str, cfg: dict, run_dir: Path, on_epoch: EpochCallback | None = None) -> Path:
    """Train ``cfg`` in ``run_dir`` (resumed when interrupted, skipped when done); returns its checkpoint.

    ``on_epoch`` gets a :class:`Progress` after every epoch (the rows of ``metrics.csv``)."""
    from kdlab.checkpoint import epoch_checkpoints
    from kdlab.config import config_from_dict
    from kdlab.training.fit import fit

    cfg = dict(cfg)
    continue_from = cfg.pop("continue_from", None)  # stage 2 resuming its stage-1 run (stages.seed_from_stage1)
    epochs = int(cfg["train"]["epochs"])
    if is_done(run_dir):
        if on_epoch is not None:
            on_epoch(Progress(name, epochs, epochs, read_metrics(run_dir)))
        return checkpoint_of(run_dir)

    def hook(epoch: int, _state: object, _metrics: dict) -> None:
        if on_epoch is not None:
            on_epoch(Progress(name, epoch, epochs, read_metrics(run_dir)))

    if continue_from:
        seed_from_stage1(Path(continue_from), run_dir)
    result = fit(config_from_dict({"name": name, **cfg}), run_dir, resume=True, on_epoch_end=hook)
    ckpt = Path(result.get("averaged") or epoch_checkpoints(run_dir)[-1])
    mark_done(run_dir, {"checkpoint": str(ckpt), "dev_loss": result.get("dev_loss"),
                        "dev_acc": result.get("dev_acc")})
    return ckpt


class TrainingLab:
    """The teacher and the students of one setup, their run folders under ``root`` and their decodings."""

    def __init__(self, setup: Setup, corpus: str | Path, root: str | Path | None = None) -> None:
        self.setup, self.corpus = setup, Path(corpus)
        self.root = Path(root) if root is not None else CACHE_DIR / "runs" / setup.name
        self.runs: dict[str, RunInfo] = {}  # by label, in training order
        self._decoded: dict[tuple, dict] = {}

    # --- configs
    def _adapt(self, cfg: dict) -> dict:
        """The setup's model overrides, log interval and device over a reproduce stage config."""
        cfg["train"].update(log_interval=self.setup.log_interval, device=self.setup.device, progress=True)
        if self.setup.model:
            cfg["model"]["config"] = {**cfg["model"].get("config", {}), **self.setup.model}
        return cfg

    def teacher_config(self) -> dict:
        return self._adapt(teacher_config(self.setup.preset, self.corpus))

    def student_config(self, criterion: str, weights: KDWeights | None = None,
                       fkd: RunInfo | None = None) -> dict:
        """L_jca baseline, stage 1 (+F-KD) or stage 2 (++S-KD from ``fkd``) with ``weights`` (eq 10, 13)."""
        teacher = self.teacher
        run = StudentRun(self.setup.size, criterion)
        cfg = student_config(self.setup.preset, self.corpus, run, teacher.run_dir, teacher.checkpoint,
                             fkd.checkpoint if fkd else None)
        if criterion != "ljca":
            w = weights or KDWeights.paper(criterion)
            cfg["kd"].update(asdict(w), nbest=self.setup.nbest, beam=max(self.setup.nbest, 2))
        if criterion == "skd" and fkd and self.setup.preset.stage2 == "continue":
            cfg["continue_from"] = str(fkd.run_dir)
        if self.setup.student_init and not cfg["train"].get("init_from"):  # stage 2 "finetune": fkd's model
            cfg["train"]["init_from"] = self.setup.student_init
        return self._adapt(cfg)

    # --- training
    @property
    def teacher(self) -> RunInfo:
        if TEACHER not in self.runs:
            raise RuntimeError("train the teacher first (train_teacher)")
        return self.runs[TEACHER]

    def _train(self, name: str, criterion: str, cfg: dict, weights: KDWeights | None,
               on_epoch: EpochCallback | None) -> RunInfo:
        run_dir = self.root / f"{name}-{config_digest(cfg)}"
        ckpt = train_run(name, cfg, run_dir, on_epoch)
        label = run_label(name, weights)
        if label in self.runs and self.runs[label].run_dir != run_dir:  # e.g. stage 2 of another stage 1
            label = f"{label} [{run_dir.name}]"
        self.runs[label] = RunInfo(name, criterion, run_dir, ckpt, weights, label)
        return self.runs[label]

    def train_teacher(self, on_epoch: EpochCallback | None = None) -> RunInfo:
        """The AR teacher (joint CTC/attention, eq 6); its folder also holds the tokenizer and CMVN. With the
        preset's ``teacher_from`` the shipped teacher is adopted instead (:func:`adopt_teacher`, no training)."""
        if self.setup.preset.teacher_from:
            return self.adopt_teacher(on_epoch)
        return self._train(TEACHER, "ljca", self.teacher_config(), None, on_epoch)

    def adopt_teacher(self, on_epoch: EpochCallback | None = None) -> RunInfo:
        """The shipped teacher ``preset.teacher_from`` as the teacher run: its tokenizer, CMVN and float32
        weights copied into a run folder (:mod:`kdlab.reproduce.adopt`); it has no learning curves."""
        from kdlab.reproduce.adopt import adopt_teacher

        spec = self.setup.preset.teacher_from
        cfg = self.teacher_config()
        run_dir = self.root / f"{TEACHER}-{config_digest({**cfg, 'teacher_from': spec})}"
        corpus_name = spec.removeprefix("pretrained:").split("/")[0]
        ckpt = adopt_teacher(spec, corpus_name, cfg, run_dir)
        if on_epoch is not None:
            on_epoch(Progress(TEACHER, 0, 0, []))
        self.runs[TEACHER] = RunInfo(TEACHER, "ljca", run_dir, ckpt, None, TEACHER)
        return self.runs[TEACHER]

    def train_student(self, criterion: str, weights: KDWeights | None = None,
                      on_epoch: EpochCallback | None = None, fkd: RunInfo | None = None) -> RunInfo:
        """One student: ``ljca`` (eq 6 alone), ``fkd`` (stage 1, eq 7 + 11) or ``skd`` (stage 2 from ``fkd``
        or the last stage-1 run, eq 7-12). ``weights`` default to the paper's for the stage."""
        if criterion not in CRITERIA:
            raise ValueError(f"unknown criterion {criterion!r}; expected one of {CRITERIA}")
        if criterion == "skd":
            fkd = fkd or self.latest("fkd")
        w = None if criterion == "ljca" else weights or KDWeights.paper(criterion)
        cfg = self.student_config(criterion, w, fkd)
        return self._train(StudentRun(self.setup.size, criterion).name, criterion, cfg, w, on_epoch)

    def latest(self, criterion: str) -> RunInfo:
        """The most recently trained run of ``criterion``."""
        found = [r for r in self.runs.values() if r.criterion == criterion and r.name != TEACHER]
        if not found:
            raise RuntimeError(f"no {criterion} student trained yet")
        return found[-1]

    def metrics(self, label: str) -> list[dict]:
        """metrics.csv rows of a trained run (by label, e.g. ``ar``)."""
        return read_metrics(self.runs[label].run_dir)

    def all_metrics(self) -> dict[str, list[dict]]:
        """metrics.csv rows of every trained run, by label, in training order."""
        return {label: read_metrics(r.run_dir) for label, r in self.runs.items()}

    def epoch_offsets(self) -> dict[str, int]:
        """Stage 2 continues stage 1: its epochs are drawn after the stage-1 epochs (in "continue" mode its
        run numbers them on already)."""
        if self.setup.preset.stage2 == "continue":
            return {}
        return {label: self.setup.preset.student_epochs for label, r in self.runs.items() if r.criterion == "skd"}

    # --- decoding
    def decode(self, run: RunInfo, set_name: str, p_thr: float = 0.99, K: int = 2, beam: int = 10) -> dict:
        """Error counts of one run on one set (teacher: joint beam 10; students: Algorithm 1 with B = ``beam``,
        ``p_thr``, ``K``), cached in memory and in the run folder."""
        key = self._key(run, set_name, p_thr, K, beam)
        method = key[2]
        if key not in self._decoded:
            out = run.run_dir / "decode" / f"{set_name}-{method}-p{p_thr:g}-K{K}"
            self._decoded[key] = _decode(run.checkpoint, set_name, method, p_thr, K, out, self.setup.device)
        return self._decoded[key]

    @staticmethod
    def _key(run: RunInfo, set_name: str, p_thr: float, K: int, beam: int) -> tuple:
        """Cache key of a decoding; the teacher's joint beam search ignores the Mask-CTC settings."""
        if run.name == TEACHER:
            return str(run.checkpoint), set_name, "attention_beam10", 0.99, 2
        return str(run.checkpoint), set_name, f"maskctc_beam{beam}", p_thr, K

    def decoded(self, run: RunInfo, set_name: str, p_thr: float, K: int, beam: int) -> bool:
        return self._key(run, set_name, p_thr, K, beam) in self._decoded

    def table1(self, p_thr: float = 0.99, K: int = 2, beam: int = 10, sets: Sequence[str] = TEST_SETS,
               decode: bool = True) -> list[dict] | None:
        """Table 1 analogue rows (error rate, I+D, relative reduction vs L_jca per set) of every trained run;
        ``decode=False`` returns None unless every decoding is cached already."""
        if not decode and not all(self.decoded(r, s, p_thr, K, beam) for r in self.runs.values() for s in sets):
            return None
        return table1_rows({label: {s: self.decode(r, s, p_thr, K, beam) for s in sets}
                            for label, r in self.runs.items()}, self.runs)


def _decode(ckpt: Path, set_name: str, method: str, p_thr: float, K: int, out: Path, device: str = "cpu") -> dict:
    """``kdlab decode`` in process (summary.json in ``out`` is reused)."""
    import argparse

    summary = out / "summary.json"
    if summary.is_file():
        return json.loads(summary.read_text())[method]
    from kdlab.evaluate.decode_cli import run_decode

    args = argparse.Namespace(ckpt=str(ckpt), methods=method, set=set_name, out=str(out), beam=10, ctc_weight=0.3,
                              end_rule="beam", p_thr=p_thr, K=K, max_frames=20000, limit=None, threads=0,
                              device=device)
    with contextlib.redirect_stdout(io.StringIO()):  # its one summary line per method: the table shows them
        result = run_decode(args)
    summary.write_text(json.dumps(result, indent=1) + "\n")
    return result[method]


def table1_rows(results: dict[str, dict[str, dict]], runs: dict[str, RunInfo]) -> list[dict]:
    """One row per run: model, criterion, KD weights, and per set the error rate, I+D and the relative error
    reduction against the L_jca baseline (the paper's Table 1 columns)."""
    from kdlab.reproduce.report import relative_reduction, run_labels

    base = next((results[label] for label, r in runs.items() if r.criterion == "ljca" and r.name != TEACHER), None)
    rows = []
    for label, per_set in results.items():
        run = runs[label]
        model, criterion = run_labels(run.name)
        row = {"model": model, "criterion": criterion, "KD weights": run.weights.label() if run.weights else "",
               "run": run.run_dir.name}
        for s, res in per_set.items():
            name = "WER" if res["unit"] == "word" else "CER"
            row[f"{s} {name}"] = round(res["rate"], 2)
            row[f"{s} I+D"] = round(res["i_plus_d"], 2)
            if base is not None and run.criterion in ("fkd", "skd"):
                red = relative_reduction(base[s]["rate"], res["rate"])
                row[f"{s} rel. red. %"] = None if red is None else round(red, 1)
        rows.append(row)
    return rows


# ----------------------------------------------------------------------------- verdicts and the shipped Table 1

SHIPPED_MODELS = ("teacher", "student-same-ljca", "student-same-skd", "student-smaller-ljca", "student-smaller-skd")
RECOGNISES_BELOW = 50.0  # an error rate (%) under which a model counts as recognising speech


def check_weights(weights: KDWeights, stage: int) -> None:
    """Refuse weights that make every KD term of eq 13 vanish: with γ_enc·β = γ_dec·β = 0 for all β (eq 10)
    nothing is distilled and the run would be the L_jca baseline (train that with criterion ``ljca``)."""
    from kdlab.kd.losses import term_weights

    used = term_weights(weights.beta_f, weights.beta_s, weights.gamma_enc, weights.gamma_dec)
    if not any(used.values()):
        raise ValueError(f"stage {stage}: every KD weight of eq 13 is zero ({weights.label()}): nothing to "
                         "distil; that run is the L_jca baseline")


def _rate_column(row: dict, set_name: str) -> str | None:
    """The error-rate column of ``set_name`` in a Table 1 row (``<set> WER`` or ``<set> CER``)."""
    return next((f"{set_name} {u}" for u in ("WER", "CER") if f"{set_name} {u}" in row), None)


def student_rates(rows: Sequence[dict], set_name: str) -> dict[str, float]:
    """{row label: error rate} of the Mask-CTC students (every row but the AR teacher's) on ``set_name``."""
    out = {}
    for r in rows:
        col = _rate_column(r, set_name)
        if r["model"] != "AR" and col is not None and r[col] is not None:
            out[f"{r['model']} {r['criterion']} {r.get('KD weights', '')}".strip()] = float(r[col])
    return out


def recognition_verdict(rows: Sequence[dict], set_name: str = "test", limit: float = RECOGNISES_BELOW) -> str:
    """One line computed from a Table 1 analogue: how many students stay under ``limit`` % error on
    ``set_name``, i.e. recognise speech at all (Table 1's A column)."""
    rates = student_rates(rows, set_name)
    if not rates:
        return f"no student decoded on {set_name}"
    good = sum(r < limit for r in rates.values())
    span = f"{min(rates.values()):.2f}–{max(rates.values()):.2f} %"
    if good == len(rates):
        return f"{set_name}: every student under {limit:g} % ({span}): they recognise speech"
    if good == 0:
        return (f"{set_name}: no student under {limit:g} % ({span}): runs this short do not recognise speech yet, "
                "so their KD comparison below says nothing about distillation")
    return f"{set_name}: {good} of {len(rates)} students under {limit:g} % ({span})"


def kd_verdicts(rows: Sequence[dict], set_name: str) -> list[str]:
    """Per KD student row: is its error rate on ``set_name`` below the L_jca student's of the same size
    (the relative reduction of Table 1, positive when KD helps)?"""
    from kdlab.reproduce.report import relative_reduction

    base = {r["model"]: r for r in rows if r["criterion"] == "L_jca" and r["model"] != "AR"}
    lines = []
    for r in rows:
        col = _rate_column(r, set_name)
        if r["criterion"] == "L_jca" or r["model"] not in base or col is None:
            continue
        a, b = float(r[col]), float(base[r["model"]][col])
        red = r.get(f"{set_name} rel. red. %", relative_reduction(b, a))  # the table's own figure when it has one
        red_text = "" if red is None else f", rel. red. {red:+.1f} %"
        lines.append(f"{set_name}, {r['model']}: {r['criterion']} {a:.2f} below L_jca {b:.2f}{red_text}? "
                     f"{'yes' if a < b else 'no'}")
    return lines


def shipped_table1(corpus: str = "mini-en",
                   sets: Sequence[str] = ("test-clean", "test-other", "test-unseen")) -> list[dict]:
    """The paper's Table 1 for the shipped models, from their cards (full test sets, measured by ``kdlab
    reproduce``): teacher with joint CTC/attention beam 10, students with Mask-CTC beam 10 (Algorithm 1)."""
    from kdlab.pretrained.store import available, card, parse_spec
    from kdlab.reproduce.eval import KIND_METHOD
    from kdlab.reproduce.report import CRITERION_LABEL, SIZE_LABEL

    rows = []
    for name in SHIPPED_MODELS:
        if f"{corpus}/{name}" not in available():
            continue
        c = card(*parse_spec(f"{corpus}/{name}"))
        size, criterion = ("AR", "ljca") if name == "teacher" else name.split("-")[1:]
        row = {"model": SIZE_LABEL.get(size, size), "criterion": CRITERION_LABEL[criterion],
               "params M": round(c["params"]["total"] / 1e6, 2)}
        method = KIND_METHOD[c["kind"]]
        for s in sets:
            res = c.get("results", {}).get(s, {}).get(method)
            unit = "WER" if c.get("unit", "word") == "word" else "CER"
            row[f"{s} {unit}"] = None if res is None else round(res["rate"], 2)
            row[f"{s} I+D"] = None if res is None else round(res["i_plus_d"], 2)
        rows.append(row)
    return rows
