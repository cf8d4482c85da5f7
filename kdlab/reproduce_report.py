"""Tables and figures of ``kdlab reproduce``: Table 1 and Table 3 analogues, results.json, learning curves."""

from __future__ import annotations

import csv
import json
from pathlib import Path

from kdlab.reproduce_presets import ReproducePreset
from kdlab.reproduce_stages import CRITERIA, CRITERION_LABEL, StudentRun

SIZE_LABEL = {"same": "NAR (same size)", "smaller": "NAR (smaller)"}


def relative_reduction(base: float, new: float) -> float | None:
    """Relative error reduction in % (positive = better than ``base``)."""
    return None if base <= 0 else 100.0 * (base - new) / base


def table1_records(preset: ReproducePreset, params: dict[str, int], t1: dict[str, dict[str, dict]]) -> list[dict]:
    """One record per Table-1 row (AR, then the three criteria per student size)."""
    unit = t1["ar"]["test"]["unit"]
    metric = "CER" if unit == "char" else "WER"

    def record(name: str, model: str, size: str, criterion: str, beam: int) -> dict:
        dev, test = t1[name]["dev"], t1[name]["test"]
        return {"corpus": preset.name, "table": 1, "model": model, "size": size, "criterion": criterion,
                "run": name, "params": params[name], "metric": metric, "dev_error": round(dev["rate"], 2),
                "dev_i_plus_d": round(dev["i_plus_d"], 2), "test_error": round(test["rate"], 2),
                "test_i_plus_d": round(test["i_plus_d"], 2), "beam": beam, "rtf": None,
                "dev_cer": _round(dev.get("cer")), "test_cer": _round(test.get("cer")),
                "dev_ctc_greedy_error": _round(dev.get("ctc_greedy", {}).get("rate")),
                "test_ctc_greedy_error": _round(test.get("ctc_greedy", {}).get("rate"))}

    rows = [record("ar", "AR", preset.teacher, "L_jca", 10)]
    for size in preset.students:
        base = t1[StudentRun(size, "ljca").name]
        for criterion in CRITERIA:
            name = StudentRun(size, criterion).name
            row = record(name, SIZE_LABEL[size], preset.students[size], CRITERION_LABEL[criterion], 10)
            for split in ("dev", "test") if criterion != "ljca" else ():
                row[f"{split}_rel_reduction"] = _round(relative_reduction(base[split]["rate"], t1[name][split]["rate"]))
            rows.append(row)
    return rows


def table3_records(preset: ReproducePreset, params: dict[str, int], t3: dict[str, dict]) -> list[dict]:
    """Table-3 rows: Mask-CTC beam B for both ++S-KD students, plus the AR teacher's RTF."""
    rows = []
    for name, methods in t3.items():
        for method, res in methods.items():
            beam = int("".join(ch for ch in method if ch.isdigit()))
            size = "teacher" if name == "ar" else name.split("-")[1]
            rows.append({"corpus": preset.name, "table": 3, "model": "AR" if name == "ar" else SIZE_LABEL[size],
                         "size": preset.teacher if name == "ar" else preset.students[size],
                         "criterion": "L_jca" if name == "ar" else CRITERION_LABEL["skd"], "run": name,
                         "params": params[name], "method": method, "beam": beam,
                         "dev_error": _round(res.get("dev", {}).get("rate")),
                         "dev_i_plus_d": _round(res.get("dev", {}).get("i_plus_d")),
                         "test_error": _round(res["test"]["rate"]),
                         "test_i_plus_d": _round(res["test"]["i_plus_d"]), "rtf": round(res["test"]["rtf"], 4)})
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


def table1_markdown(rows: list[dict]) -> str:
    m = rows[0]["metric"]
    view = [{**r, "params": format_params(r["params"])} for r in rows]
    cols = [("model", "Method"), ("criterion", "Criterion"), ("params", "#Params"),
            ("dev_i_plus_d", "Dev I+D"), ("dev_error", f"Dev {m}"), ("dev_rel_reduction", "Dev rel. %"),
            ("test_i_plus_d", "Test I+D"), ("test_error", f"Test {m}"), ("test_rel_reduction", "Test rel. %")]
    if m == "WER":
        cols += [("dev_cer", "Dev CER"), ("test_cer", "Test CER")]
    cols += [("dev_ctc_greedy_error", f"Dev {m} (CTC greedy)"), ("test_ctc_greedy_error", f"Test {m} (CTC greedy)")]
    return markdown_table(view, cols)


def table3_markdown(rows: list[dict], metric: str) -> str:
    cols = [("model", "Model"), ("size", "Size"), ("method", "Decoding"), ("dev_error", f"Dev {metric}"),
            ("test_error", f"Test {metric}"), ("rtf", "RTF (1 thread)")]
    return markdown_table([{**r, "rtf": f"{r['rtf']:.4f}"} for r in rows], cols)


def write_csv(path: Path, rows: list[dict]) -> None:
    keys: list[str] = []
    for r in rows:
        keys += [k for k in r if k not in keys]
    with path.open("w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=keys, restval="")
        writer.writeheader()
        writer.writerows(rows)


def plot_learning_curves(root: Path, runs: list[str], out: Path) -> None:
    """Dev loss per epoch of every run (one panel for the teacher, one per student size)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import pandas as pd

    groups = {"AR teacher": [r for r in runs if r == "ar"]}
    for size in ("same", "smaller"):
        groups[SIZE_LABEL[size]] = [r for r in runs if r.startswith(f"nar-{size}-")]
    fig, axes = plt.subplots(1, len(groups), figsize=(5 * len(groups), 3.6), squeeze=False)
    for ax, (title, names) in zip(axes[0], groups.items(), strict=True):
        offset = {}
        for name in names:
            df = pd.read_csv(root / name / "metrics.csv")
            ep = df[df["kind"] == "epoch"]
            start = offset.get(name, 0)
            if name.endswith("-skd"):  # stage 2 continues stage 1: draw it after the F-KD epochs
                fkd = root / name.replace("-skd", "-fkd") / "metrics.csv"
                start = int(pd.read_csv(fkd).query("kind == 'epoch'")["epoch"].max()) if fkd.exists() else 0
            ax.plot(ep["epoch"] + start, ep["dev_loss"], marker="o", ms=3, label=name)
        ax.set_title(title)
        ax.set_xlabel("epoch")
        ax.set_ylabel("dev loss (L_jca)")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    fig.tight_layout()
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=110)
    plt.close(fig)


def write_report(out: Path, preset: ReproducePreset, t1_rows: list[dict], t3_rows: list[dict],
                 meta: dict) -> str:
    """Write results.json, CSVs and Markdown; returns the Markdown text (also printed by the caller)."""
    out.mkdir(parents=True, exist_ok=True)
    (out / "results.json").write_text(json.dumps({"meta": meta, "records": t1_rows + t3_rows}, indent=1) + "\n")
    write_csv(out / "table1.csv", t1_rows)
    write_csv(out / "table3.csv", t3_rows)
    metric = t1_rows[0]["metric"]
    md = (f"# kdlab reproduce — {preset.name}\n\n{meta_line(meta)}\n\n"
          f"## Table 1 analogue ({metric} %, AR: joint CTC/attention beam 10; NAR: Mask-CTC beam 10)\n\n"
          f"{table1_markdown(t1_rows)}\n\n"
          f"## Table 3 analogue (Mask-CTC beams of the ++S-KD students; RTF on one CPU thread, batch 1)\n\n"
          f"{table3_markdown(t3_rows, metric)}\n\n![learning curves](learning_curves.png)\n")
    (out / "results.md").write_text(md)
    return md


def meta_line(meta: dict) -> str:
    return ", ".join(f"{k}: {v}" for k, v in meta.items())
