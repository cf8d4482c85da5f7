"""Decoding stage of ``kdlab reproduce``: Table 1 on every evaluation set, Table 3 (Mask-CTC beams on the test
sets, RTF on test-clean) and the students' diagnostics (share of greedy CTC tokens that Mask-CTC masks).

Each decoding writes icefall-style result files and a ``summary.json`` under ``<root>/decode/<model>/<set>``
(``<model>``: a run folder, or ``nar-<size>-ljca-stage1`` for the L_jca baseline's stage-1 checkpoint, decoded
like every student: Table 1 compares +F-KD with it, at the same training length) and is skipped when that
summary already holds its methods (resumable). The batched decodings are jobs of
the stage scheduler (one per model × set, one thread each, as soon as the model is trained); the one-thread
batch-1 RTF measurements run at the end, alone. One decoding job runs as ``python -m kdlab.reproduce.eval
--run RUN [--stage1] --set SET --methods M1,M2 --out DIR``.
"""

from __future__ import annotations

import argparse
import csv
import json
import sys
from pathlib import Path

from kdlab.reproduce.jobs import Job, log
from kdlab.reproduce.presets import ReproducePreset
from kdlab.reproduce.stages import (
    CRITERIA,
    TEACHER,
    StudentRun,
    checkpoint_of,
    is_stage1,
    model_checkpoint,
    model_cost,
    run_model,
    run_of,
    stage1_checkpoint_of,
)

# in this order when the corpus has them; -unseen: clean speech of held-out voices of every synthesizer
EVAL_SPLITS = ("dev", "test", "dev-other", "test-other", "dev-unseen", "test-unseen")
MASK_SHARE_FILE = "mask_share.json"
P_THR = 0.99  # Mask-CTC confidence threshold (paper)
END_RULE = "beam"  # AR joint beam search: <eos> competes for the beam (ESPnet's rule, the paper's toolkit)
DECODE_COST = 0.05  # per method, relative to an epoch of the same model: orders the scheduler's jobs
DIAGNOSTIC = "ctc_greedy"  # decoded beside every Table-1 method: the CTC branch alone, for analysis


def eval_sets(corpus: Path) -> list[str]:
    """The evaluation splits the corpus has: dev, test, and dev-other / test-other / dev-unseen /
    test-unseen when present."""
    return [s for s in EVAL_SPLITS if (corpus / f"{s}.jsonl").is_file()]


def set_labels(splits: list[str]) -> dict[str, str]:
    """Report labels: dev/test are called dev-clean/test-clean when the corpus also has the -other sets."""
    return {s: f"{s}-clean" if f"{s}-other" in splits else s for s in splits}


def decode_once(ckpt: Path, set_name: str, methods: list[str], out: Path, threads: int = 0,
                max_frames: int = 20000, limit: int | None = None, chunk_size: int | None = None) -> dict:
    """Run ``kdlab decode`` in-process (cached in ``out/summary.json``); ``chunk_size``: a streaming model's
    attention chunk (``kdlab decode --chunk-size``)."""
    import torch

    summary_path = out / "summary.json"
    cached = json.loads(summary_path.read_text()) if summary_path.is_file() else {}
    missing = [m for m in methods if m not in cached]
    if not missing:
        return cached
    from kdlab.evaluate.decode_cli import run_decode

    args = argparse.Namespace(ckpt=str(ckpt), methods=",".join(missing), set=set_name, out=str(out), beam=10,
                              ctc_weight=0.3, end_rule=END_RULE, p_thr=P_THR, K=2, max_frames=max_frames,
                              limit=limit, threads=threads, device="cpu", chunk_size=chunk_size, left_chunks=None)
    before = torch.get_num_threads()
    try:
        summary = run_decode(args)
    finally:
        torch.set_num_threads(before)
    summary = {**cached, **summary}
    out.mkdir(parents=True, exist_ok=True)
    summary_path.write_text(json.dumps(summary, indent=2) + "\n")
    return summary


def masked_token_share(ckpt: Path, set_name: str, p_thr: float = P_THR, max_frames: int = 20000) -> dict:
    """Share of a model's greedy CTC tokens on ``set_name`` that Mask-CTC masks (confidence < ``p_thr``).

    Uses the search's own masking (:func:`kdlab.search.maskctc.initial_masks`), so it counts exactly the
    positions that ``maskctc_greedy`` / ``maskctc_beam`` hand to the CMLM decoder.
    """
    import torch

    from kdlab.checkpoint import load_model_from_checkpoint
    from kdlab.evaluate.sets import load_records, make_batches, resolve_set
    from kdlab.search.maskctc import initial_masks

    model, tokenizer, cmvn, cfg = load_model_from_checkpoint(ckpt)
    records = load_records(resolve_set(set_name, cfg))
    masked = tokens = 0
    with torch.no_grad():
        for batch in make_batches(records, tokenizer, cmvn, max_frames):
            enc, enc_lens = model.encode(batch["feats"], batch["feat_lens"])
            _, lens, mask, _ = initial_masks(model.ctc_log_probs(enc), enc_lens, p_thr)
            masked, tokens = masked + int(mask.sum()), tokens + int(lens.sum())
    return {"set": set_name, "p_thr": p_thr, "utts": len(records), "ctc_tokens": tokens, "masked": masked,
            "share": masked / tokens if tokens else None}


# The main decoding of each model kind: Table 1's AR joint CTC/attention beam 10 and NAR Mask-CTC beam search
# B = 10 (Section 4.2); the KD families' CTC students decode greedily, their transducers with beam 4.
KIND_METHOD = {"ar": "attention_beam10", "maskctc": "maskctc_beam10", "ctc": "ctc_greedy",
               "transducer": "rnnt_beam4"}


def table1_method(kind: str) -> str:
    """The main decoding method of a model ``kind`` (:data:`KIND_METHOD`)."""
    return KIND_METHOD[kind]


def table3_runs(preset: ReproducePreset) -> list[str]:
    """Table 3's NAR models: the ++S-KD students."""
    return [StudentRun(size, CRITERIA[-1]).name for size in preset.students]


def job_methods(preset: ReproducePreset, name: str, split: str) -> list[str]:
    """Methods decoded for one model × set: Table 1's and CTC greedy, plus Table 3's beams on test sets."""
    methods = [table1_method("ar" if name == TEACHER else "maskctc"), DIAGNOSTIC]
    if name in table3_runs(preset) and split.startswith("test"):
        methods += [f"maskctc_beam{b}" for b in preset.beams]
    return list(dict.fromkeys(methods))


def wants_mask_share(name: str, split: str) -> bool:
    """The masked share is a student diagnostic, measured on test-clean."""
    return name != TEACHER and split == "test"


def decode_stage(ckpt: Path, split: str, methods: list[str], out: Path, mask_share: bool,
                 threads: int = 0, chunk_size: int | None = None) -> None:
    """Decode ``split`` with a finished run's checkpoint (and measure its masked share when asked)."""
    decode_once(ckpt, split, methods, out, threads=threads, chunk_size=chunk_size)
    if mask_share and not (out / MASK_SHARE_FILE).is_file():
        share = masked_token_share(ckpt, split)
        (out / MASK_SHARE_FILE).write_text(json.dumps(share, indent=1) + "\n")


def decoded(out: Path, methods: list[str], mask_share: bool) -> bool:
    """Whether ``out`` holds every method's summary (and the masked share when asked)."""
    path = out / "summary.json"
    if not path.is_file() or any(m not in json.loads(path.read_text()) for m in methods):
        return False
    return not mask_share or (out / MASK_SHARE_FILE).is_file()


def decode_job(preset: ReproducePreset, root: Path, name: str, split: str) -> Job:
    """One model × set decoding job; waits for the model's training stage (a ``…-ljca-stage1`` model: for
    its L_jca run)."""
    out, run_dir = root / "decode" / name / split, root / run_of(name)
    methods, share = job_methods(preset, name, split), wants_mask_share(name, split)

    def command() -> list[str]:
        argv = [sys.executable, "-m", "kdlab.reproduce.eval", "--run", str(run_dir), "--set", split,
                "--methods", ",".join(methods), "--out", str(out), "--threads", "1"]
        return argv + (["--stage1"] if is_stage1(name) else []) + (["--mask-share"] if share else [])

    cost = DECODE_COST * len(methods) * model_cost(preset, run_model(preset, name))
    return Job(f"decode-{name}-{split}", command, out / "decode.log", lambda: decoded(out, methods, share),
               (run_of(name),), cost,
               inline=lambda: decode_stage(model_checkpoint(root, name), split, methods, out, share))


def decode_jobs(preset: ReproducePreset, root: Path, names: list[str], splits: list[str]) -> list[Job]:
    """Decoding jobs of every model on every evaluation set."""
    return [decode_job(preset, root, name, split) for name in names for split in splits]


def evaluate_table1(root: Path, ckpts: dict[str, Path], splits: list[str]) -> dict[str, dict[str, dict]]:
    """{model: {set: summary of its Table-1 method, plus ``ctc_greedy``}} (decoded by the jobs; cached)."""
    results: dict[str, dict[str, dict]] = {}
    for name, ckpt in ckpts.items():
        method = table1_method("ar" if name == TEACHER else "maskctc")
        results[name] = {}
        for split in splits:
            summary = decode_once(ckpt, split, [method, DIAGNOSTIC], root / "decode" / name / split)
            results[name][split] = {**summary[method], DIAGNOSTIC: summary[DIAGNOSTIC]}
    return results


def rtf_run(root: Path, preset: ReproducePreset, name: str, ckpt: Path, methods: list[str]) -> dict:
    """One-thread, batch-1 decoding of the first ``preset.rtf_utts`` test-clean utterances (RTF)."""
    log(f"decode: {name} test, one thread, batch 1 (RTF)")
    return decode_once(ckpt, "test", methods, root / "decode-rtf" / name / "test", threads=1, max_frames=1,
                       limit=preset.rtf_utts or None)


def evaluate_table3(root: Path, preset: ReproducePreset, ckpts: dict[str, Path],
                    splits: list[str]) -> dict[str, dict]:
    """{model: {method: {test set: summary, "rtf": RTF}}}: Mask-CTC beams of the ++S-KD students and the AR
    teacher's beam 10, errors on the test sets (batched), RTF on test-clean (one thread, batch 1).

    Call it when nothing else runs: the RTF is a wall-clock measurement.
    """
    tests = [s for s in splits if s.startswith("test")]
    plan = {name: [f"maskctc_beam{b}" for b in preset.beams] for name in table3_runs(preset)}
    plan[TEACHER] = [table1_method("ar")]
    rows: dict[str, dict] = {}
    for name, methods in plan.items():
        errors = {s: decode_once(ckpts[name], s, methods, root / "decode" / name / s) for s in tests}
        rtf = rtf_run(root, preset, name, ckpts[name], methods)
        rows[name] = {m: {**{s: errors[s][m] for s in tests}, "rtf": rtf[m]["rtf"]} for m in methods}
    return rows


def last_dev_acc(run_dir: Path, until: int | None = None) -> float | None:
    """``dev_acc`` of the last epoch (up to epoch ``until`` when given) in a run's metrics.csv (students:
    masked-token accuracy of the CMLM)."""
    path = run_dir / "metrics.csv"
    if not path.is_file():
        return None
    with path.open(newline="") as f:
        rows = [r for r in csv.DictReader(f) if r["kind"] == "epoch" and r.get("dev_acc")
                and (until is None or int(float(r["epoch"])) <= until)]
    return float(rows[-1]["dev_acc"]) if rows else None


def stage1_epoch(root: Path, name: str) -> int | None:
    """The epoch of a ``…-ljca-stage1`` model's checkpoint (None for other models)."""
    if not is_stage1(name):
        return None
    from kdlab.checkpoint import load_checkpoint

    epoch = load_checkpoint(model_checkpoint(root, name)).get("epoch")
    return None if epoch is None else int(epoch)


def diagnostics(root: Path, names: list[str]) -> dict[str, dict]:
    """{model: {"dev_acc": …, "mask_share": {…} (students, test-clean)}}; the stage-1 L_jca model's dev
    accuracy is that of its last stage-1 epoch."""
    out: dict[str, dict] = {}
    for name in names:
        share = root / "decode" / name / "test" / MASK_SHARE_FILE
        out[name] = {"dev_acc": last_dev_acc(root / run_of(name), stage1_epoch(root, name)),
                     "mask_share": json.loads(share.read_text()) if share.is_file() else None}
    return out


def main(argv: list[str] | None = None) -> int:
    """``python -m kdlab.reproduce.eval``: one decoding job (model × set), in this process."""
    parser = argparse.ArgumentParser(prog="python -m kdlab.reproduce.eval", description=main.__doc__)
    parser.add_argument("--run", type=Path, required=True, help="finished training stage (run folder)")
    parser.add_argument("--stage1", action="store_true", help="decode the L_jca run's stage-1 checkpoint")
    parser.add_argument("--set", required=True, help="evaluation split of the run's corpus")
    parser.add_argument("--methods", required=True, help="comma-separated decoding methods")
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--mask-share", action="store_true", help=f"also measure the share masked at {P_THR}")
    parser.add_argument("--chunk-size", type=int, default=None, help="streaming models: attention chunk")
    args = parser.parse_args(argv)
    ckpt = stage1_checkpoint_of(args.run) if args.stage1 else checkpoint_of(args.run)
    if ckpt is None:  # one line and exit 2, as the kdlab command gives a user error
        print(f"python -m kdlab.reproduce.eval: error: {args.run}: no stage-1 checkpoint", file=sys.stderr)
        return 2
    decode_stage(ckpt, args.set, args.methods.split(","), args.out, args.mask_share, args.threads, args.chunk_size)
    return 0


if __name__ == "__main__":
    sys.exit(main())
