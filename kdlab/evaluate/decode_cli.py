"""``kdlab decode``: decode a set with one or more methods; icefall-style result files, CER/WER and RTF.

Example::

    kdlab decode --ckpt runs/student/avg-5.pt --methods maskctc_greedy,maskctc_beam10 --set test --out exp/d

writes ``recogs-<method>.txt``, ``errs-<method>.txt``, ``wer-summary-<method>.txt`` per method and
``summary.json`` (rate, S/I/D, I+D, RTF per method) under ``--out``. Streaming models decode with the
chunk they were trained with, or ``--chunk-size`` / ``--left-chunks`` (the summary adds the chunk and its
algorithmic latency).
"""

from __future__ import annotations

import argparse
import contextlib
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

INPUT_ERRORS = (ValueError,)  # a bad --methods value or a model that cannot run a method (exit 2)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--ckpt", required=True, help="checkpoint inside a run folder (epoch-N.pt, avg-N.pt)")
    parser.add_argument("--methods", default="ctc_greedy",
                        help="comma-separated: ctc_greedy, ctc_prefix_beam, attention_beam, maskctc_greedy, "
                             "maskctc_beam, rnnt_greedy, rnnt_beam (transducers); beam methods may end in a beam "
                             "size, e.g. maskctc_beam5")
    parser.add_argument("--set", default="test",
                        help="a split of the run's corpus (test = test-clean, dev, test-other, ...) | PATH.jsonl")
    parser.add_argument("--out", required=True, help="output folder for the result files")
    parser.add_argument("--beam", type=int, default=10, help="default beam size (paper: 10)")
    parser.add_argument("--ctc-weight", type=float, default=0.3, help="joint CTC/attention λ (paper: 0.3)")
    parser.add_argument("--end-rule", choices=("beam", "exact"), default="beam",
                        help="AR beam: beam = <eos> competes for the beam slots (ESPnet, the paper's toolkit); "
                             "exact = every <eos> candidate ends (never a lower-scoring 1-best)")
    parser.add_argument("--p-thr", type=float, default=0.99, help="Mask-CTC confidence threshold")
    parser.add_argument("--K", type=int, default=2, help="Mask-CTC tokens filled per iteration")
    parser.add_argument("--max-frames", type=int, default=20000, help="feature frames per batch")
    parser.add_argument("--limit", type=int, default=None, help="decode only the first N utterances")
    parser.add_argument("--threads", type=int, default=0, help="torch threads (0: torch default)")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--chunk-size", type=int, default=None,
                        help="streaming models: attention chunk in encoder frames (40 ms each; 0: full "
                             "context); default: the chunk the model was trained with")
    parser.add_argument("--left-chunks", type=int, default=None,
                        help="streaming models: chunks of left context (-1: all); default: the model's")


def run_decode(args: argparse.Namespace) -> dict[str, dict]:
    """Decode and score; returns per method its error counts, rate, I+D and RTF."""
    import torch

    from kdlab.checkpoint import load_model_from_checkpoint
    from kdlab.config import ConfigError
    from kdlab.evaluate.sets import load_records, resolve_set
    from kdlab.search.decode import check_methods

    if args.threads > 0:
        torch.set_num_threads(args.threads)
    methods = [m.strip() for m in args.methods.split(",") if m.strip()]
    if not methods:
        raise ConfigError(f"--methods {args.methods!r}: no decoding method given (e.g. ctc_greedy,maskctc_beam10)")
    model, tokenizer, cmvn, exp_cfg = load_model_from_checkpoint(args.ckpt, device=args.device)
    check_methods(model, methods)
    records = load_records(resolve_set(args.set, exp_cfg), limit=args.limit)
    with streaming_setting(model, getattr(args, "chunk_size", None), getattr(args, "left_chunks", None)) as chunk:
        summary = _decode_and_score(args, methods, model, tokenizer, cmvn, records)
    if chunk:
        from kdlab.search.streaming import latency_ms

        for row in summary.values():
            row.update(chunk_size=chunk, latency_ms=latency_ms(chunk))
    return summary


@contextlib.contextmanager
def streaming_setting(model: Any, chunk_size: int | None, left_chunks: int | None) -> Iterator[int]:
    """Decode a streaming model with another chunk size / left context; yields the chunk size in use (0:
    full context or a non-streaming model). A chunk option for a non-streaming model is a ConfigError."""
    from kdlab.config import ConfigError
    from kdlab.search.streaming import chunk_context

    encoder = model.encoder
    if chunk_size is None and left_chunks is None:
        yield getattr(encoder, "chunk_size", 0)
        return
    if not getattr(encoder, "causal", False):
        raise ConfigError("--chunk-size / --left-chunks: the model is not a streaming model "
                          "(train it with model.config chunk_size > 0)")
    chunk = encoder.chunk_size if chunk_size is None else chunk_size
    if chunk < 0 or (left_chunks is not None and left_chunks < -1):
        raise ConfigError(f"--chunk-size {chunk_size} must be >= 0 and --left-chunks {left_chunks} >= -1")
    with chunk_context(model, chunk, left_chunks):
        yield chunk


def _decode_and_score(args: argparse.Namespace, methods: list[str], model: Any, tokenizer: Any, cmvn: Any,
                      records: list[dict]) -> dict[str, dict]:
    """Decode ``records`` with every method, write the result files, return the summary rows."""
    from kdlab.evaluate.metrics import error_rate
    from kdlab.evaluate.results import format_summary, write_results
    from kdlab.evaluate.sets import audio_seconds, make_batches
    from kdlab.search.decode import decode

    ids, refs, hyps = [], [], {m: [] for m in methods}
    timings: dict[str, float] = {}
    audio = 0.0
    for batch in make_batches(records, tokenizer, cmvn, args.max_frames):
        out = decode(model, batch, methods, timings=timings, beam=args.beam, ctc_weight=args.ctc_weight,
                     end_rule=getattr(args, "end_rule", "beam"), p_thr=args.p_thr, K=args.K)
        ids += batch["ids"]
        refs += batch["texts"]
        audio += audio_seconds(batch)
        for m in methods:
            hyps[m] += [tokenizer.decode(y) for y in out[m]]
    summary = {}
    for m in methods:
        stats = write_results(args.out, m, ids, refs, hyps[m], tokenizer.unit)
        rtf = (timings["encoder"] + timings[m]) / audio
        print(f"{m}: {format_summary(stats, tokenizer.unit)} RTF {rtf:.4f}")
        summary[m] = {"rate": stats.rate, "sub": stats.sub, "ins": stats.ins, "del": stats.dele,
                      "i_plus_d": stats.i_plus_d, "n_ref": stats.n_ref, "rtf": rtf,
                      "unit": tokenizer.unit, "utts": len(ids),
                      "cer": error_rate(refs, hyps[m], "char").rate}  # CER also for word-scored sets
    return summary


def main(args: argparse.Namespace) -> int:
    summary = run_decode(args)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")
    return 0
