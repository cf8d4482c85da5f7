"""Tables of ``kdlab reproduce --family``: one comparison per KD family, written to
``<root>/results/families.{json,md}``.

Each row is one trained model: its label, parameters, training epochs and minutes, and the error rate of each
of its decoding methods on every evaluation set; ``rel.`` is the relative error reduction against the
family's first student without KD (the comparison's baseline), on each set, for the first method.
"""

from __future__ import annotations

import json
from pathlib import Path

from kdlab.reproduce.eval import decode_once
from kdlab.reproduce.families import FamilyRun, decode_dir, run_dir
from kdlab.reproduce.report import _round, format_params, markdown_table, relative_reduction, set_key
from kdlab.reproduce.stages import checkpoint_of

TITLES = {"inter": "Inter-KD (CTC student, intermediate CTC heads)",
          "stream": "Streaming student: layer-to-layer KD + APC vs token-probability KD",
          "rnnt": "Transducers: one-best-path KD vs full-lattice KL"}


def baseline_of(runs: list[FamilyRun]) -> FamilyRun | None:
    """The comparison's reference: the first student trained without KD (not a teacher)."""
    return next((r for r in runs if r.kd is None and r.init_encoder_from is None), None)


def train_minutes(folder: Path) -> float | None:
    done = folder / "DONE"
    return _round(json.loads(done.read_text()).get("seconds", 0.0) / 60, 1) if done.is_file() else None


def run_record(root: Path, run: FamilyRun, splits: list[str], params: int) -> dict:
    """{label, params, epochs, minutes, <set>_<method>: error rate, <set>_<method>_i_plus_d} of one run."""
    folder = run_dir(root, run.name)
    ckpt = checkpoint_of(folder)
    rec = {"family": run.family, "run": run.name, "label": run.label, "kind": run.kind, "params": params,
           "epochs": run.epochs, "train_min": train_minutes(folder)}
    for split in splits:
        summary = decode_once(ckpt, split, list(run.methods), decode_dir(root, run.name, split))
        for method in run.methods:
            rec[f"{set_key(split)}_{method}"] = _round(summary[method]["rate"])
            rec[f"{set_key(split)}_{method}_i_plus_d"] = _round(summary[method]["i_plus_d"])
        rec["unit"] = summary[run.methods[0]]["unit"]
    return rec


def add_relative(records: list[dict], runs: list[FamilyRun], splits: list[str]) -> None:
    """``<set>_rel``: reduction of the first method's error against the family's no-KD student."""
    base = baseline_of(runs)
    ref = next((r for r in records if base is not None and r["run"] == base.name), None)
    for rec, run in zip(records, runs, strict=True):
        if ref is None or rec is ref or run.init_encoder_from is not None:
            continue
        for split in splits:
            key = f"{set_key(split)}_{run.methods[0]}"
            rec[f"{set_key(split)}_rel"] = _round(relative_reduction(ref[key], rec[key]))


def family_records(root: Path, runs: list[FamilyRun], splits: list[str]) -> list[dict]:
    """Every finished run's record, rel. reductions within each family."""
    from kdlab.reproduce.reproduce_cli import parameter_counts

    done = [r for r in runs if (run_dir(root, r.name) / "DONE").is_file()]
    params = parameter_counts({r.name: checkpoint_of(run_dir(root, r.name)) for r in done})
    records = []
    for family in dict.fromkeys(r.family for r in done):
        group = [r for r in done if r.family == family]
        recs = [run_record(root, r, splits, params[r.name]) for r in group]
        add_relative(recs, group, splits)
        records += recs
    return records


def family_markdown(records: list[dict], runs: list[FamilyRun], splits: list[str], labels: dict[str, str]) -> str:
    """One table per family: rows = models, columns = method × set (+ rel. for the first method)."""
    parts = []
    for family in dict.fromkeys(r["family"] for r in records):
        rows = [r for r in records if r["family"] == family]
        methods = next(run.methods for run in runs if run.name == rows[0]["run"])
        metric = "CER" if rows[0].get("unit") == "char" else "WER"
        cols = [("label", "Model"), ("params", "#Params"), ("epochs", "Epochs"), ("train_min", "Train min")]
        for split in splits:
            cols += [(f"{set_key(split)}_{m}", f"{labels.get(split, split)} {metric} {m}") for m in methods]
            cols.append((f"{set_key(split)}_rel", f"rel. % {labels.get(split, split)}"))
        view = [{**r, "params": format_params(r["params"])} for r in rows]
        parts.append(f"### {TITLES.get(family, family)}\n\n{markdown_table(view, cols)}\n")
    return "\n".join(parts)


def chunk_records(root: Path, runs: list[FamilyRun], splits: list[str]) -> list[dict]:
    """Streaming runs: the first method's error rate per attention chunk (the trained one and
    ``chunk_sizes``; 0 = full context) and test set, with the chunk's algorithmic latency."""
    from kdlab.search.streaming import latency_ms

    rows = []
    for run in (r for r in runs if r.chunk_sizes and (run_dir(root, r.name) / "DONE").is_file()):
        trained = int(run.model_config.get("chunk_size", 0))
        method, ckpt = run.methods[0], checkpoint_of(run_dir(root, run.name))
        for chunk in sorted({trained, *run.chunk_sizes}, key=lambda c: c or 10**6):
            row = {"run": run.name, "label": run.label, "chunk": chunk or "full",
                   "latency_ms": latency_ms(chunk) if chunk else None, "trained": chunk == trained}
            for split in splits:
                out = decode_dir(root, run.name, split, None if chunk == trained else chunk)
                row[set_key(split)] = _round(decode_once(ckpt, split, [method], out, chunk_size=chunk)[method]["rate"])
            rows.append(row)
    return rows


def chunk_markdown(rows: list[dict], splits: list[str], labels: dict[str, str]) -> str:
    """Error rate against chunk size / latency, one row per streaming model × chunk."""
    cols = [("label", "Model"), ("chunk", "Chunk (40 ms frames)"), ("latency_ms", "Latency ms")]
    cols += [(set_key(s), labels.get(s, s)) for s in splits]
    return ("### Streaming students: error rate against chunk size (CTC greedy; trained with one chunk)\n\n"
            f"{markdown_table(rows, cols)}\n")


def write_family_report(root: Path, runs: list[FamilyRun], splits: list[str], labels: dict[str, str],
                        meta: dict) -> str:
    """Write ``results/families.json`` and ``results/families.md``; returns the Markdown."""
    records, chunks = family_records(root, runs, splits), chunk_records(root, runs, splits)
    out = root / "results"
    out.mkdir(parents=True, exist_ok=True)
    data = {"meta": meta, "sets": labels, "records": records, "chunks": chunks}
    (out / "families.json").write_text(json.dumps(data, indent=1) + "\n")
    md = f"## KD families ({meta.get('preset')})\n\n{family_markdown(records, runs, splits, labels)}"
    if chunks:
        md += "\n" + chunk_markdown(chunks, splits, labels)
    (out / "families.md").write_text(md)
    return md
