"""Ship the models of a finished ``kdlab reproduce`` run as pretrained models (``kdlab pretrained ship``).

For a run folder ``runs/reproduce-<preset>``: the check sets (first test utterances of each test split,
:mod:`kdlab.pretrained.check`), then per shipped model (the AR teacher, the L_jca and ++S-KD students of
both sizes) an export whose card holds the run's full-set results (``<run>/decode/<model>/<set>/summary.json``,
measured with the float32 checkpoint), the recipe and the corpus seed, and then the shipped (float16) model's
own figures on the check sets with its Table-1 method and CTC greedy — the figures the test suite re-checks.
``--family`` ships the runs of ``kdlab reproduce --family`` the same way (:func:`ship_families`).

Every model is written complete — weights, tokenizer, CMVN, card with all its figures — into a hidden staging
folder ``<models root>/.ship-<pid>-<random>/`` and only then renamed into place (:func:`_ship_models`), so a
killed ``ship`` leaves no model that looks finished; the staging folder of a dead ship is removed by the next.
"""

from __future__ import annotations

import json
import os
import shlex
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

from kdlab.data.manifest import read_manifest
from kdlab.evaluate.breakdown import engine_groups
from kdlab.pretrained.check import decode_row, write_check_set
from kdlab.pretrained.store import (
    PretrainedError,
    export,
    parse_spec,
    place_folder,
    pretrained_root,
    read_card,
    share_tokenizer,
    write_card,
)
from kdlab.reproduce.eval import DIAGNOSTIC, eval_sets, set_labels, table1_method
from kdlab.reproduce.presets import ReproducePreset
from kdlab.reproduce.stages import TEACHER, StudentRun, checkpoint_of, is_done

SHIPPED_CRITERIA = ("ljca", "skd")  # the baseline and the fully distilled student of each size
STAGE_PREFIX = ".ship-"  # staging folders in the models root: .ship-<pid>-<random>


@dataclass(frozen=True)
class ShipJob:
    """One model to ship: its checkpoint, shipped name, card fields and the methods of its check figures."""

    ckpt: Path
    name: str
    fields: dict
    methods: list[str]


def shipped_models(preset: ReproducePreset) -> dict[str, str]:
    """{run folder: shipped name}: ``ar`` → ``teacher``, ``nar-same-skd`` → ``student-same-skd``, …"""
    names = {TEACHER: "teacher"}
    for size in preset.students:
        for criterion in SHIPPED_CRITERIA:
            run = StudentRun(size, criterion).name
            names[run] = run.replace("nar-", "student-", 1)
    return names


def _check_sets(corpus_dir: Path, corpus: str, n: int, models_root: Path | None) -> dict[str, Path]:
    """{card set name ``check/<label>``: manifest} for every test split of the corpus; a split read by several
    synthesizers (test-unseen) gets its first ⌈n / engines⌉ utterances of each."""
    splits = eval_sets(corpus_dir)
    labels = set_labels(splits)
    out = {}
    for s in (s for s in splits if s.startswith("test")):
        manifest = corpus_dir / f"{s}.jsonl"
        groups = engine_groups(read_manifest(manifest))
        per = -(-n // len(set(groups.values()))) if groups else n
        out[f"check/{labels[s]}"] = write_check_set(manifest, per, corpus, labels[s], models_root,
                                                    per_engine=groups is not None)
    return out


def _run_results(decode_dir: Path, corpus_dir: Path) -> dict[str, dict]:
    """The run's full-set figures {set label: {method: row}} (without the machine-dependent RTF), from
    ``<decode_dir>/<set>/summary.json``."""
    labels = set_labels(eval_sets(corpus_dir))
    out = {}
    for split, label in labels.items():
        path = decode_dir / split / "summary.json"
        if path.is_file():
            rows = json.loads(path.read_text(encoding="utf-8"))
            out[label] = {m: {k: v for k, v in row.items() if k != "rtf"} for m, row in rows.items()}
    return out


def _check_results(spec: str, methods: list[str], checks: dict[str, Path], models_root: Path | None
                   ) -> dict[str, dict]:
    """Figures of the shipped model ``spec`` on the check sets with each of ``methods``."""
    return {name: {m: {k: v for k, v in decode_row(spec, manifest, m, models_root).items() if k != "rtf"}
                   for m in methods}
            for name, manifest in checks.items()}


def _add_results(folder: Path, results: dict[str, dict]) -> None:
    """Merge ``results`` into the card of the model folder (model.pt is unchanged)."""
    data = read_card(folder)
    data["results"] = {**data.get("results", {}), **results}
    write_card(folder, data)


def run_overrides(root: Path) -> list[str]:
    """The ``--set`` items a reproduce run was made with (its ``results/results.json``); [] for none."""
    path = root / "results" / "results.json"
    return list(json.loads(path.read_text()).get("meta", {}).get("overrides", [])) if path.is_file() else []


def ship_run(root: Path, preset: ReproducePreset, n_check: int = 20, models_root: Path | None = None,
             force: bool = False, teacher_only: bool = False) -> list[Path]:
    """Export every shipped model of the finished reproduce run ``root`` as ``<preset name>/<model>``
    (corpus: the teacher's ``data.corpus``); returns the model folders. ``teacher_only``: only the AR
    teacher (a run whose students are not trained yet). A teacher the run adopted (``teacher_from``) is
    shipped already and is left out."""
    from kdlab.config import load_config
    from kdlab.reproduce.adopt import adopted_from

    corpus = preset.name
    models = {TEACHER: "teacher"} if teacher_only else shipped_models(preset)
    adopted = adopted_from(root / TEACHER)
    if adopted:
        if teacher_only:
            raise ValueError(f"{root}: its teacher is the shipped {adopted}; there is no other teacher to ship")
        models.pop(TEACHER)
    missing = [run for run in models if not is_done(root / run)]
    if missing:
        raise ValueError(f"{root}: stage(s) {', '.join(missing)} not finished; run kdlab reproduce first")
    corpus_dir = Path(load_config(root / TEACHER / "config.yaml").data.corpus)
    _refuse_existing(corpus, list(models.values()), models_root, force)
    checks = _check_sets(corpus_dir, corpus, n_check, models_root)
    sets = "".join(f" --set {shlex.quote(item)}" for item in run_overrides(root))
    jobs = []
    for run, name in models.items():
        ckpt = checkpoint_of(root / run)
        kind = "ar" if run == TEACHER else "maskctc"
        fields = {"recipe": f"kdlab reproduce --preset {preset.name}{sets} ({run} stage)",
                  "command": f"./run.sh reproduce --preset {preset.name}{sets}", "corpus_seed": preset.corpus.seed,
                  "results": _run_results(root / "decode" / run, corpus_dir)}
        jobs.append(ShipJob(ckpt, name, fields, [table1_method(kind), DIAGNOSTIC]))
    return _ship_models(jobs, corpus, checks, models_root, force)


def ship_families(root: Path, preset: ReproducePreset, families: list[str], n_check: int = 20,
                  models_root: Path | None = None, force: bool = False) -> list[Path]:
    """Export the finished runs of ``kdlab reproduce --family`` in ``root`` as ``<preset name>/<run>``
    (e.g. ``mini-en/inter-kd``), each card with the run's full-set and check-set figures of its methods."""
    from kdlab.config import load_config
    from kdlab.reproduce.families import FAMILIES_DIR, family_runs, run_dir

    runs = family_runs(families)
    missing = [run.name for run in runs if not is_done(run_dir(root, run.name))]
    if missing:
        raise ValueError(f"{root}: run(s) {', '.join(missing)} not finished; run kdlab reproduce --family first")
    corpus_dir = Path(load_config(root / TEACHER / "config.yaml").data.corpus)
    _refuse_existing(preset.name, [run.name for run in runs], models_root, force)
    checks = _check_sets(corpus_dir, preset.name, n_check, models_root)
    jobs = []
    for run in runs:
        fields = {"recipe": f"kdlab reproduce --preset {preset.name} --family {run.family} ({run.name})",
                  "command": f"./run.sh reproduce --preset {preset.name} --family {run.family}",
                  "corpus_seed": preset.corpus.seed, "family": run.family, "label": run.label,
                  "results": _run_results(root / FAMILIES_DIR / "decode" / run.name, corpus_dir)}
        jobs.append(ShipJob(checkpoint_of(run_dir(root, run.name)), run.name, fields, list(run.methods)))
    return _ship_models(jobs, preset.name, checks, models_root, force)


def _refuse_existing(corpus: str, names: list[str], models_root: Path | None, force: bool) -> None:
    """Raise before any work when a model to ship exists already and ``force`` is not given."""
    base = pretrained_root(models_root)
    existing = [n for n in names if (base / corpus / n).exists()]
    if existing and not force:
        raise PretrainedError(f"{base / corpus}: {', '.join(existing)} already shipped (replace with --force)")


def _pid_alive(pid: int) -> bool:
    """Whether process ``pid`` exists (on this machine)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def remove_stale_stages(base: Path) -> list[Path]:
    """Delete the staging folders that a killed ``ship`` left in the models root ``base``; returns them."""
    stale = []
    for stage in base.glob(f"{STAGE_PREFIX}*"):
        pid = stage.name[len(STAGE_PREFIX):].split("-", 1)[0]
        if stage.is_dir() and pid.isdigit() and not _pid_alive(int(pid)):
            shutil.rmtree(stage, ignore_errors=True)
            stale.append(stage)
    return stale


def _stage_model(job: ShipJob, corpus: str, checks: dict[str, Path], stage: Path) -> Path:
    """Export ``job`` into the staging root ``stage`` and add its check-set figures, measured on the staged
    (float16) model; returns the staged, complete model folder."""
    folder = export(job.ckpt, corpus, job.name, job.fields, root=stage)
    _add_results(folder, _check_results(f"pretrained:{corpus}/{job.name}", job.methods, checks, stage))
    return folder


def _ship_models(jobs: list[ShipJob], corpus: str, checks: dict[str, Path], models_root: Path | None,
                 force: bool) -> list[Path]:
    """Write every model of ``jobs`` complete in a hidden staging folder, then rename each into
    ``<models root>/<corpus>/<name>`` (replacing an old one only with ``force``); returns the folders."""
    corpus = parse_spec(f"{corpus}/x")[0]
    base = pretrained_root(models_root)
    _refuse_existing(corpus, [job.name for job in jobs], models_root, force)
    base.mkdir(parents=True, exist_ok=True)
    remove_stale_stages(base)
    stage = Path(tempfile.mkdtemp(dir=base, prefix=f"{STAGE_PREFIX}{os.getpid()}-"))
    try:
        staged = [_stage_model(job, corpus, checks, stage) for job in jobs]
        (base / corpus).mkdir(exist_ok=True)
        folders = []
        for folder in staged:
            dest = base / corpus / folder.name
            place_folder(folder, dest)
            share_tokenizer(dest)  # one tokenizer folder per corpus (the first model's becomes it)
            folders.append(dest)
        return folders
    finally:
        shutil.rmtree(stage, ignore_errors=True)
