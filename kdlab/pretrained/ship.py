"""Ship the models of a finished ``kdlab reproduce`` run as pretrained models (``kdlab pretrained ship``).

For a run folder ``runs/reproduce-<preset>``: the check sets (first test utterances of each test split,
:mod:`kdlab.pretrained.check`), then per shipped model (the AR teacher, the L_jca and ++S-KD students of
both sizes) an export whose card holds the run's full-set results (``<run>/decode/<model>/<set>/summary.json``,
measured with the float32 checkpoint), the recipe and the corpus seed, and then the shipped (float16) model's
own figures on the check sets with its Table-1 method and CTC greedy — the figures the test suite re-checks.
``--family`` ships the runs of ``kdlab reproduce --family`` the same way (:func:`ship_families`).
"""

from __future__ import annotations

import json
import shlex
from pathlib import Path

from kdlab.pretrained.check import decode_row, write_check_set
from kdlab.pretrained.store import export, read_card, write_card
from kdlab.reproduce.eval import DIAGNOSTIC, eval_sets, set_labels, table1_method
from kdlab.reproduce.presets import ReproducePreset
from kdlab.reproduce.stages import TEACHER, StudentRun, checkpoint_of, is_done

SHIPPED_CRITERIA = ("ljca", "skd")  # the baseline and the fully distilled student of each size


def shipped_models(preset: ReproducePreset) -> dict[str, str]:
    """{run folder: shipped name}: ``ar`` → ``teacher``, ``nar-same-skd`` → ``student-same-skd``, …"""
    names = {TEACHER: "teacher"}
    for size in preset.students:
        for criterion in SHIPPED_CRITERIA:
            run = StudentRun(size, criterion).name
            names[run] = run.replace("nar-", "student-", 1)
    return names


def _check_sets(corpus_dir: Path, corpus: str, n: int, models_root: Path | None) -> dict[str, Path]:
    """{card set name ``check/<label>``: manifest} for every test split of the corpus."""
    splits = eval_sets(corpus_dir)
    labels = set_labels(splits)
    return {f"check/{labels[s]}": write_check_set(corpus_dir / f"{s}.jsonl", n, corpus, labels[s], models_root)
            for s in splits if s.startswith("test")}


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
    checks = _check_sets(corpus_dir, corpus, n_check, models_root)
    sets = "".join(f" --set {shlex.quote(item)}" for item in run_overrides(root))
    folders = []
    for run, name in models.items():
        ckpt = checkpoint_of(root / run)
        kind = "ar" if run == TEACHER else "maskctc"
        fields = {"recipe": f"kdlab reproduce --preset {preset.name}{sets} ({run} stage)",
                  "command": f"./run.sh reproduce --preset {preset.name}{sets}", "corpus_seed": preset.corpus.seed,
                  "results": _run_results(root / "decode" / run, corpus_dir)}
        folder = export(ckpt, corpus, name, fields, root=models_root, overwrite=force)
        methods = [table1_method(kind), DIAGNOSTIC]
        _add_results(folder, _check_results(f"pretrained:{corpus}/{name}", methods, checks, models_root))
        folders.append(folder)
    return folders


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
    checks = _check_sets(corpus_dir, preset.name, n_check, models_root)
    folders = []
    for run in runs:
        fields = {"recipe": f"kdlab reproduce --preset {preset.name} --family {run.family} ({run.name})",
                  "command": f"./run.sh reproduce --preset {preset.name} --family {run.family}",
                  "corpus_seed": preset.corpus.seed, "family": run.family, "label": run.label,
                  "results": _run_results(root / FAMILIES_DIR / "decode" / run.name, corpus_dir)}
        folder = export(checkpoint_of(run_dir(root, run.name)), preset.name, run.name, fields, root=models_root,
                        overwrite=force)
        spec = f"pretrained:{preset.name}/{run.name}"
        _add_results(folder, _check_results(spec, list(run.methods), checks, models_root))
        folders.append(folder)
    return folders
