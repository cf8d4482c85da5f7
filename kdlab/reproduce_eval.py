"""Decoding stage of ``kdlab reproduce``: Table 1 (dev/test error, I+D) and Table 3 (Mask-CTC beams, RTF).

Each decoding writes icefall-style result files and a ``summary.json`` under ``<root>/decode/<model>/<set>``
and is skipped when that summary already exists (resumable).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from kdlab.reproduce_presets import ReproducePreset
from kdlab.reproduce_stages import CRITERIA, StudentRun, log


def decode_once(ckpt: Path, set_name: str, methods: list[str], out: Path, threads: int = 0,
                max_frames: int = 20000, limit: int | None = None) -> dict:
    """Run ``kdlab decode`` in-process (cached in ``out/summary.json``)."""
    import torch

    summary_path = out / "summary.json"
    cached = json.loads(summary_path.read_text()) if summary_path.is_file() else {}
    missing = [m for m in methods if m not in cached]
    if not missing:
        return cached
    from kdlab.search.commands import run_decode

    args = argparse.Namespace(ckpt=str(ckpt), methods=",".join(missing), set=set_name, out=str(out), beam=10,
                              ctc_weight=0.3, p_thr=0.99, K=2, max_frames=max_frames, limit=limit,
                              threads=threads, device="cpu")
    before = torch.get_num_threads()
    try:
        summary = run_decode(args)
    finally:
        torch.set_num_threads(before)
    summary = {**cached, **summary}
    out.mkdir(parents=True, exist_ok=True)
    summary_path.write_text(json.dumps(summary, indent=2) + "\n")
    return summary


def table1_method(kind: str) -> str:
    """Table 1 decoding: AR joint CTC/attention beam 10; NAR Mask-CTC beam search B = 10 (Section 4.2)."""
    return "attention_beam10" if kind == "ar" else "maskctc_beam10"


DIAGNOSTIC = "ctc_greedy"  # decoded beside every Table-1 method: the CTC branch alone, for analysis


def evaluate_table1(root: Path, ckpts: dict[str, Path]) -> dict[str, dict[str, dict]]:
    """{model name: {set: summary of its Table-1 method, plus ``ctc_greedy``}} for every model."""
    results: dict[str, dict[str, dict]] = {}
    for name, ckpt in ckpts.items():
        method = table1_method("ar" if name == "ar" else "maskctc")
        results[name] = {}
        for set_name in ("dev", "test"):
            log(f"decode: {name} {set_name} ({method}, {DIAGNOSTIC})")
            summary = decode_once(ckpt, set_name, [method, DIAGNOSTIC], root / "decode" / name / set_name)
            results[name][set_name] = {**summary[method], DIAGNOSTIC: summary[DIAGNOSTIC]}
    return results


def evaluate_table3(root: Path, preset: ReproducePreset, ckpts: dict[str, Path]) -> dict[str, dict]:
    """Mask-CTC beam 1/5/10 of the ++S-KD students: dev/test error and RTF on one CPU thread, batch 1."""
    methods = [f"maskctc_beam{b}" for b in preset.beams]
    rows: dict[str, dict] = {}
    limit = preset.rtf_utts or None
    for size in preset.students:
        name = StudentRun(size, CRITERIA[-1]).name
        dev = decode_once(ckpts[name], "dev", methods, root / "decode" / name / "dev")
        log(f"decode: {name} test, one thread, batch 1 (RTF)")
        test = decode_once(ckpts[name], "test", methods, root / "decode-rtf" / name / "test", threads=1,
                           max_frames=1, limit=limit)
        rows[name] = {m: {"dev": dev[m], "test": test[m]} for m in methods}
    log("decode: AR teacher test, one thread, batch 1 (RTF)")
    ar = decode_once(ckpts["ar"], "test", ["attention_beam10"], root / "decode-rtf" / "ar" / "test",
                     threads=1, max_frames=1, limit=limit)
    rows["ar"] = {"attention_beam10": {"test": ar["attention_beam10"]}}
    return rows
