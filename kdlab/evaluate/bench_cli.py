"""``kdlab bench decode|train``: decoding speed ratios / RTF (paper Sec. 4.3, Table 3), training throughput.

``bench decode`` runs on one CPU thread with batch size 1 over the same utterances: the Mask-CTC encoder
forward, Mask-CTC greedy, Mask-CTC beam 1/5/10 and the AR joint CTC/attention beam 10 under both end rules
(each timed as a full decode: encoder + search). It prints the ratios maskctc_greedy/encoder (goal <= 1.3),
maskctc_beam10/beam1 (goal <= 1.25), ar_beam10/maskctc_greedy (paper ≈ 11×; the default "beam" end rule)
and the AR search's exact / beam end-rule time, each beside the same ratio of floating-point operations
(:mod:`kdlab.evaluate.flops`: what the methods compute, whatever their speed), the RTF of every method,
and the batched throughput (seconds of audio decoded per second). Times are process CPU time by default
(``--clock cpu``: robust when other jobs share the machine; with one thread it equals the busy time).
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path
from typing import Any

from kdlab.errors import UserError

NAR_METHODS = ("maskctc_greedy", "maskctc_beam1", "maskctc_beam5", "maskctc_beam10")
AR_METHOD = "attention_beam10"
AR_EXACT = "attention_beam10_exact"  # the same search with the "exact" end rule (kdlab.search.joint_beam)


INPUT_ERRORS = (ValueError, RuntimeError)  # a bad method, set or device (exit 2)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="action", required=True)
    d = sub.add_parser("decode", help="decode speed ratios and RTF (1 thread, batch 1)")
    d.add_argument("--ar", required=True, help="AR teacher checkpoint (in a run folder)")
    d.add_argument("--nar", required=True, help="Mask-CTC student checkpoint (in a run folder)")
    d.add_argument("--set", default="test", help="test | dev (the student's corpus) | PATH.jsonl")
    d.add_argument("--n", type=int, default=30, help="utterances to time")
    d.add_argument("--max-frames", type=int, default=20000, help="frames per batch (batched throughput)")
    d.add_argument("--clock", default="cpu", choices=("cpu", "wall"),
                   help="cpu: process CPU time (robust on a shared machine); wall: elapsed time")
    d.add_argument("--json", default=None, help="write the results to this JSON file")
    t = sub.add_parser("train", help="training throughput (optimiser steps on real batches)")
    t.add_argument("--preset", default="mini-student", help="model preset (or a ModelConfig YAML/JSON path)")
    t.add_argument("--kind", default="maskctc", choices=("ar", "maskctc"))
    t.add_argument("--manifest", default=None, help="training manifest (JSONL); or --run")
    t.add_argument("--run", default=None,
                   help="a prepared run folder: time its own training step (config, tokenizer, batches and, for "
                        "a KD run, the live teacher and N-best terms of eq 13) instead of --preset/--manifest")
    t.add_argument("--steps", type=int, default=10)
    t.add_argument("--max-frames", type=int, default=8000)
    t.add_argument("--device", default="cpu")
    t.add_argument("--threads", type=int, default=0, help="torch threads (0: torch default)")
    t.add_argument("--json", default=None, help="write the results to this JSON file")


def _single_batches(records: list[dict], tokenizer: Any, cmvn: Any) -> list[dict]:
    from kdlab.evaluate.sets import make_batches

    return [next(iter(make_batches([rec], tokenizer, cmvn, max_frames=10**9))) for rec in records]


CLOCKS = {"cpu": time.process_time, "wall": time.perf_counter}
_clock = CLOCKS["cpu"]


def _time(fn: Any) -> float:
    t0 = _clock()
    fn()
    return _clock() - t0


def decode_jobs(nar: Any, ar: Any) -> dict[str, tuple[str, Any]]:
    """Every method of ``bench decode`` as (model side "nar" | "ar", job(batch)): the encoder forward with
    the CTC head, the Mask-CTC searches and the AR beam search under both end rules."""
    import torch

    from kdlab.search.decode import decode

    def encoder(batch: dict) -> None:
        with torch.inference_mode():
            enc, _ = nar.encode(batch["feats"], batch["feat_lens"])
            nar.ctc_log_probs(enc)

    jobs: dict[str, tuple[str, Any]] = {"encoder": ("nar", encoder)}
    jobs.update({m: ("nar", lambda b, m=m: decode(nar, b, [m])) for m in NAR_METHODS})
    jobs[AR_METHOD] = ("ar", lambda b: decode(ar, b, [AR_METHOD]))
    jobs[AR_EXACT] = ("ar", lambda b: decode(ar, b, [AR_METHOD], end_rule="exact"))
    return jobs


def time_batch1(jobs: dict[str, tuple[str, Any]], batches: dict[str, list[dict]]) -> dict[str, float]:
    """Total seconds per method over all utterances (batch 1); each method's first utterance is a warm-up.

    ``batches["nar"]`` and ``batches["ar"]`` hold the same utterances, one per batch, for each model."""
    totals = dict.fromkeys(jobs, 0.0)
    for side, job in jobs.values():  # warm-up
        job(batches[side][0])
    for i in range(len(batches["nar"])):  # interleaved, so drifts hit all methods
        for name, (side, job) in jobs.items():
            totals[name] += _time(lambda job=job, b=batches[side][i]: job(b))
    return totals


def speed_ratios(totals: dict[str, float]) -> dict[str, float]:
    """The ratios ``bench decode`` reports, from per-method totals (seconds or operations)."""
    return {
        "maskctc_greedy_over_encoder": totals["maskctc_greedy"] / totals["encoder"],
        "maskctc_beam10_over_beam1": totals["maskctc_beam10"] / totals["maskctc_beam1"],
        "ar_beam10_over_maskctc_greedy": totals[AR_METHOD] / totals["maskctc_greedy"],
        "ar_exact_over_beam_rule": totals[AR_EXACT] / totals[AR_METHOD],
    }


def throughput(model: Any, batches: list[dict], method: str) -> float:
    """Seconds of audio decoded per wall-clock second with batched decoding (× real time)."""
    from kdlab.evaluate.sets import audio_seconds
    from kdlab.search.decode import decode

    wall = sum(_time(lambda b=b: decode(model, b, [method])) for b in batches)
    return sum(audio_seconds(b) for b in batches) / wall


def bench_decode(args: argparse.Namespace) -> dict:
    import torch

    global _clock
    _clock = CLOCKS[args.clock]
    from kdlab.checkpoint import load_model_from_checkpoint
    from kdlab.evaluate.flops import flops_per_method
    from kdlab.evaluate.sets import audio_seconds, load_records, make_batches, resolve_set

    nar, nar_tok, nar_cmvn, nar_cfg = load_model_from_checkpoint(args.nar)
    ar, ar_tok, ar_cmvn, _ = load_model_from_checkpoint(args.ar)
    if not hasattr(ar, "decoder_step") or not hasattr(nar, "mlm_logits"):
        raise ValueError("--ar must be an AR checkpoint and --nar a Mask-CTC checkpoint")
    records = load_records(resolve_set(args.set, nar_cfg), limit=args.n)
    nar_b1, ar_b1 = _single_batches(records, nar_tok, nar_cmvn), _single_batches(records, ar_tok, ar_cmvn)
    nar_batches = list(make_batches(records, nar_tok, nar_cmvn, args.max_frames))
    ar_batches = list(make_batches(records, ar_tok, ar_cmvn, args.max_frames))
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    jobs, singles = decode_jobs(nar, ar), {"nar": nar_b1, "ar": ar_b1}
    try:
        totals = time_batch1(jobs, singles)
        gflops = flops_per_method({m: job for m, (_, job) in jobs.items()},
                                  {m: singles[side] for m, (side, _) in jobs.items()})
        thr = {m: throughput(nar, nar_batches, m) for m in ("maskctc_greedy", "maskctc_beam10")}
        thr[AR_METHOD] = throughput(ar, ar_batches, AR_METHOD)
    finally:
        torch.set_num_threads(threads)
    audio = sum(audio_seconds(b) for b in nar_b1)
    return {
        "utts": len(records), "audio_s": audio, "threads": 1, "clock": args.clock, "seconds": totals,
        **speed_ratios(totals),
        "gflops": gflops,
        "flops_ratios": speed_ratios(gflops),
        "rtf": {m: s / audio for m, s in totals.items()},
        "batched_x_realtime": thr,
    }


def print_decode(res: dict) -> None:
    print(f"{res['utts']} utterances, {res['audio_s']:.1f} s of audio, 1 thread, batch 1, "
          f"{res['clock']} clock")
    ops = res["flops_ratios"]
    print("time ratios (in brackets: the same ratio of floating-point operations)")
    print(f"maskctc_greedy / encoder        {res['maskctc_greedy_over_encoder']:.3f}  "
          f"[{ops['maskctc_greedy_over_encoder']:.3f}]  (goal <= 1.3)")
    print(f"maskctc_beam10 / maskctc_beam1  {res['maskctc_beam10_over_beam1']:.3f}  "
          f"[{ops['maskctc_beam10_over_beam1']:.3f}]  (goal <= 1.25)")
    print(f"ar_beam10 / maskctc_greedy      {res['ar_beam10_over_maskctc_greedy']:.2f}  "
          f"[{ops['ar_beam10_over_maskctc_greedy']:.2f}]  (paper ≈ 11)")
    print(f"ar_beam10 exact / beam end rule {res['ar_exact_over_beam_rule']:.2f}  "
          f"[{ops['ar_exact_over_beam_rule']:.2f}]")
    for m, rtf in res["rtf"].items():
        print(f"RTF {m:<18} {rtf:.4f}")
    for m, x in res["batched_x_realtime"].items():
        print(f"batched {m:<18} {x:.1f} x real time")


def bench_train(args: argparse.Namespace) -> dict:
    from kdlab.training.bench import benchmark_throughput

    if args.threads > 0:
        import torch

        torch.set_num_threads(args.threads)
    if args.run is not None:
        from kdlab.training.bench_run import benchmark_run

        return benchmark_run(args.run, steps=args.steps)
    if args.manifest is None:
        raise UserError("kdlab bench train: give --manifest (a model preset on a manifest) or --run (a run folder)")
    return benchmark_throughput(args.preset, args.kind, args.manifest, steps=args.steps, device=args.device,
                                max_frames=args.max_frames)


def main(args: argparse.Namespace) -> int:
    if args.action == "decode":
        res = bench_decode(args)
        print_decode(res)
    else:
        res = bench_train(args)
        print(json.dumps(res, indent=2))
    if args.json:
        Path(args.json).write_text(json.dumps(res, indent=2) + "\n")
    return 0
