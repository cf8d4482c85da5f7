"""Tables and figures of ``kdlab reproduce``: Table 1 and Table 3 analogues, results.json, learning curves.

Table 1's rel. column compares each KD student with the L_jca baseline at the same training length. The
paper trains +F-KD for 80 epochs (stage 1) and fine-tunes it with ++S-KD for 20 more (stage 2), the
baseline for 80 + 20 (Section 4.2); where the learning curves are still steep (the mini presets), a
baseline trained 25 % longer than the +F-KD student would hide what F-KD gains. So +L_F-KD is compared
with the baseline's stage-1 checkpoint (``nar-<size>-ljca-stage1``: the average of its last epochs at
stage 1's length, its own row) and ++L_S-KD with the full-length baseline. Every record keeps the keys
``criterion`` (L_jca / +L_F-KD / ++L_S-KD) and ``run`` (the model key: a run folder, or the stage-1 key),
and adds ``row`` (the row's label, with the baseline's length), ``epochs`` and ``rel_to`` (the model key of
the rel. reference).
"""

from __future__ import annotations

import csv
import json
from dataclasses import dataclass, field
from pathlib import Path

from kdlab.reproduce.eval import DIAGNOSTIC, P_THR
from kdlab.reproduce.presets import ReproducePreset
from kdlab.reproduce.stages import (
    CRITERION_LABEL,
    TEACHER,
    StudentRun,
    eval_names,
    is_stage1,
    run_model,
    run_of,
    stage1_name,
    student_epochs,
)

SIZE_LABEL = {"same": "NAR (same size)", "smaller": "NAR (smaller)"}
# one Table 1 per group (clean, other, unseen synthesizer voices)
SET_GROUPS = (("dev", "test"), ("dev-other", "test-other"), ("dev-unseen", "test-unseen"))


@dataclass
class Report:
    """Everything ``write_report`` writes: table rows, set labels, diagnostics, timing and run facts."""

    t1_rows: list[dict]
    t3_rows: list[dict]
    diag_rows: list[dict]
    labels: dict[str, str]  # split -> label (dev -> dev-clean when the corpus has dev-other)
    meta: dict
    timing: dict = field(default_factory=dict)


def relative_reduction(base: float, new: float) -> float | None:
    """Relative error reduction in % (positive = better than ``base``)."""
    return None if base <= 0 else 100.0 * (base - new) / base


def set_key(split: str) -> str:
    """Record-key prefix of a split: ``dev`` → ``dev``, ``test-other`` → ``test_other``."""
    return split.replace("-", "_")


def run_labels(name: str) -> tuple[str, str]:
    """(Method, Criterion) of a run: ``ar`` → AR / L_jca, ``nar-same-fkd`` → NAR (same size) / +L_F-KD."""
    if name == TEACHER:
        return "AR", CRITERION_LABEL["ljca"]
    _, size, criterion = run_of(name).split("-")
    return SIZE_LABEL[size], CRITERION_LABEL[criterion]


def row_label(preset: ReproducePreset, name: str) -> str:
    """Table 1's criterion cell: the L_jca baselines with their length (``L_jca (4+1 epochs)``, ``L_jca
    (stage-1 length, 4 epochs)``), the other rows their criterion."""
    criterion = run_labels(name)[1]
    if is_stage1(name):
        n = preset.student_epochs
        return f"{criterion} (stage-1 length, {n} epoch{'s' if n != 1 else ''})"
    if name != TEACHER and name.endswith("-ljca"):
        return f"{criterion} ({preset.student_epochs}+{preset.finetune_epochs} epochs)"
    return criterion


def model_epochs(preset: ReproducePreset, name: str) -> int:
    """Training epochs behind a model (++S-KD: stage 1 + its fine-tuning)."""
    if name == TEACHER:
        return preset.teacher_epochs
    if is_stage1(name):
        return preset.student_epochs
    criterion = name.split("-")[2]
    return student_epochs(preset, "ljca") if criterion in ("ljca", "skd") else preset.student_epochs


def rel_reference(name: str, available: dict) -> str | None:
    """The L_jca row a student's rel. column refers to, at the same training length: +F-KD → the stage-1
    L_jca (the full-length one when that is missing), ++S-KD → the full-length L_jca; None for baselines."""
    if name == TEACHER or name.endswith("-ljca") or is_stage1(name):
        return None
    size = name.split("-")[1]
    full = StudentRun(size, "ljca").name
    if name.endswith("-fkd") and stage1_name(size) in available:
        return stage1_name(size)
    return full


def base_record(preset: ReproducePreset, params: dict[str, int], name: str, table: int | str) -> dict:
    """The columns every record of a run shares (corpus, table, method, size, criterion, run, #params)."""
    model, criterion = run_labels(name)
    return {"corpus": preset.name, "table": table, "model": model, "size": run_model(preset, name),
            "criterion": criterion, "row": row_label(preset, name), "run": name, "params": params[name]}


def error_fields(split: str, res: dict) -> dict:
    """``<set>_error``, ``<set>_i_plus_d`` (and CER, CTC-greedy error when decoded) of one set."""
    k = set_key(split)
    fields = {f"{k}_error": round(res["rate"], 2), f"{k}_i_plus_d": round(res["i_plus_d"], 2)}
    if "cer" in res:
        fields[f"{k}_cer"] = _round(res["cer"])
    if DIAGNOSTIC in res:
        fields[f"{k}_ctc_greedy_error"] = _round(res[DIAGNOSTIC]["rate"])
    return fields


def table1_records(preset: ReproducePreset, params: dict[str, int], t1: dict[str, dict[str, dict]]) -> list[dict]:
    """One record per Table-1 row (AR, then per student size: L_jca full length, L_jca at stage 1's length,
    +F-KD, ++S-KD), errors on every set; rel. reduction against the L_jca of the same length (``rel_to``)."""
    metric = "CER" if t1[TEACHER]["test"]["unit"] == "char" else "WER"
    rows = []
    for name in [n for n in eval_names(preset) if n in t1]:
        ref = rel_reference(name, t1)
        row = {**base_record(preset, params, name, 1), "epochs": model_epochs(preset, name), "rel_to": ref,
               "metric": metric, "beam": 10, "rtf": None}
        for split, res in t1[name].items():
            row.update(error_fields(split, res))
            if ref is not None:
                rel = relative_reduction(t1[ref][split]["rate"], res["rate"])
                row[f"{set_key(split)}_rel_reduction"] = _round(rel)
        rows.append(row)
    return rows


def table3_records(preset: ReproducePreset, params: dict[str, int], t3: dict[str, dict]) -> list[dict]:
    """Table-3 rows: Mask-CTC beam B of both ++S-KD students, then the AR teacher; errors per test set."""
    rows = []
    for name, methods in t3.items():
        for method, res in methods.items():
            beam = int("".join(ch for ch in method if ch.isdigit()))
            row = {**base_record(preset, params, name, 3), "method": method, "beam": beam}
            for split in (s for s in res if s != "rtf"):
                row.update({k: v for k, v in error_fields(split, res[split]).items() if not k.endswith("_cer")})
            rows.append({**row, "rtf": round(res["rtf"], 4)})
    return rows


def diagnostics_records(preset: ReproducePreset, params: dict[str, int], diag: dict[str, dict]) -> list[dict]:
    """Per model: last-epoch dev token accuracy, and (students) the share of greedy CTC tokens masked."""
    rows = []
    for name, d in diag.items():
        share = d.get("mask_share") or {}
        utts = share.get("utts") or 0
        rows.append({**base_record(preset, params, name, "diagnostics"),
                     "dev_acc_pct": _round(None if d.get("dev_acc") is None else 100 * d["dev_acc"]),
                     "masked_pct": _round(None if share.get("share") is None else 100 * share["share"]),
                     "ctc_tokens_per_utt": _round(share["ctc_tokens"] / utts) if utts else None,
                     "p_thr": share.get("p_thr"), "mask_set": share.get("set")})
    return rows


def _round(x: float | None, nd: int = 2) -> float | None:
    return None if x is None else round(x, nd)


def _fmt(x: object) -> str:
    if x is None:
        return "–"
    if isinstance(x, float):
        return f"{x:.2f}" if abs(x) >= 0.01 or x == 0 else f"{x:.4f}"
    return str(x)


def markdown_table(rows: list[dict], columns: list[tuple[str, str]]) -> str:
    head = "| " + " | ".join(label for _, label in columns) + " |"
    rule = "|" + "|".join("---" for _ in columns) + "|"
    body = ["| " + " | ".join(_fmt(r.get(key)) for key, _ in columns) + " |" for r in rows]
    return "\n".join([head, rule, *body])


def format_params(n: int) -> str:
    return f"{n / 1e6:.2f}M"


def set_groups(labels: dict[str, str]) -> list[list[str]]:
    """The splits of each Table 1 present in ``labels``: the clean pair, then the "other" pair."""
    return [[x for x in group if x in labels] for group in SET_GROUPS if any(x in labels for x in group)]


def table1_markdown(rows: list[dict], group: list[str], labels: dict[str, str]) -> str:
    """Table 1 on one group of sets (e.g. dev-clean / test-clean): I+D, error, rel. reduction, CER, CTC."""
    m = rows[0]["metric"]
    view = [{**r, "params": format_params(r["params"])} for r in rows]
    cols = [("model", "Method"), ("row", "Criterion"), ("params", "#Params")]
    for split in group:
        k, label = set_key(split), labels[split]
        cols += [(f"{k}_i_plus_d", f"{label} I+D"), (f"{k}_error", f"{label} {m}"),
                 (f"{k}_rel_reduction", f"{label} rel. %")]
    if m == "WER":
        cols += [(f"{set_key(x)}_cer", f"{labels[x]} CER") for x in group]
    cols += [(f"{set_key(x)}_ctc_greedy_error", f"{labels[x]} {m} (CTC greedy)") for x in group]
    return markdown_table(view, cols)


def table3_markdown(rows: list[dict], metric: str, labels: dict[str, str]) -> str:
    """Table 3: error per beam on every test set, RTF on test-clean."""
    tests = [x for x in labels if x.startswith("test")]
    cols = [("model", "Model"), ("size", "Size"), ("method", "Decoding")]
    cols += [(f"{set_key(x)}_error", f"{labels[x]} {metric}") for x in tests]
    cols += [("rtf", f"RTF ({labels['test']}, 1 thread)")]
    return markdown_table([{**r, "rtf": f"{r['rtf']:.4f}"} for r in rows], cols)


def diagnostics_markdown(rows: list[dict]) -> str:
    cols = [("model", "Method"), ("row", "Criterion"), ("dev_acc_pct", "Dev token acc. %"),
            ("masked_pct", f"Greedy CTC tokens masked (p < {P_THR}) %"), ("ctc_tokens_per_utt", "CTC tokens / utt")]
    return markdown_table(rows, cols)


def timing_line(timing: dict) -> str:
    """Wall time of this call and of every training stage (decoding jobs summed)."""
    stages = timing.get("stages_s", {})
    train = ", ".join(f"{k} {v:.0f}" for k, v in stages.items() if not k.startswith("decode-"))
    decode = sum(v for k, v in stages.items() if k.startswith("decode-"))
    return (f"Wall time of this call: {timing.get('total_s', 0) / 60:.1f} min (stages: "
            f"{timing.get('scheduler_s', 0) / 60:.1f} min with {timing.get('jobs')} parallel job(s)). "
            f"Stage wall times (s): {train}; decoding jobs {decode:.0f} in all.")


def report_markdown(preset: ReproducePreset, report: Report) -> str:
    """results.md: the Table 1 of every set group, Table 3, diagnostics, wall times, learning curves."""
    metric = report.t1_rows[0]["metric"]
    parts = [f"# kdlab reproduce — {preset.name}", meta_line(report.meta)]
    for group in set_groups(report.labels):
        names = " / ".join(report.labels[x] for x in group)
        parts += [f"## Table 1 analogue, {names} ({metric} %, AR: joint CTC/attention beam 10, end rule "
                  f"{report.meta.get('ar_end_rule', '?')}; NAR: Mask-CTC beam 10; {rel_caption(preset)})",
                  table1_markdown(report.t1_rows, group, report.labels)]
    parts += [f"## Table 3 analogue (Mask-CTC beams of the ++S-KD students; RTF on one CPU thread, batch 1, "
              f"{report.labels['test']})", table3_markdown(report.t3_rows, metric, report.labels),
              f"## Diagnostics (dev token accuracy of the last epoch: AR attention decoder, NAR CMLM on masked "
              f"tokens; share of greedy CTC tokens that Mask-CTC masks on {report.labels['test']})",
              diagnostics_markdown(report.diag_rows), timing_line(report.timing),
              "![learning curves](learning_curves.png)"]
    return "\n\n".join(parts) + "\n"


def rel_caption(preset: ReproducePreset) -> str:
    """What Table 1's rel. column compares: each KD student with the L_jca baseline of the same length."""
    s, f = preset.student_epochs, preset.finetune_epochs
    return (f"rel. = relative reduction vs L_jca at the same training length: +L_F-KD ({s} epochs) vs the L_jca "
            f"checkpoint at stage-1 length ({s} epochs), ++L_S-KD ({s}+{f} epochs) vs the full-length L_jca "
            f"({s}+{f} epochs)")


def write_csv(path: Path, rows: list[dict]) -> None:
    keys: list[str] = []
    for r in rows:
        keys += [k for k in r if k not in keys]
    with path.open("w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=keys, restval="")
        writer.writeheader()
        writer.writerows(rows)


def plot_learning_curves(root: Path, runs: list[str], out: Path, stage2_numbered_on: bool = True) -> None:
    """Dev loss per epoch of every run (one panel for the teacher, one per student size); a run without
    ``metrics.csv`` (a shipped teacher the run adopted) has no curve. ``stage2_numbered_on``: the S-KD runs
    continued their F-KD runs (preset ``stage2="continue"``), so their epochs follow stage 1's already."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import pandas as pd

    groups = {"AR teacher": [r for r in runs if r == TEACHER]}
    for size in ("same", "smaller"):
        groups[SIZE_LABEL[size]] = [r for r in runs if r.startswith(f"nar-{size}-")]
    fig, axes = plt.subplots(1, len(groups), figsize=(5 * len(groups), 3.6), squeeze=False)
    for ax, (title, names) in zip(axes[0], groups.items(), strict=True):
        offset = {}
        for name in (n for n in names if (root / n / "metrics.csv").is_file()):
            df = pd.read_csv(root / name / "metrics.csv")
            ep = df[df["kind"] == "epoch"]
            start = offset.get(name, 0)
            if name.endswith("-skd") and not stage2_numbered_on:  # draw stage 2 after the F-KD epochs
                fkd = root / name.replace("-skd", "-fkd") / "metrics.csv"
                start = int(pd.read_csv(fkd).query("kind == 'epoch'")["epoch"].max()) if fkd.exists() else 0
            ax.plot(ep["epoch"] + start, ep["dev_loss"], marker="o", ms=3, label=name)
        ax.set_title(title)
        ax.set_xlabel("epoch")
        ax.set_ylabel("dev loss (L_jca)")
        ax.grid(alpha=0.3)
        if ax.lines:
            ax.legend(fontsize=8)
    fig.tight_layout()
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=110)
    plt.close(fig)


def write_report(out: Path, preset: ReproducePreset, report: Report) -> str:
    """Write results.json, CSVs and Markdown; returns the Markdown text (also printed by the caller)."""
    out.mkdir(parents=True, exist_ok=True)
    data = {"meta": report.meta, "sets": report.labels, "records": report.t1_rows + report.t3_rows,
            "diagnostics": report.diag_rows, "timing": report.timing}
    (out / "results.json").write_text(json.dumps(data, indent=1) + "\n")
    write_csv(out / "table1.csv", report.t1_rows)
    write_csv(out / "table3.csv", report.t3_rows)
    md = report_markdown(preset, report)
    (out / "results.md").write_text(md)
    return md


def meta_line(meta: dict) -> str:
    return ", ".join(f"{k}: {v}" for k, v in meta.items())
